"""The budget study: does SuperLM training make a student better than the untrained slice of the same architecture?

For one architecture per sub-space (by default the student the committed search chose), every point trains a
SuperLM from the (importance-ordered) teacher on a number of tokens and scores that architecture's sub-network on
the yardstick (:mod:`autodistil.yardstick`): 0 tokens is the untrained slice. Two variants:

- ``shared``: the SuperLM of the whole sub-space, as the pipeline trains it (sandwich sampling, weight sharing);
- ``standalone``: the control, the same architecture distilled alone from its slice on the same tokens (no weight
  sharing). Shared below standalone is weight-sharing interference; both below the slice is a poor objective or
  schedule, not too little sharing.

Each point's training settings are params.yaml's ``superlm`` section with the point's overrides. Points are
written one by one to ``<out>/points.jsonl`` (a point already there is not run again) and training checkpoints
stay under ``<out>/checkpoints``: a study stopped at any moment resumes where it was, across sessions.

    python -m autodistil.study run --subspaces tiny small --tokens 0 40960 409600 --variants shared standalone
    python -m autodistil.study report              # table (paired bootstrap against the slice) and picture
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .io import InputError

DEFAULT_OUT = "studies/budget"
VARIANTS = ("shared", "standalone")


def point_key(subspace: str, arch: str, variant: str, tokens: int, overrides: dict) -> str:
    extra = "".join(f"-{k}={v}" for k, v in sorted(overrides.items()))
    return f"{subspace}-{arch}-{variant}-{tokens}{extra}" if tokens else f"{subspace}-{arch}-slice"


def chosen_arch(metrics_dir: Path, subspace: str):
    """The architecture the committed search of ``subspace`` chose (its first student)."""
    from .space import Arch

    path = metrics_dir / f"{subspace}.json"
    if not path.is_file():
        raise InputError(f"{path}: no search metrics for sub-space {subspace!r} (run `dvc repro search@{subspace}` or "
                         f"pass --arch)")
    student = next(iter(json.loads(path.read_text())["students"].values()))
    a = student["arch"]
    return Arch(a["layers"], a["heads"], a["hidden"], a["ffn"], a["head_size"])


def parse_arch(name: str, head_size: int):
    """``L1-A6-H192-F384`` -> Arch."""
    from .space import Arch

    try:
        parts = {p[0]: int(p[1:]) for p in name.split("-")}
        return Arch(parts["L"], parts["A"], parts["H"], parts["F"], parts.get("D", head_size))
    except (KeyError, ValueError):
        raise InputError(f"--arch {name!r}: expected L<layers>-A<heads>-H<hidden>-F<ffn>, e.g. L1-A6-H192-F384")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs of the superlm section (values parsed as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected key=value of params.yaml's superlm section")
        value = yaml.safe_load(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        out[key] = value
    return out


class Study:
    """The fixed parts of a study: params, teacher, corpus, yardstick; points are trained and scored one by one."""

    def __init__(self, params_path: str, subspaces: str, corpus: str, out: str, glue: str | None = None):
        from transformers import AutoTokenizer

        from .config import load
        from .corpus import load_blocks
        from .pooling import resolve_pooling
        from .teacher import load_teacher, tokenizer_source
        from .yardstick import Yardstick, hf_encoder, load_pair_sets

        self.params = load(params_path)
        self.params_path, self.subspaces, self.corpus, self.out = params_path, subspaces, Path(corpus), Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        y = self.params.yardstick
        source = self.params.teacher.source
        teacher = load_teacher(source)
        self.pooling = resolve_pooling(self.params.finetune.pooling, source)
        sets = load_pair_sets(glue or self.params.prepare_glue.source, y.tasks, y.splits, y.max_pairs, y.seed)
        tok = AutoTokenizer.from_pretrained(tokenizer_source(source))
        heldout = load_blocks(self.corpus, "heldout")[: y.cka_blocks]
        self.yardstick = Yardstick(sets, tok, self.pooling, y.max_length, y.batch_size, y.bootstrap, y.seed,
                                   heldout, hf_encoder(teacher))
        self.teacher = teacher

    # -------------------------------------------------------------------------------------------- records
    @property
    def points_file(self) -> Path:
        return self.out / "points.jsonl"

    def done(self) -> dict[str, dict]:
        if not self.points_file.is_file():
            return {}
        return {r["key"]: r for r in map(json.loads, self.points_file.read_text().splitlines()) if r}

    def _write(self, record: dict, scores) -> None:
        np.savez(self.out / f"{record['key']}.npz", *scores.similarity)
        with self.points_file.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def score(self, key: str, encode, extra: dict) -> dict:
        t0 = time.perf_counter()
        record, scores = self.yardstick.score(encode)
        record = {"key": key, **extra, **record, "score_seconds": round(time.perf_counter() - t0, 1)}
        self._write(record, scores)
        return record

    # ---------------------------------------------------------------------------------------------- points
    def references(self, arch, subspace: str) -> None:
        """The teacher's and the random twin's scores (once each)."""
        from .yardstick import hf_encoder

        done = self.done()
        if "teacher" not in done:
            self.score("teacher", hf_encoder(self.teacher), {"kind": "teacher"})
        key = f"{subspace}-{arch.name}-twin"
        if key not in done:
            import torch
            from transformers import AutoModel

            config = twin_config(self.teacher.config, arch)
            torch.manual_seed(self.params.yardstick.seed)
            self.score(key, hf_encoder(AutoModel.from_config(config)),
                       {"kind": "twin", "subspace": subspace, "arch": arch.name})

    def run_point(self, subspace: str, arch, variant: str, tokens: int, overrides: dict) -> dict | None:
        from .partition import load_subspace
        from .space import SubSpace
        from .superlm_job import SuperLMJob, data_fingerprint
        from .yardstick import subnet_encoder

        key = point_key(subspace, arch.name, variant, tokens, overrides)
        scored = key in self.done()
        if scored and (tokens or (self.out / "students" / key).is_dir()):
            return None  # a trained point is not re-trained for its folder; the slice's is remade in seconds
        cfg = dataclasses.replace(self.params.superlm, max_tokens=tokens, max_steps=None, **overrides)
        sub = load_subspace(self.subspaces, subspace)
        if variant == "standalone" or tokens == 0:  # the slice is the same whichever SuperLM holds it
            sub = SubSpace(f"{subspace}-{arch.name}", (arch.layers,), (arch.heads,), (arch.hidden,),
                           (f"{arch.ffn}/{arch.hidden}",), sub.convention)
        provenance = {"teacher": self.params.teacher.source, "subspace": sub.name,
                      "data": data_fingerprint(self.corpus), "init_order": cfg.init_order}
        job = SuperLMJob.build(cfg, self.params.teacher.source, sub, self.corpus, provenance)
        if arch not in job.candidates:
            raise InputError(f"{arch.name} is not a candidate of sub-space {subspace!r}")
        if scored:
            self.export(job.superlm, arch, key)
            return None
        before = sliced_state(job.superlm, arch)
        t0 = time.perf_counter()
        result = job.train(self.out / "checkpoints" / key) if tokens else None
        extra = {"weight_change": weight_change(before, sliced_state(job.superlm, arch)),
                 "kind": "student", "subspace": subspace, "arch": arch.name, "variant": variant if tokens else "slice",
                 "tokens": tokens, "steps": result.steps if result else 0, "overrides": overrides,
                 "train_seconds": round(time.perf_counter() - t0, 1)}
        record = self.score(key, subnet_encoder(job.superlm, arch), extra)
        self.export(job.superlm, arch, key)
        return record

    def export(self, superlm, arch, key: str) -> None:
        """The point's student as a model folder (``<out>/students/<key>``), for :func:`glue`."""
        from .export import export_student, teacher_module_files
        from .teacher import load_tokenizer

        source = self.params.teacher.source
        export_student(superlm, arch, self.out / "students" / key, load_tokenizer(source),
                       {"kind": "student", "study_point": key}, extra_files=teacher_module_files(source, arch.hidden))


