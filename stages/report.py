"""Stage report: every fine-tuned model side by side, as the paper's comparison table.

    python stages/report.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (finetune.*, prepare_glue.{tasks,max_length,max_train_samples}, search.{students,convention},
mlflow.experiment), metrics/search/<subspace>.csv, metrics/glue/<model>/<task>.json for every model of
finetune.models and task of prepare_glue.tasks, and the measured latencies (metrics/teacher.json,
metrics/export/<student>.json). Writes

- metrics/summary.json   per model (with metrics/yardstick.json: its yardstick scores and each student's retention
                         on them): kind (teacher / student / random), params and GFLOPs (paper and exact
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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load
from autodistil.io import run_main


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
    ap.add_argument("--yardstick", default=None, help="the yardstick stage's metrics (scores without fine-tuning)")
    args = ap.parse_args()
    params = load(args.params)

    from autodistil.record import record, tracked
    from autodistil.report import common_protocol, collect, report_job

    # the results are read and checked before the run opens: a missing one is a one-line error, nothing tracked
    results = collect(params.finetune.models, params.prepare_glue.tasks, Path(args.results))
    protocol = common_protocol(results, params.prepare_glue.max_length, Path(args.results))
    with tracked("report", params, {"finetune": protocol, "tasks": params.prepare_glue.tasks}) as run:
        record(run, report_job(params, results, protocol, Path(args.search), Path(args.exports), Path(args.teacher),
                               Path(args.summary), Path(args.markdown), Path(args.plot), Path(args.pictures),
                               Path(args.yardstick) if args.yardstick else None))


if __name__ == "__main__":
    run_main(main)
