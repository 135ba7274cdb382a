"""Stage prepare_glue@<task>: GLUE TSV folder (or the hub's Parquet GLUE) -> tokenised splits.

    python stages/prepare_glue.py <task> <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, prepare_glue.*), writes data/glue/<task>/ and
metrics/prepare_glue/<task>.json, both atomically (:func:`autodistil.glue.prepare_glue`). Bad input: one line on
stderr, exit 1, nothing written.
"""

import argparse
import time
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load, plain
from autodistil.glue import check_task_names, get_task, load_hub_splits, load_tsv_splits, prepare_glue
from autodistil.io import run_main
from autodistil.teacher import check_input_length


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task", help="GLUE task (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out-root", required=True)
    ap.add_argument("--metrics-root", required=True)
    args = ap.parse_args()
    params = load(args.params)
    p = params.prepare_glue
    check_task_names(p)
    spec = get_task(args.task)

    t0 = time.perf_counter()
    # Parse (and validate) everything before anything is tracked or written.
    splits = load_hub_splits(spec, p.hub) if p.hub else load_tsv_splits(spec, p.source)
    check_input_length("prepare_glue.max_length", p.max_length, params.teacher.source)

    from autodistil.record import record, tracked

    logged = {"teacher": plain(params.teacher), "prepare_glue": {k: v for k, v in plain(p).items() if k != "tasks"},
              "task": spec.name}
    with tracked(f"prepare_glue@{args.task}", params, logged) as run:
        record(run, prepare_glue(params, spec, splits, f"{args.out_root}/{args.task}",
                                 f"{args.metrics_root}/{args.task}.json", t0))


if __name__ == "__main__":
    run_main(main)
