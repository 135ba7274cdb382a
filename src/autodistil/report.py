"""What the report computes from the fine-tuning results: the side-by-side table, each student's gain over its
random-init twin and its retention (how much of the teacher it keeps), and the markdown and CSV it is shown as."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from .io import InputError


def _ratio(student: float, twin: float, teacher: float) -> float | None:
    return None if teacher == twin else (student - twin) / (teacher - twin)


def student_retention(student: dict, twin: dict, teacher: dict, tasks: list[str]) -> dict:
    """What a student keeps of what the teacher knows beyond its random-init twin, (student - twin) /
    (teacher - twin), per task and on the average (1 = the teacher's score, 0 = no better than random
    initialisation; None where the teacher is no better than the twin), with its exact cost as a fraction
    of the teacher's."""
    per_task = {t: _ratio(student["scores"][t]["score"], twin["scores"][t]["score"], teacher["scores"][t]["score"])
                for t in tasks}
    frac = lambda key: (None if not student.get(key) or not teacher.get(key)  # noqa: E731
                        else student[key] / teacher[key])
    return {"tasks": per_task, "glue_avg": _ratio(student["glue_avg"], twin["glue_avg"], teacher["glue_avg"]),
            "gflops_exact_frac": frac("gflops_exact"), "params_exact_frac": frac("params_exact")}


METRIC_LABELS = {"accuracy": "acc", "f1": "F1", "matthews_correlation": "MCC", "pearson": "Pearson",
                 "spearmanr": "Spearman"}


def collect(models: list[str], tasks: list[str], root: Path) -> dict[str, dict[str, dict]]:
    """``{model: {task: metrics/glue/<model>/<task>.json}}``; a missing result names the stage that makes it."""
    results: dict[str, dict[str, dict]] = {}
    for model in models:
        results[model] = {}
        for task in tasks:
            path = root / model / f"{task}.json"
            if not path.is_file():
                raise InputError(f"{path}: not found (run `dvc repro finetune@{model}-{task}`)")
            results[model][task] = json.loads(path.read_text())
    return results


def load_latencies(results: dict[str, dict[str, dict]], exports: Path, teacher: Path) -> dict[str, float]:
    """Each model's measured latency (ms): the teacher's from ``teacher`` (metrics/teacher.json), a student's
    and its random twin's (same architecture) from ``exports``/<student>.json; a missing file names its stage."""
    latencies = {}
    for model, by_task in results.items():
        first = next(iter(by_task.values()))
        if first["kind"] == "teacher":
            path, stage = teacher, "teacher"
        else:
            student = first.get("student", model) if first["kind"] == "random" else model
            path, stage = exports / f"{student}.json", f"export@{student}"
        if not path.is_file():
            raise InputError(f"{path}: not found (run `dvc repro {stage}`)")
        latencies[model] = json.loads(path.read_text())["latency_ms"]
    return latencies


def summarise(results: dict[str, dict[str, dict]], tasks: list[str], latencies: dict[str, float] | None = None) -> dict:
    """Per model: kind, arch, costs, latency (from ``latencies``), score per task (points) and the average; per
    student: its gain over its random-init twin and its retention."""
    models = {}
    for model, by_task in results.items():
        first = by_task[tasks[0]]
        costs = first.get("costs") or {}
        scores = {t: {"metric": r["main_metric"], "split": r["main_split"], "score": 100 * r["score"],
                      "std": 100 * r["score_std"], "seeds": len(r["seeds"]), "epoch": [s["epoch"] for s in r["per_seed"]]}
                  for t, r in by_task.items()}
        models[model] = {
            "kind": first["kind"],
            **({"student": first["student"]} if first.get("student") else {}),
            "arch": first.get("arch"),
            **{k: costs.get(k) for k in ("params_paper", "gflops_paper", "params_exact", "gflops_exact")},
            "latency_ms": (latencies or {}).get(model),
            "scores": scores,
            "glue_avg": statistics.fmean(s["score"] for s in scores.values()),
        }
    gains, retention = {}, {}
    teacher = next((m for m in models.values() if m["kind"] == "teacher"), None)
    for model, m in models.items():
        baseline = f"random-{model}"
        if m["kind"] == "student" and baseline in models:
            twin = models[baseline]
            gains[model] = {t: m["scores"][t]["score"] - twin["scores"][t]["score"] for t in tasks}
            gains[model]["glue_avg"] = m["glue_avg"] - twin["glue_avg"]
            if teacher is not None:
                retention[model] = student_retention(m, twin, teacher, tasks)
    return {"models": models, "gain_over_random": gains, "retention": retention,
            "every_student_beats_random": bool(gains) and all(v > 0 for g in gains.values() for v in g.values())}