def sliced_state(superlm, arch) -> dict:
    """The weights of ``arch`` as the exported student would hold them (CPU copies)."""
    from .export import build_student

    return {k: v.detach().clone() for k, v in build_student(superlm, arch).state_dict().items()}


def module_group(name: str) -> str | None:
    """The module group a student parameter belongs to (BERT names), for :func:`weight_change`."""
    if "LayerNorm" in name:
        return "LayerNorm"
    if name.startswith("embeddings."):
        return "embeddings"
    if name.startswith("pooler."):
        return "pooler"
    if ".attention.self." in name:
        return "attention q/k/v"
    if ".attention.output.dense." in name:
        return "attention output"
    if ".intermediate.dense." in name or ".output.dense." in name:
        return "FFN"
    return None


def weight_change(before: dict, after: dict) -> dict[str, float]:
    """Relative change ||after - before|| / ||before|| of the student's weights, per module group."""
    num: dict[str, float] = {}
    den: dict[str, float] = {}
    for k, v in before.items():
        group = module_group(k)
        if group is not None:
            num[group] = num.get(group, 0.0) + float((after[k].float() - v.float()).pow(2).sum())
            den[group] = den.get(group, 0.0) + float(v.float().pow(2).sum())
    return {g: (num[g] / den[g]) ** 0.5 if den[g] else 0.0 for g in num}


