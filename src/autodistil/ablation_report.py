"""docs/ablations.md from the study's DVC experiments: probe scores and, where fine-tuned, GLUE with its spread.

The input is ``dvc exp show --json`` (every experiment's params and metrics files). Experiments are matched to
arms by their names (``abl-<arm>-<scale>-s<seed>``, as :mod:`autodistil.ablations` queues them). A difference
between an arm and the reference counts as beyond the spread when it exceeds both arms' seed ranges
(max - min over seeds); with a single run on both sides there is no spread to compare with, and the table says so.
Neither probe measure is neutral to every arm: the relation loss is the KL one (the `mse` arm is scored on a loss it
did not train), and the `hidden` arm trains the very final hidden state that CKA compares; the report says so.
An experiment name seen under several commits counts once, its newest run (``dvc exp show`` lists newest first).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .io import InputError, number

NAME = re.compile(r"^abl-(?P<arm>[A-Za-z0-9_]+)-(?P<scale>[A-Za-z0-9_]+)-s(?P<seed>\d+)$")
PROBES = "metrics/probes.json"
SUMMARY = "metrics/summary.json"


def experiment_name(arm: str, scale: str, seed: int) -> str:
    """The DVC experiment of one run of the study (what :data:`NAME` reads back)."""
    return f"abl-{arm}-{scale}-s{seed}"


def experiments(shown, unfinished: list | None = None) -> Iterator[tuple[str, dict, dict, str | None]]:
    """(name, {metrics file: data}, params.yaml as the experiment ran it, its commit) of every finished experiment in
    ``dvc exp show --json`` output (DVC 3's
    nesting: commits, each with ``experiments`` whose ``revs`` carry the data). Queued, running and failed ones are
    skipped and, when ``unfinished`` is given, appended to it as (name, state)."""
    if isinstance(shown, list):
        for node in shown:
            yield from experiments(node, unfinished)
    elif isinstance(shown, dict):
        state = (shown.get("executor") or {}).get("state")
        if state in ("queued", "running", "failed"):
            if unfinished is not None:
                unfinished.append((shown.get("name"), state))
            return
        data = shown.get("data")
        name = shown.get("name") or (data or {}).get("name")
        if isinstance(data, dict) and name and "metrics" in data:
            metrics = {path: (m or {}).get("data") for path, m in (data.get("metrics") or {}).items()}
            params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
            yield name, {k: v for k, v in metrics.items() if v is not None}, params, shown.get("rev")
        for key in ("experiments", "revs"):
            if shown.get(key):
                yield from experiments(shown[key], unfinished)


def _need(metrics: Mapping, path: str, exp: str, *keys):
    """``metrics[path][keys...]``, or a one-line error naming the experiment and what it lacks."""
    value = metrics.get(path)
    for k in keys:
        value = value.get(k) if isinstance(value, Mapping) else None
    if value is None:
        what = path + "".join(f"[{k!r}]" for k in keys)
        raise InputError(f"experiment {exp} lacks {what} (did it run to its last stage? `dvc exp show` lists it)")
    return value


class Spread:
    """Mean, standard deviation and range of one measure over an arm's runs."""

    def __init__(self, values: Sequence[float]):
        self.values = list(values)
        self.mean = statistics.fmean(self.values)
        self.std = statistics.stdev(self.values) if len(self.values) > 1 else 0.0
        self.range = max(self.values) - min(self.values)

    def text(self, digits: int = 3) -> str:
        if len(self.values) == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def beyond(self, ref: "Spread") -> str:
        """Whether the difference to ``ref`` exceeds both seed ranges; an arm of one run has no range of its own, so
        nothing is claimed for it."""
        if len(self.values) == 1 or len(ref.values) == 1:
            return "one run"
        return "yes" if abs(self.mean - ref.mean) > max(self.range, ref.range) else "no"


