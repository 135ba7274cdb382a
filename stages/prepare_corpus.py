"""Stage prepare_corpus: unlabelled text (local folder or hub dataset) -> train / held-out token blocks.

    python stages/prepare_corpus.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, prepare_corpus.*, and the held-out blocks later stages take:
search.eval_blocks, superlm.eval_blocks, probes.eval_blocks, read but not DVC params of the stage: see dvc.yaml), writes data/corpus/
(train.npy, heldout.npy, meta.json) and metrics/corpus.json, both atomically (:func:`autodistil.corpus.prepare_corpus`).
Bad input, or a corpus too small for the later stages: one line on stderr, exit 1, nothing written.
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
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    params = load(args.params)

    from autodistil.corpus import prepare_corpus
    from autodistil.record import record, tracked

    logged = {"teacher": plain(params.teacher), "prepare_corpus": plain(params.prepare_corpus)}
    with tracked("prepare_corpus", params, logged) as run:
        record(run, prepare_corpus(params, args.out, args.metrics))


if __name__ == "__main__":
    run_main(main)