def fmt(x, digits=1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(summary: dict, tasks: list[str], protocol: dict) -> str:
    """reports/summary.md: the models table, gains over the twins, retention and the protocol."""
    models = summary["models"]
    any_model = next(iter(models.values()))
    heads = [f"{t} ({METRIC_LABELS.get(any_model['scores'][t]['metric'], any_model['scores'][t]['metric'])})"
             for t in tasks]
    lines = ["# GLUE dev results", "",
             "| model | kind | arch | params (M) | GFLOPs | latency (ms) | " + " | ".join(heads) + " | avg |",
             "|---|---|---|---|---|---|" + "---|" * len(tasks) + "---|"]
    teacher_gflops = next((m["gflops_exact"] for m in models.values() if m["kind"] == "teacher"), None)
    for name, m in models.items():
        arch = m.get("arch") or {}
        arch_s = f"L{arch.get('layers')} A{arch.get('heads')} H{arch.get('hidden')} F{arch.get('ffn')}" if arch else "-"
        cells = []
        for t in tasks:
            s = m["scores"][t]
            cells.append(fmt(s["score"]) + (f" ± {s['std']:.1f}" if s["seeds"] > 1 else ""))
        params = None if m["params_exact"] is None else m["params_exact"] / 1e6
        gflops = fmt(m["gflops_exact"], 3)
        if teacher_gflops and m["gflops_exact"] is not None and m["kind"] != "teacher":
            gflops += f" ({100 * m['gflops_exact'] / teacher_gflops:.0f} %)"
        lines.append(f"| {name} | {m['kind']} | {arch_s} | {fmt(params, 2)} | {gflops} | "
                     f"{fmt(m['latency_ms'], 1)} | " + " | ".join(cells) + f" | {fmt(m['glue_avg'])} |")
    if summary["gain_over_random"]:
        lines += ["", "## Distillation vs random initialisation (points, student minus random-<student>)", "",
                  "| student | " + " | ".join(tasks) + " | avg |", "|---|" + "---|" * (len(tasks) + 1)]
        for name, g in summary["gain_over_random"].items():
            lines.append(f"| {name} | " + " | ".join(f"{g[t]:+.1f}" for t in tasks) + f" | {g['glue_avg']:+.1f} |")
        verdict = "yes" if summary["every_student_beats_random"] else "no"
        lines += ["", f"Every student above its random-init baseline on every task: **{verdict}**."]
    if summary.get("retention"):
        lines += ["", "## Retention: (student - random twin) / (teacher - random twin)", "",
                  "| student | GFLOPs / teacher | " + " | ".join(tasks) + " | avg |", "|---|---|" + "---|" * (len(tasks) + 1)]
        for name, r in summary["retention"].items():
            frac = "-" if r["gflops_exact_frac"] is None else f"{100 * r['gflops_exact_frac']:.1f} %"
            lines.append(f"| {name} | {frac} | " + " | ".join(fmt(r["tasks"][t], 2) for t in tasks)
                         + f" | **{fmt(r['glue_avg'], 2)}** |")
    p = protocol
    seeds = p["seeds"]
    lines += [
        "", "## Protocol", "",
        "- Scores are GLUE dev scores x100: " + ", ".join(f"{t} {any_model['scores'][t]['metric']}" for t in tasks) +
        " (scikit-learn / scipy); the average is the plain mean over these tasks.",
        f"- Reported epoch: the **{p['report']}** dev epoch of each seed ("
        + ("the paper reports the best epoch of one seed" if p["report"] == "best" else "no selection on dev")
        + f"); seeds {seeds}" + (": mean ± sample std." if len(seeds) > 1 else " (one seed: no std)."),
        f"- Fine-tuning: AdamW lr {p['lr']:g}, batch {p['batch_size']}, {p['epochs']} epochs"
        + (f" (at most {p['max_steps']} steps)" if p.get("max_steps") else "")
        + f", warm-up {p['warmup_ratio']:g} of the steps then linear decay, weight decay {p['weight_decay']:g}, "
        f"max length {p['max_length']} tokens, pooling {p.get('pooling', 'cls')} ("
        + {"cls": "the model type's classifier: BERT's on the pooled [CLS]",
           "mean": "the mean over real tokens, as a sentence-transformers teacher pools",
           "auto": "each folder's own: the mean where it carries the teacher's sentence-transformers pooling, "
                   "else the model type's classifier on the pooled [CLS]"}.get(p.get("pooling", "cls"), "")
        + "; new head), "
        f"{'length-grouped' if p.get('group_by_length') else 'random'} batches, dev evaluation every epoch.",
        f"- Training examples per task: {', '.join(f'{t} {n}' for t, n in p['train_examples'].items())} "
        "(seeded subsets, see prepare_glue.max_train_samples).",
        "- random-<student>: the student's architecture with transformers' random initialisation (seeded by the "
        "fine-tuning seed), fine-tuned with the same protocol: the value of distillation.",
        "- Params and GFLOPs of the network that runs (exact convention; GFLOPs = multiply-accumulates of one "
        "128-token sequence, with the percentage of the teacher's; the paper's convention is in "
        "metrics/summary.json); latency = median of one forward pass, batch 1, on the machine that ran the "
        "pipeline.",
    ]
    return "\n".join(lines) + "\n"


def common_protocol(results: dict[str, dict[str, dict]], max_length: int, where: Path) -> dict:
    """The one fine-tuning protocol of every result (the device aside), with the max length and the training
    examples per task; a result fine-tuned otherwise is an :class:`InputError` naming its file."""
    models, tasks = list(results), list(next(iter(results.values())))
    first = results[models[0]][tasks[0]]
    same = lambda r: {k: v for k, v in r["protocol"].items() if k not in ("train_examples", "device")}  # noqa: E731
    for model, by_task in results.items():
        for task, r in by_task.items():
            if same(r) != same(first):
                raise InputError(f"{where}/{model}/{task}.json: fine-tuned with another protocol than "
                                 f"{models[0]}/{tasks[0]} (re-run `dvc repro finetune`)")
    return {**{k: v for k, v in first["protocol"].items() if k != "train_examples"}, "max_length": max_length,
            "train_examples": {t: results[models[0]][t]["protocol"]["train_examples"] for t in tasks}}


def load_candidates(subspaces: list[str], search_dir: Path) -> dict[str, list[dict]]:
    """Every scored candidate of each sub-space (metrics/search/<sub>.csv), for the Pareto picture."""
    candidates = {}
    for sub in subspaces:
        table = search_dir / f"{sub}.csv"
        if not table.is_file():
            raise InputError(f"{table}: not found (run `dvc repro search@{sub}`)")
        with table.open(newline="") as f:
            candidates[sub] = list(csv.DictReader(f))
    return candidates


def glue_avg_csv(summary: dict) -> str:
    """plots/glue_avg.csv: GLUE average against exact GFLOPs, one row per model."""
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["model", "kind", "params_exact_m", "gflops_exact", "glue_avg"])
    for name, m in summary["models"].items():
        writer.writerow([name, m["kind"], None if m["params_exact"] is None else round(m["params_exact"] / 1e6, 3),
                         m["gflops_exact"], round(m["glue_avg"], 3)])
    return rows.getvalue()