def collect(study, shown, unfinished: list | None = None, probes_only: list | None = None) -> dict:
    """{(arm, scale): {"seeds": [...], "relation", "cka", "flops", "by_band": {band: {"relation", "cka"}},
    "glue": {student: {task: [scores], "retention": [values]}}}} from the experiments of the study's arms."""
    out: dict = defaultdict(lambda: {"seeds": [], "relation": [], "cka": [], "flops": [], "by_band": defaultdict(
        lambda: {"relation": [], "cka": []}), "glue": None})
    seen = set()
    for name, metrics, params, rev in experiments(shown, unfinished):
        m = NAME.match(name)
        if not m or m["arm"] not in study.arms or name in seen:
            continue
        seen.add(name)
        unreached = _need(metrics, PROBES, name, "all", "unreached") if "unreached" in (
            metrics.get(PROBES, {}).get("all") or {}) else 0
        if unreached:  # means over different probe sets are not comparable
            raise InputError(f"experiment {name}: {unreached} probe(s) were reached by none of its SuperLMs; arms are "
                             f"compared on the whole probe set (widen the partition or narrow probes.bands)")
        cell = out[(m["arm"], m["scale"])]
        cell["seeds"].append(int(m["seed"]))
        cell["relation"].append(_need(metrics, PROBES, name, "all", "relation"))
        cell["cka"].append(_need(metrics, PROBES, name, "all", "cka"))
        for band, v in _need(metrics, PROBES, name, "by_band").items():
            cell["by_band"][band]["relation"].append(v["relation"])
            cell["by_band"][band]["cka"].append(v["cka"])
        superlms = [p for p in metrics if p.startswith("metrics/superlm/")]
        if not superlms:
            raise InputError(f"experiment {name} lacks metrics/superlm/<subspace>.json")
        cell["flops"].append(sum(_need(metrics, p, name, "train_flops") for p in superlms))
        if study.arms[m["arm"]].glue:
            if carries(params, study.glue):
                cell["glue"] = merge_glue(cell["glue"], glue_scores(with_lists(metrics, rev, name), name))
            elif probes_only is not None:  # queued with --probes-only (or before the arm was marked glue)
                probes_only.append(name)
    return dict(out)


def with_lists(metrics: dict, rev: str | None, exp: str = "", repo: Path | None = None) -> dict:
    """The experiment's GLUE job files with their per-seed scores. `dvc exp show` drops list values (a job's
    ``per_seed`` among them); an experiment is a Git commit whose metrics files are tracked, so a file that lost
    them is read back from that commit in ``repo`` (default: the current directory's repository). A file that
    still has them (a listing written otherwise) is used as given; one that cannot be read back is a one-line
    error naming the experiment, its commit and the file."""
    out = dict(metrics)
    for path, data in metrics.items():
        if not path.startswith("metrics/glue/") or "per_seed" in (data or {}):
            continue
        where = f"experiment {exp or '?'}: {path} has no per-seed scores in `dvc exp show`"
        if not rev:
            raise InputError(f"{where}, and the listing names no commit to read them from")
        try:
            shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, cwd=repo)
        except OSError as e:
            raise InputError(f"{where}, and git cannot run ({e.strerror})") from None
        try:
            out[path] = json.loads(shown.stdout) if shown.returncode == 0 else None
        except json.JSONDecodeError:
            out[path] = None
        if out[path] is None:
            last = (shown.stderr.strip().splitlines() or ["not JSON"])[-1]
            raise InputError(f"{where}, and commit {rev[:12]} does not give it ({last}; run the report in the "
                             f"repository that ran the experiment)")
    return out


def carries(params: Mapping, overrides: Mapping) -> bool:
    """Whether ``params`` hold every value of ``overrides``: a GLUE arm's experiment queued without the study's
    ``glue`` overrides ran only to its probes, and the GLUE metrics it shows are its baseline commit's. Values are
    compared as DVC writes them (``1e-4`` read by YAML 1.1 as a string equals DVC's ``0.0001``)."""
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            if not (isinstance(params.get(key), Mapping) and carries(params[key], value)):
                return False
        elif _same(params.get(key), value) is False:
            return False
    return True


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return number(a) == number(b)
    except (TypeError, ValueError):
        return a == b


