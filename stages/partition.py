"""Stage partition: the teacher's shape + params -> K disjoint sub-space grids.

    python stages/partition.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, partition.*) and the teacher's config (no weights),
writes partition/subspaces.json and metrics/partition.json, both atomically. Bad input: one line on
stderr, exit 1, nothing written.
"""

import argparse
import time
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load, plain
from autodistil.io import run_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    params = load(args.params)

    from autodistil.partition import partition_from_params, partition_record
    from autodistil.record import record, tracked

    t0 = time.perf_counter()
    _, doc = partition_from_params(params, args.params)  # every check, before anything is tracked or written
    seconds = time.perf_counter() - t0
    logged = {"teacher": plain(params.teacher), "partition": plain(params.partition)}
    with tracked("partition", params, logged) as run:
        record(run, partition_record(doc, seconds, args.out, args.metrics))


if __name__ == "__main__":
    run_main(main)
