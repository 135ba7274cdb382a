"""Stage superlm@<subspace>: train one weight-sharing SuperLM by relation distillation from the teacher.

    python stages/train_superlm.py <subspace> <paths>     (the paths: as dvc.yaml's cmd passes them)
    python -m autodistil.launch stages/train_superlm.py <subspace> <paths>   # under torchrun as params.yaml launch says

Reads params.yaml (teacher.source, mlflow.experiment, superlm.*), partition/subspaces.json and the corpus
blocks (data/corpus). Writes models/superlm/<subspace>/ (the SuperLM), metrics/superlm/<subspace>.json
(held-out relation loss of the largest, a middle and the smallest candidate before and after training)
and plots/superlm/<subspace>.csv (the loss curve). Checkpoints go to checkpoints/superlm/<subspace>/<config hash>/:
a re-run after an interruption resumes from the last one; a finished run removes it. Rank 0's work inside the
MLflow run is :func:`autodistil.superlm_job.train_and_report`; under DDP the other ranks train without a run.
"""

import argparse
import os
import sys
from pathlib import Path

LAUNCHER = os.getppid()  # read before the package's slow imports, so a launcher that dies meanwhile is noticed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load, plain  # noqa: E402
from autodistil.io import run_main  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("subspace")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--subspaces", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoints", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--plots", required=True)
    args = ap.parse_args()

    from autodistil.guard import exclusive_dir, exit_with_parent

    exit_with_parent(LAUNCHER)  # torchrun starts workers in a session of their own: never outlive the launcher
    if os.environ.get("RANK", "0") != "0":
        run(args)
        return
    with exclusive_dir(Path(args.checkpoints) / args.subspace, "checkpoint folder"):  # one writer, or a named refusal
        run(args)


def run(args: argparse.Namespace) -> None:
    params = load(args.params)
    cfg, source = params.superlm, params.teacher.source

    from autodistil.checkpoint import clear_checkpoints
    from autodistil.partition import load_subspace
    from autodistil.record import record, tracked
    from autodistil.superlm_job import SuperLMJob, data_fingerprint, train_and_report

    sub = load_subspace(args.subspaces, args.subspace)
    corpus = Path(args.corpus)
    provenance = {"teacher": source, "subspace": args.subspace, "data": data_fingerprint(corpus),
                  "init_order": cfg.init_order}
    job = SuperLMJob.build(cfg, source, sub, corpus, provenance, f"{args.params}: superlm", args.subspaces)
    ckpt_dir = Path(args.checkpoints) / args.subspace
    if not job.dist.master:  # other ranks train their shard; rank 0 evaluates, logs and writes
        job.train(ckpt_dir)
        return

    logged = {"teacher": {"source": source}, "superlm": plain(cfg), "subspace": sub.to_dict(),
              "world_size": job.dist.world}
    with tracked(f"superlm@{args.subspace}", params, logged, tags={"subspace": args.subspace}) as run:
        record(run, train_and_report(job, args.subspace, ckpt_dir, Path(args.out) / args.subspace,
                                     Path(args.metrics) / f"{args.subspace}.json",
                                     Path(args.plots) / f"{args.subspace}.csv"))
    clear_checkpoints(job.result.checkpoint_dir)  # finished: the model is the output now


if __name__ == "__main__":
    run_main(main)
