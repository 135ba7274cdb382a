"""Stage report: every fine-tuned model side by side, as the paper's comparison table.

    python stages/report.py

Reads params.yaml (finetune.*, prepare_glue.{tasks,max_length,max_train_samples}, search.{students,convention},
mlflow.experiment), metrics/search/<subspace>.csv and metrics/glue/<model>/<task>.json for every model of finetune.models and task of prepare_glue.tasks. Writes

- metrics/summary.json   per model: kind (teacher / student / random), params and GFLOPs (paper and exact
                         conventions), measured latency, score per task (mean and std over seeds, in points
                         = x100) and the GLUE average over the tasks run; per student, its gain over its
                         random-init baseline on every task;
- reports/summary.md     the table (rows = models; params, GFLOPs, latency, tasks, average) with the protocol;
- plots/glue_avg.csv     GLUE average against GFLOPs, drawn by `dvc plots show`;
- reports/glue_vs_cost.png  the same as a picture: teacher, students and random-init twins told apart;
- reports/pareto.png     every scored candidate of metrics/search/<sub>.csv (the sub-spaces of search.students)
                         against its GFLOPs (search.convention), the chosen students starred;
- an MLflow run with the table and both pictures attached.
"""

import argparse
import csv
import io
import json
import statistics
from pathlib import Path

from autodistil.io import InputError, atomic_path, atomic_write_text, load_params, param, run_main
from autodistil.report import student_retention

METRIC_LABELS = {"accuracy": "acc", "f1": "F1", "matthews_correlation": "MCC", "pearson": "Pearson",
                 "spearmanr": "Spearman"}


def collect(models: list[str], tasks: list[str], root: Path) -> dict[str, dict[str, dict]]:
    results: dict[str, dict[str, dict]] = {}
    for model in models:
        results[model] = {}
        for task in tasks:
            path = root / model / f"{task}.json"
            if not path.is_file():
                raise InputError(f"{path}: not found (run `dvc repro finetune@{model}-{task}`)")
            results[model][task] = json.loads(path.read_text())
    return results


def summarise(results: dict[str, dict[str, dict]], tasks: list[str]) -> dict:
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
            "latency_ms": first.get("latency_ms"),
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
        f"max length {p['max_length']} tokens, classifier on the pooled [CLS] (new head), "
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--results", default="metrics/glue")
    ap.add_argument("--summary", default="metrics/summary.json")
    ap.add_argument("--markdown", default="reports/summary.md")
    ap.add_argument("--plot", default="plots/glue_avg.csv")
    ap.add_argument("--search", default="metrics/search", help="the search stages' candidate tables (<sub>.csv)")
    ap.add_argument("--pictures", default="reports", help="where pareto.png and glue_vs_cost.png go")
    args = ap.parse_args()

    params = load_params(args.params)
    src = args.params
    models = param(params, "finetune.models", source=src)
    tasks = param(params, "prepare_glue.tasks", source=src)
    if not isinstance(models, list) or not models or not isinstance(tasks, list) or not tasks:
        raise InputError(f"{src}: finetune.models and prepare_glue.tasks must be non-empty lists")
    experiment = param(params, "mlflow.experiment", default="autodistil")
    convention = param(params, "search.convention", default="exact", source=src)
    subspaces = sorted(set((param(params, "search.students", default={}, source=src) or {}).values()))
    candidates = {}
    for sub in subspaces:  # every scored candidate, for the Pareto picture
        table = Path(args.search) / f"{sub}.csv"
        if not table.is_file():
            raise InputError(f"{table}: not found (run `dvc repro search@{sub}`)")
        with table.open(newline="") as f:
            candidates[sub] = list(csv.DictReader(f))
    results = collect([str(m) for m in models], [str(t) for t in tasks], Path(args.results))
    first = results[models[0]][tasks[0]]
    protocol = {**{k: v for k, v in first["protocol"].items() if k != "train_examples"},
                "max_length": param(params, "prepare_glue.max_length", source=src),
                "train_examples": {t: results[models[0]][t]["protocol"]["train_examples"] for t in tasks}}
    for model, by_task in results.items():  # one protocol for the whole table
        for task, r in by_task.items():
            other = {k: v for k, v in r["protocol"].items() if k not in ("train_examples", "device")}
            if other != {k: v for k, v in first["protocol"].items() if k not in ("train_examples", "device")}:
                raise InputError(f"{args.results}/{model}/{task}.json: fine-tuned with another protocol than "
                                 f"{models[0]}/{tasks[0]} (re-run `dvc repro finetune`)")

    import mlflow

    from autodistil.plots import glue_vs_cost_png, pareto_png

    from autodistil.tracking import log_metrics, stage_run, write_metrics

    summary = summarise(results, tasks)
    summary = {"tasks": tasks, "protocol": protocol, **summary}
    with stage_run("report", {"finetune": protocol, "tasks": tasks}, experiment) as run:
        for name, m in summary["models"].items():
            log_metrics({"glue_avg": m["glue_avg"], **{t: s["score"] for t, s in m["scores"].items()}},
                        prefix=f"{name}.")
        text = markdown(summary, tasks, protocol)
        rows = io.StringIO()
        writer = csv.writer(rows)
        writer.writerow(["model", "kind", "params_exact_m", "gflops_exact", "glue_avg"])
        for name, m in summary["models"].items():
            writer.writerow([name, m["kind"], None if m["params_exact"] is None else round(m["params_exact"] / 1e6, 3),
                             m["gflops_exact"], round(m["glue_avg"], 3)])
        atomic_write_text(args.plot, rows.getvalue())
        atomic_write_text(args.markdown, text)
        write_metrics(args.summary, summary, run)
        mlflow.log_artifact(args.markdown)
        for name, draw in (("glue_vs_cost.png", lambda f: glue_vs_cost_png(summary["models"], f, tasks)),
                           ("pareto.png", lambda f: pareto_png(candidates, f, convention))):
            with atomic_path(Path(args.pictures) / name) as tmp:
                draw(tmp)
            mlflow.log_artifact(str(Path(args.pictures) / name))
    print(text)


if __name__ == "__main__":
    run_main(main)
