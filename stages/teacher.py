"""Stage teacher: a snapshot of the teacher as a model folder, with its costs and latency.

    python stages/teacher.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, search.seq_len, search.latency). Writes models/teacher/
(the encoder and tokenizer that ``teacher.source`` resolves to, saved with ``save_pretrained``, plus
autodistil.json: kind, source, arch, params and GFLOPs in both conventions), so that fine-tuning treats the
teacher like every other model and the report compares them on the same footing, and metrics/teacher.json
(its latency, measured like the students', kept out of the model folder so that a re-snapshot of the same
teacher is byte-identical and re-runs no fine-tuning job).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load
from autodistil.io import run_main
from autodistil.teacher import check_input_length


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True, help="metrics JSON: latency and the MLflow run")
    args = ap.parse_args()
    params = load(args.params)
    check_input_length("search.latency.seq_len", params.search.latency.seq_len, params.teacher.source)

    from autodistil.export import snapshot_teacher
    from autodistil.record import record, tracked

    logged = {"teacher": {"source": params.teacher.source}, "search": {"seq_len": params.search.seq_len}}
    with tracked("teacher", params, logged, tags={"teacher": params.teacher.source}) as run:
        record(run, snapshot_teacher(params, args.out, args.metrics))


if __name__ == "__main__":
    run_main(main)