def twin_config(teacher_config, arch):
    """The stock config of ``arch`` in the teacher's family (what the export writes), for a random twin."""
    from transformers import AutoConfig

    d = teacher_config.to_dict()
    d.update(num_hidden_layers=arch.layers, num_attention_heads=arch.heads, hidden_size=arch.hidden,
             intermediate_size=arch.ffn)
    return AutoConfig.for_model(**{k: v for k, v in d.items() if k not in ("_name_or_path", "transformers_version")})


# -------------------------------------------------------------------------------------------------- GLUE
def point_folder(out: Path, key: str, teacher: Path) -> Path:
    """The model folder of a study point: its exported student; for ``<sub>-<arch>-twin`` the slice's folder
    (the twin re-initialises its architecture); for ``teacher`` the teacher's own folder ``teacher``."""
    if key == "teacher":
        return teacher
    if key.endswith("-twin"):
        return out / "students" / f"{key.removesuffix('-twin')}-slice"
    return out / "students" / key


def glue(out: Path, keys: list[str], tasks: list[str], seeds: list[int], params_path: str = "params.yaml",
         glue_dir: str = "data/glue", pooling: str | None = None) -> None:
    """Fine-tune the students of ``keys`` (and, for a key ending in ``-twin``, that architecture randomly
    initialised; ``teacher`` for the teacher) on ``tasks`` with params.yaml's protocol, once per seed; one line
    per (key, task, seed, pooling) in ``<out>/glue.jsonl`` (done ones are skipped). ``pooling``: cls or mean for
    every model (default: params.yaml's finetune.pooling made concrete for the teacher)."""
    from .config import load
    from .finetune import Protocol, finetune

    params = load(params_path)
    protocol = Protocol.from_section(params.finetune)
    path = out / "glue.jsonl"
    done = {(r["key"], r["task"], r["seed"], r["pooling"]) for r in map(json.loads, path.read_text().splitlines())
            } if path.is_file() else set()
    from .pooling import resolve_pooling
    from .teacher import resolve_source

    pooling = resolve_pooling(pooling or params.finetune.pooling, params.teacher.source)  # one for every model
    teacher = Path(resolve_source(params.teacher.source))
    for key in keys:
        folder = point_folder(out, key, teacher)
        if not folder.is_dir():
            raise InputError(f"{folder}: no model folder for study point {key!r}")
        for task in tasks:
            for seed in seeds:
                if (key, task, seed, pooling) in done:
                    continue
                cfg = dataclasses.replace(protocol.config, seed=seed, pooling=pooling)
                res = finetune(folder, Path(glue_dir) / task, cfg, random_init=key.endswith("-twin"))
                rec = {"key": key, "task": task, "seed": seed, "score": 100 * res["score"],
                       "best_epoch": res["best_epoch"], "pooling": res["pooling"], "seconds": round(res["seconds"], 1)}
                with path.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps(rec), flush=True)