def glue_scores(metrics: Mapping, exp: str) -> dict:
    """{student: {task: [per-seed scores], "retention": {task: [per-seed retention]}}} of one experiment: each
    student against the teacher and its random twin, seed by seed."""
    summary = _need(metrics, SUMMARY, exp, "models")
    # the tasks from the teacher's scores: `dvc exp show` drops the summary's list of task names (lists of strings
    # are not metrics to DVC), while every score mapping survives
    tasks = list(_need(metrics, SUMMARY, exp, "models", "teacher", "scores"))

    def per_seed(model: str, task: str) -> dict[int, float]:
        runs = _need(metrics, f"metrics/glue/{model}/{task}.json", exp, "per_seed")
        return {r["seed"]: r["score"] for r in runs}

    out = {}
    for model, info in summary.items():  # the teacher and the twins too: the figures retention is made of
        scores, retention = {}, {}
        for task in tasks:
            s = per_seed(model, task)
            scores[task] = [s[k] for k in sorted(s)]
            if info.get("kind") == "student":
                t, r = per_seed("teacher", task), per_seed(f"random-{model}", task)
                # keyed by run (experiment, fine-tuning seed): a seed whose teacher ties its twin has no retention
                retention[task] = {f"{exp}:{k}": (s[k] - r[k]) / (t[k] - r[k]) for k in sorted(s)
                                   if k in t and k in r and t[k] != r[k]}
        out[model] = {"kind": info.get("kind"), "arch": {arch_label(info.get("arch"))}, "scores": scores,
                      "retention": retention}
    return out


def arch_label(arch) -> str:
    """The architecture's name as the search's CSV and a pinned budget spell it (``L4-A12-H384-F768``) from a
    summary's arch mapping; ``?`` where the summary has none."""
    from .space import Arch

    try:
        return Arch.from_dict(dict(arch)).name
    except (TypeError, KeyError, ValueError):
        return "?"


def merge_glue(a: dict | None, b: dict) -> dict:
    if a is None:
        return b
    for student, d in b.items():
        mine = a.setdefault(student, {"kind": d["kind"], "arch": set(), "scores": {}, "retention": {}})
        mine["arch"] |= d["arch"]  # SuperLM seeds may choose different students
        for task, values in d["scores"].items():
            mine["scores"].setdefault(task, []).extend(values)
        for task, values in d["retention"].items():
            mine["retention"].setdefault(task, {}).update(values)
    return a


def write_report(study, shown, out: Path) -> None:
    unfinished: list = []
    probes_only: list = []
    cells = collect(study, shown, unfinished, probes_only)
    unfinished = [(n, st) for n, st in unfinished if n and n.startswith("abl-")]
    if not cells:
        raise InputError("no experiment of the study in `dvc exp show` (queue them: python -m autodistil.ablations "
                         "queue, then dvc queue start)")
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Ablations", "",
             "Written by `python -m autodistil.ablations report` from the experiments of `configs/ablations.yaml` "
             "(`dvc exp show --json`). Probe measures: held-out relation loss (KL, lower is better) and linear CKA of "
             "the final hidden states to the teacher's (higher is better) over the fixed probe set of the `probes` "
             "stage; mean ± standard deviation over SuperLM seeds. *Beyond spread*: the difference to the reference "
             "exceeds both arms' seed ranges.", ""]
    lines += [f"- **{name}**: {arm.about}" for name, arm in study.arms.items() if arm.about] + [""]
    scales = [s for s in study.scales if any(k[1] == s for k in cells)]
    for scale in scales:
        ref = cells.get((study.reference, scale))
        lines += [f"## Probes, scale {scale} (x{study.scales[scale]:g} the reference's SuperLM compute)", "",
                  "| arm | runs | SuperLM TFLOPs | relation | CKA | Δ relation | beyond spread | Δ CKA "
                  "| beyond spread |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for arm in study.arms:
            c = _cell(study, cells, arm, scale)
            if c is None:
                continue
            rel, cka = Spread(c["relation"]), Spread(c["cka"])
            flops = statistics.fmean(c["flops"]) / 1e12
            row = [arm, str(len(c["seeds"])), f"{flops:.2f}", rel.text(), cka.text()]
            if ref is not None and arm != study.reference:
                rr, rc = Spread(ref["relation"]), Spread(ref["cka"])
                row += [f"{rel.mean - rr.mean:+.3f}", rel.beyond(rr), f"{cka.mean - rc.mean:+.3f}", cka.beyond(rc)]
            else:
                row += ["", "", "", ""]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "By band (relation / CKA):", "",
                  "| arm | " + " | ".join(_bands(cells)) + " |", "|---|" + "---|" * len(_bands(cells))]
        for arm in study.arms:
            c = _cell(study, cells, arm, scale)
            if c is None:
                continue
            lines.append(f"| {arm} | " + " | ".join(
                f"{Spread(c['by_band'][b]['relation']).text()} / {Spread(c['by_band'][b]['cka']).text()}"
                if c["by_band"].get(b) and c["by_band"][b]["relation"] else "-" for b in _bands(cells)) + " |")
        lines.append("")
    order = {a: i for i, a in enumerate(study.arms)} | {f"scale:{s}": i for i, s in enumerate(study.scales)}
    glue = {k: cells[k] for k in sorted((k for k, c in cells.items() if c["glue"]),
                                        key=lambda k: (order[k[0]], order.get(f"scale:{k[1]}", 99)))}
    if glue:
        lines += glue_tables(study, glue)
    if probes_only:
        lines += ["Runs of GLUE arms without the study's `glue` overrides (probes only, not in the GLUE tables): "
                  + ", ".join(probes_only) + ".", ""]
    if unfinished:
        lines += ["Not finished when this was written: " + ", ".join(f"{n} ({st})" for n, st in unfinished) + ".", ""]
    lines += ["Caveats: the relation measure is the KL loss, which the `mse` arm did not train on; the `hidden` arm "
              "trains the final hidden state that CKA compares; every arm, `pairs` too, is probed on the same single-segment "
              "held-out blocks. An arm with `compute: none` trains at no scale: its "
              "runs are shown at every scale. An arm with one run has no seed range of its own: nothing is claimed "
              "for it (*one run*).", "", "![probe quality per arm](ablations_probes.png)", ""]
    from .io import atomic_path

    with atomic_path(out.parent / "ablations_probes.png") as tmp:
        pictures(study, cells, tmp)
    if glue:
        lines.insert(-1, "![GLUE retention per arm](ablations_glue.png)")
        with atomic_path(out.parent / "ablations_glue.png") as tmp:
            glue_picture(study, glue, tmp)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")


