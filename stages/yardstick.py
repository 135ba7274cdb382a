"""Stage yardstick: every model of finetune.models scored without fine-tuning (autodistil.yardstick).

    python stages/yardstick.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (yardstick.*, finetune.models and finetune.pooling, prepare_glue.source / hub, mlflow.experiment),
the model folders (models/<model>: the teacher snapshot, the students, the random twins' configs) and the held-out
corpus blocks (data/corpus). Writes metrics/yardstick.json: per model the sentence-pair score (average precision of
the pairs' cosine similarity, with its bootstrap interval), the agreement with the teacher's similarities and the
CKA to its final hidden states; per student its retention against its random twin and the paired bootstrap of
student minus twin. Bad input: one line on stderr, exit 1, nothing written.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load, plain
from autodistil.io import run_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    params = load(args.params)

    from autodistil.record import record, tracked
    from autodistil.yardstick import yardstick_job

    with tracked("yardstick", params, {"yardstick": plain(params.yardstick)}) as run:
        record(run, yardstick_job(params, args.models, args.corpus, args.metrics))


if __name__ == "__main__":
    run_main(main)