# ------------------------------------------------------------------------------------------------ report
def report(out: Path, draws_seed: int = 0, n_boot: int = 1000) -> str:
    """A table of every point: yardstick, CKA, retention on the yardstick and the paired bootstrap difference
    against the untrained slice of the same architecture; and the picture of retention against tokens."""
    from .yardstick import PairScores, bootstrap_rows, paired_difference, retention

    records = {r["key"]: r for r in map(json.loads, (out / "points.jsonl").read_text().splitlines()) if r}

    def scores(key: str) -> PairScores:
        z = np.load(out / f"{key}.npz")
        return PairScores([_Labels(lbl) for lbl in _labels_of(out)], [z[f"arr_{i}"] for i in range(len(z.files))])

    teacher = records["teacher"]
    lines = ["| sub-space | arch | variant | overrides | tokens | pairs | agreement | CKA | retention (pairs) | "
             "pairs vs slice (95 % CI) |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for r in sorted((r for r in records.values() if r.get("kind") == "student"),
                    key=lambda r: (r["subspace"], r["arch"], r["variant"] != "slice", json.dumps(r["overrides"]),
                                   r["tokens"], r["variant"])):
        base = f"{r['subspace']}-{r['arch']}"
        twin = records.get(f"{base}-twin")
        ret = retention(r["pairs"], teacher["pairs"], twin["pairs"]) if twin else None
        slice_key = f"{base}-slice"
        diff = ""
        if r["variant"] != "slice" and slice_key in records:
            a, b = scores(r["key"]), scores(slice_key)
            draws = bootstrap_rows([len(s) for s in a.similarity], n_boot, draws_seed)
            d = paired_difference(a, b, draws)
            diff = f"{d['difference']:+.2f} ({d['low']:+.2f}, {d['high']:+.2f})"
            r = {**r, "vs_slice": d}
        rows.append({**r, "retention": ret})
        over = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "-"
        lines.append(f"| {r['subspace']} | {r['arch']} | {r['variant']} | {over} | {r['tokens']:,} | "
                     f"{r['pairs']:.2f} | {r.get('agreement', float('nan')):.1f} | {r.get('cka', float('nan')):.3f} | "
                     f"{'' if ret is None else f'{ret:.3f}'} | {diff} |")
    glue_lines, glue_rows = glue_table(out)
    (out / "summary.json").write_text(json.dumps({"teacher": teacher, "points": rows, "glue": glue_rows},
                                                 indent=1) + "\n")
    picture(rows, teacher, records, out / "retention_vs_tokens.png")
    return "\n".join(lines + glue_lines)


def glue_table(out: Path) -> tuple[list[str], dict]:
    """Mean ± std over seeds per (point, task) from ``<out>/glue.jsonl``, and each student's retention against its
    twin and the teacher on the tasks' average (per seed, then mean ± std)."""
    path = out / "glue.jsonl"
    if not path.is_file():
        return [], {}
    runs = [json.loads(line) for line in path.read_text().splitlines() if line]
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    by = {}
    for r in runs:  # rows: "<key> [<pooling>]"
        by.setdefault(f"{r['key']} [{r['pooling']}]", {}).setdefault(r["task"], {})[r["seed"]] = r["score"]
    rows, lines = {}, ["", "| point | " + " | ".join(tasks) + " | avg | retention (avg) |",
                       "|---|" + "---|" * (len(tasks) + 2)]

    def avg_by_seed(key):
        seeds = sorted(set.intersection(*(set(by[key].get(t, {})) for t in tasks)))
        return {s: float(np.mean([by[key][t][s] for t in tasks])) for s in seeds}

    for key, per_task in by.items():
        cells = {t: (float(np.mean(list(v.values()))), float(np.std(list(v.values()), ddof=1)) if len(v) > 1 else 0.0)
                 for t, v in per_task.items()}
        avg = avg_by_seed(key)
        point, pooling = key.rsplit(" ", 1)
        teacher = avg_by_seed(f"teacher {pooling}") if f"teacher {pooling}" in by else {}
        twin_key = ("-".join(point.split("-")[:5]) + f"-twin {pooling}"
                    if point != "teacher" and not point.endswith("-twin") else None)
        ret = None
        if twin_key in by and teacher:
            twin = avg_by_seed(twin_key)
            seeds = sorted(set(avg) & set(twin) & set(teacher))
            vals = [(avg[s] - twin[s]) / (teacher[s] - twin[s]) for s in seeds if teacher[s] != twin[s]]
            ret = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0) if vals else None
        a = list(avg.values())
        rows[key] = {"tasks": cells, "avg": float(np.mean(a)) if a else None, "retention": ret, "seeds": len(a)}
        lines.append(f"| {key} | " + " | ".join(f"{cells[t][0]:.1f} ± {cells[t][1]:.1f}" if t in cells else "-"
                                               for t in tasks)
                     + f" | {np.mean(a):.1f} | " + ("-" if ret is None else f"{ret[0]:.2f} ± {ret[1]:.2f}") + " |")
    return lines, rows