def mean_retention(d: dict, tasks: Sequence[str] | None = None) -> list[float]:
    """A student's retention averaged over ``tasks`` (default: all it has), one value per run (experiment,
    fine-tuning seed) that has a retention on each of them."""
    per_task = [v for t, v in d["retention"].items() if tasks is None or t in tasks]
    if not per_task:
        return []
    runs = sorted(set.intersection(*(set(v) for v in per_task)))
    return [statistics.fmean(v[run] for v in per_task) for run in runs]


def separated(glue: Mapping, student: str, tasks: Sequence[str]) -> list[str]:
    """The tasks on which the teacher stands clear of the student's random twin: every teacher run above every
    twin run, and the means apart by more than twice the larger standard deviation (three seeds against three
    order themselves by chance one time in twenty). Elsewhere retention divides by a gap the seeds cannot tell from
    zero (RTE at 2,000 examples), so it is shown but kept out of the mean."""
    teacher, twin = glue.get("teacher"), glue.get(f"random-{student}")
    if not teacher or not twin:
        return []

    def clear(t: str) -> bool:
        a, b = teacher["scores"].get(t), twin["scores"].get(t)
        if not a or not b:
            return False
        sa, sb = Spread(a), Spread(b)
        return min(a) > max(b) and sa.mean - sb.mean > 2 * max(sa.std, sb.std)

    return [t for t in tasks if clear(t)]


