"""Stage report: every fine-tuned model side by side, as the paper's comparison table.

    python stages/report.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (finetune.*, prepare_glue.{tasks,max_length,max_train_samples}, search.{students,convention},
mlflow.experiment), metrics/search/<subspace>.csv, metrics/glue/<model>/<task>.json for every model of
finetune.models and task of prepare_glue.tasks, and the measured latencies (metrics/teacher.json,
metrics/export/<student>.json). Writes

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
from pathlib import Path

from autodistil.io import InputError, atomic_path, atomic_write_text, load_params, param, run_main
from autodistil.report import (collect, common_protocol, glue_avg_csv, load_candidates, load_latencies, markdown,
                               summarise)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--results", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--markdown", required=True)
    ap.add_argument("--plot", required=True)
    ap.add_argument("--search", required=True, help="the search stages' candidate tables (<sub>.csv)")
    ap.add_argument("--pictures", required=True, help="where pareto.png and glue_vs_cost.png go")
    ap.add_argument("--exports", required=True, help="the export stages' metrics (<student>.json: latency)")
    ap.add_argument("--teacher", required=True, help="the teacher stage's metrics (latency)")
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
    candidates = load_candidates(subspaces, Path(args.search))
    results = collect([str(m) for m in models], [str(t) for t in tasks], Path(args.results))
    protocol = common_protocol(results, param(params, "prepare_glue.max_length", source=src), Path(args.results))
    latencies = load_latencies(results, Path(args.exports), Path(args.teacher))

    import mlflow

    from autodistil.plots import glue_vs_cost_png, pareto_png
    from autodistil.tracking import log_metrics, stage_run, write_metrics

    summary = summarise(results, tasks, latencies)
    summary = {"tasks": tasks, "protocol": protocol, **summary}
    with stage_run("report", {"finetune": protocol, "tasks": tasks}, experiment) as run:
        for name, m in summary["models"].items():
            log_metrics({"glue_avg": m["glue_avg"], **{t: s["score"] for t, s in m["scores"].items()}},
                        prefix=f"{name}.")
        text = markdown(summary, tasks, protocol)
        atomic_write_text(args.plot, glue_avg_csv(summary))
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