def picture(rows: list[dict], teacher: dict, records: dict, path: Path) -> None:
    """Retention on the yardstick's pairs against SuperLM training tokens, one line per sub-space, variant and
    setting, the untrained slice at 0; bars: the bootstrap interval of the student's score, in retention units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .yardstick import retention

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    lines: dict[tuple, list] = {}
    for r in rows:
        if r["variant"] == "slice":
            continue
        setting = {k: v for k, v in r["overrides"].items() if not k.startswith("warmup")}  # warm-up scales with steps
        lines.setdefault((r["subspace"], r["arch"], r["variant"], json.dumps(setting, sort_keys=True)), []).append(r)
    for ax, measure in zip(axes, ("pairs", "agreement")):
        for (sub, arch, variant, over), pts in lines.items():
            twin, base = records.get(f"{sub}-{arch}-twin"), records.get(f"{sub}-{arch}-slice")
            if twin is None or base is None or measure not in twin:
                continue
            pts = [base, *sorted(pts, key=lambda p: p["tokens"])]
            x = [max(p.get("tokens", 0), 1) for p in pts]
            y = [retention(p[measure], teacher[measure], twin[measure]) for p in pts]
            err = None
            if measure == "pairs":
                gap = teacher["pairs"] - twin["pairs"]
                err = [[(p["pairs"] - p["pairs_low"]) / gap for p in pts], [(p["pairs_high"] - p["pairs"]) / gap
                                                                             for p in pts]]
            label = f"{sub} {arch} {variant} " + ",".join(f"{k}={v}" for k, v in json.loads(over).items()
                                                    if k in ("lr", "hidden_weight", "relation_split"))
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("SuperLM training tokens (0 = the untrained slice, drawn at 1)")
        ax.set_ylabel(f"retention on the yardstick's {measure}")
        ax.set_title(measure)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class _Labels:
    def __init__(self, d):
        self.task, self.labels, self.metric = d["task"], np.asarray(d["labels"]), d["metric"]


def _labels_of(out: Path) -> list[dict]:
    return json.loads((out / "labels.json").read_text())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m autodistil.study", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and score the points not yet in <out>")
    r.add_argument("--subspaces", nargs="+", required=True, dest="names")
    r.add_argument("--tokens", nargs="+", type=int, required=True, help="SuperLM training tokens; 0 = the slice")
    r.add_argument("--variants", nargs="+", choices=VARIANTS, default=["shared"])
    r.add_argument("--arch", nargs="*", default=None, help="one per sub-space (default: the committed search's)")
    r.add_argument("--set", nargs="*", default=[], help="superlm overrides, key=value")
    r.add_argument("--params", default="params.yaml")
    r.add_argument("--partition", default="partition/subspaces.json")
    r.add_argument("--corpus", default="data/corpus")
    r.add_argument("--glue", default=None, help="GLUE folder of the yardstick's tasks (default: prepare_glue.source)")
    r.add_argument("--search-metrics", default="metrics/search")
    r.add_argument("--out", default=DEFAULT_OUT)
    p = sub.add_parser("report", help="the table and summary.json of <out>")
    p.add_argument("--out", default=DEFAULT_OUT)
    g = sub.add_parser("glue", help="fine-tune study points on GLUE (params.yaml's protocol), several seeds")
    g.add_argument("--keys", nargs="+", required=True, help="point keys; <sub>-<arch>-twin for the random twin")
    g.add_argument("--tasks", nargs="+", default=["SST-2", "MRPC", "CoLA"])
    g.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    g.add_argument("--params", default="params.yaml")
    g.add_argument("--glue", default="data/glue")
    g.add_argument("--pooling", choices=["cls", "mean"], default=None)
    g.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    if args.command == "report":
        print(report(Path(args.out)))
        return
    if args.command == "glue":
        glue(Path(args.out), args.keys, args.tasks, args.seeds, args.params, args.glue, args.pooling)
        return
    study = Study(args.params, args.partition, args.corpus, args.out, args.glue)
    labels = [{"task": s.task, "labels": s.labels.tolist(), "metric": s.metric} for s in study.yardstick.sets]
    (study.out / "labels.json").write_text(json.dumps(labels))
    overrides = parse_overrides(args.set)
    head = study.teacher.config.hidden_size // study.teacher.config.num_attention_heads
    for i, name in enumerate(args.names):
        arch = parse_arch(args.arch[i], head) if args.arch else chosen_arch(Path(args.search_metrics), name)
        study.references(arch, name)
        for tokens in args.tokens:
            for variant in (args.variants if tokens else ["shared"]):
                rec = study.run_point(name, arch, variant, tokens, overrides if tokens else {})
                if rec is not None:
                    print(json.dumps({k: rec[k] for k in ("key", "pairs", "cka", "steps", "train_seconds")}),
                          flush=True)


if __name__ == "__main__":
    from .io import run_main

    run_main(main)