def glue_tables(study, glue: Mapping) -> list[str]:
    """Per arm and scale: each student's dev score (points) and retention per task, mean ± std over every run, and
    its retention averaged over the tasks where the teacher separates from the twin, against the reference arm's
    on the same tasks (beyond spread: outside both ranges)."""
    lines = ["## GLUE (dev, mean ± std over fine-tuning seeds and SuperLM seeds)", "",
             "Retention's mean covers the tasks where the teacher stands clear of the student's random twin (every "
             "teacher run above every twin run, means apart by more than twice the larger standard deviation; listed "
             "in the column); on the others the teacher adds nothing the seeds can tell from noise, so retention there "
             "is shown in parentheses only. The difference to the reference is taken over the tasks both count.", ""]
    for (arm, scale), c in glue.items():
        ref = glue.get((study.reference, scale))
        tasks = _tasks(c)
        lines += [f"### {arm}, scale {scale}", "",
                  "| model | arch | " + " | ".join(tasks)
                  + " | retention (mean of tasks) | Δ vs reference | beyond spread |",
                  "|---|---|" + "---|" * (len(tasks) + 3)]
        for student, d in c["glue"].items():
            cells = [f"{Spread([100 * x for x in d['scores'][t]]).text(1)}"
                     + (f" (ret {Spread(list(d['retention'][t].values())).text(2)})" if d["retention"].get(t) else "")
                     for t in tasks]
            counted = separated(c["glue"], student, tasks) if d["kind"] == "student" else []
            mine = mean_retention(d, counted) if counted else []
            delta = " | "
            if mine and ref and arm != study.reference and student in ref["glue"]:
                # the difference over the tasks both arms count (the row's own mean may cover more)
                common = [t for t in counted if t in separated(ref["glue"], student, tasks)]
                a, b = mean_retention(d, common), mean_retention(ref["glue"][student], common)
                if a and b:
                    on = "" if common == counted else f" (on {', '.join(common)})"
                    delta = f"{Spread(a).mean - Spread(b).mean:+.2f}{on} | {Spread(a).beyond(Spread(b))}"
            over = f" ({', '.join(counted)})" if mine else ""
            lines.append(f"| {student} | {', '.join(sorted(d['arch']))} | " + " | ".join(cells)
                         + f" | {Spread(mine).text(2) + over if mine else '-'} | {delta} |")
        lines.append("")
    return lines


def glue_picture(study, glue: Mapping, path: Path) -> None:
    """Each student's retention (mean of the tasks the teacher separates from its twin) per arm and scale, with a
    bar of one standard deviation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(glue)
    students = list(dict.fromkeys(s for c in glue.values() for s, d in c["glue"].items() if d["kind"] == "student"))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(keys)), 3.8))
    for j, student in enumerate(students):
        xs, ys, es = [], [], []
        for i, key in enumerate(keys):
            cell = glue[key]["glue"]
            counted = separated(cell, student, _tasks(glue[key])) if student in cell else []
            values = mean_retention(cell[student], counted) if counted else []
            if values:
                spread = Spread(values)
                xs.append(i + 0.15 * (j - (len(students) - 1) / 2))
                ys.append(spread.mean)
                es.append(spread.std)
        ax.errorbar(xs, ys, yerr=es, fmt="o", capsize=3, label=student)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([f"{a} ({s})" for a, s in keys], rotation=30, fontsize=8)
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_ylabel("retention, mean of separated tasks")
    ax.set_title("GLUE retention per arm: (student - twin) / (teacher - twin)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def _cell(study, cells, arm: str, scale: str):
    """An arm's results at ``scale``; an arm trained with no compute has one run, shown at every scale."""
    if study.arms[arm].compute == "none":
        return next((c for (a, _), c in cells.items() if a == arm), None)
    return cells.get((arm, scale))


def _bands(cells) -> list[str]:
    return list(dict.fromkeys(b for c in cells.values() for b in c["by_band"]))


def _tasks(cell) -> list[str]:
    return list(dict.fromkeys(t for d in cell["glue"].values() for t in d["scores"]))


def pictures(study, cells, path: Path) -> None:
    """Each probe measure per arm and scale: the mean with a bar of one standard deviation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    scales = list(study.scales)
    for ax, measure, label in ((axes[0], "relation", "held-out relation loss (lower is better)"),
                               (axes[1], "cka", "CKA to the teacher (higher is better)")):
        for j, scale in enumerate(scales):
            xs, ys, es = [], [], []
            for i, arm in enumerate(study.arms):
                c = _cell(study, cells, arm, scale)
                if c:
                    s = Spread(c[measure])
                    xs.append(i + 0.25 * j)
                    ys.append(s.mean)
                    es.append(s.std)
            if xs:
                ax.errorbar(xs, ys, yerr=es, fmt="o", capsize=3, label=f"scale {scale}")
        ax.set_xticks(range(len(study.arms)))
        ax.set_xticklabels(list(study.arms), rotation=30, fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