def yardstick_markdown(yardstick: dict) -> list[str]:
    """The yardstick's table: every model's scores without fine-tuning, each student's retention on them."""
    tasks = ", ".join(f"{t} ({n} pairs)" for t, n in yardstick["pairs_per_task"].items())
    lines = ["", "## Yardstick: no fine-tuning, no seed noise", "",
             f"Pairs: average precision of the cosine of {yardstick['pooling']}-pooled embeddings ranking the "
             f"positive pairs of {tasks}, 95 % bootstrap interval; agreement: Spearman (x100) of the pair "
             "cosines with the teacher's; CKA: linear CKA of the final hidden states to the teacher's on held-out "
             "corpus blocks. Retention on pairs and agreement as for GLUE.", "",
             "| model | kind | pairs (95 % CI) | agreement | CKA | retention (pairs) | retention (agreement) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in yardstick["models"].items():
        ret = yardstick["retention"].get(name, {})
        ci = f" ({r['pairs_low']:.1f}, {r['pairs_high']:.1f})" if "pairs_low" in r else ""
        lines.append(f"| {name} | {r['kind']} | {r['pairs']:.2f}{ci} | {fmt(r.get('agreement'), 1)} | "
                     f"{fmt(r.get('cka'), 3)} | {fmt(ret.get('pairs'), 2)} | {fmt(ret.get('agreement'), 2)} |")
    return lines


def report_job(params, results: dict, protocol: dict, search_dir: Path, exports: Path, teacher: Path,
               summary_path: Path, markdown_path: Path, plot_path: Path, pictures: Path,
               yardstick_path: Path | None = None):
    """The report stage's work: the ``results`` (:func:`collect`) of every model of ``finetune.models`` on every
    task of ``prepare_glue.tasks``, run with ``protocol`` (:func:`common_protocol`), side by side
    (``summary_path`` JSON, ``markdown_path`` table, ``plot_path`` CSV for `dvc plots`, ``glue_vs_cost.png`` and
    ``pareto.png`` in ``pictures``), as a :class:`autodistil.record.Record`."""
    from .io import atomic_path, atomic_write_text
    from .plots import glue_vs_cost_png, pareto_png
    from .record import Record

    tasks = params.prepare_glue.tasks
    students = params.search.students  # the Pareto picture: the sub-spaces of the students reported
    candidates = load_candidates(sorted({students[m] for m in params.finetune.models if m in students}), Path(search_dir))
    latencies = load_latencies(results, Path(exports), Path(teacher))
    summary = {"tasks": tasks, "protocol": protocol, **summarise(results, tasks, latencies)}
    text = markdown(summary, tasks, protocol)
    if yardstick_path is not None:
        if not Path(yardstick_path).is_file():
            raise InputError(f"{yardstick_path}: not found (run `dvc repro yardstick`)")
        yardstick = json.loads(Path(yardstick_path).read_text())
        summary["yardstick"] = {k: yardstick[k] for k in ("tasks", "pooling", "models", "retention",
                                                          "student_minus_twin")}
        text += "\n".join(yardstick_markdown(yardstick)) + "\n"
    atomic_write_text(plot_path, glue_avg_csv(summary))
    atomic_write_text(markdown_path, text)
    drawn = {"glue_vs_cost.png": lambda f: glue_vs_cost_png(summary["models"], f, tasks),
             "pareto.png": lambda f: pareto_png(candidates, f, params.search.convention)}
    for name, draw in drawn.items():
        with atomic_path(Path(pictures) / name) as tmp:
            draw(tmp)
    logged = {f"{name}.": {"glue_avg": m["glue_avg"], **{t: s["score"] for t, s in m["scores"].items()}}
              for name, m in summary["models"].items()}
    return Record(summary, summary_path, logged=logged, summary=text,
                  artifacts=[markdown_path, *(Path(pictures) / name for name in drawn)])
