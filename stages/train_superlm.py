"""Stage superlm@<subspace>: train one weight-sharing SuperLM by relation distillation from the teacher.

    python stages/train_superlm.py <subspace> <paths>     (the paths: as dvc.yaml's cmd passes them)
    python -m autodistil.launch stages/train_superlm.py <subspace> <paths>   # under torchrun as params.yaml launch says

Reads params.yaml (teacher.source, mlflow.experiment, superlm.*), partition/subspaces.json and the corpus
blocks (data/corpus). Writes models/superlm/<subspace>/ (the SuperLM), metrics/superlm/<subspace>.json
(held-out relation loss of the largest, a middle and the smallest candidate before and after training)
and plots/superlm/<subspace>.csv (the loss curve). Checkpoints go to checkpoints/superlm/<subspace>/<config hash>/:
a re-run after an interruption resumes from the last one; a finished run removes it.
"""

import argparse
import csv
import hashlib
import json
import os
import tempfile
from pathlib import Path

LAUNCHER = os.getppid()  # read before the package's slow imports, so a launcher that dies meanwhile is noticed

from autodistil.io import atomic_path, load_params, param, run_main  # noqa: E402


def data_fingerprint(corpus: Path) -> str:
    """Identifies the training data, so that a checkpoint is never resumed on other blocks."""
    h = hashlib.sha256((corpus / "meta.json").read_bytes())
    h.update(str((corpus / "train.npy").stat().st_size).encode())
    return h.hexdigest()[:16]


def write_curve(path: Path, history: list[dict]) -> None:
    keys = ["step", "loss_mean", "loss_largest", "loss_smallest", "lr", "grad_norm", "tokens_per_second", "mfu"]
    keys = [k for k in keys if any(k in r for r in history)]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


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
    params = load_params(args.params)
    p = param(params, "superlm", source=args.params)
    from autodistil.train import TrainConfig

    cfg = TrainConfig.from_params(dict(p), f"{args.params}: superlm")
    source = param(params, "teacher.source", source=args.params)
    experiment = param(params, "mlflow.experiment", default="autodistil")

    from autodistil.checkpoint import clear_checkpoints
    from autodistil.compute import sampled_flops
    from autodistil.partition import load_subspace
    from autodistil.superlm_job import SuperLMJob

    sub = load_subspace(args.subspaces, args.subspace)
    corpus = Path(args.corpus)
    provenance = {"teacher": source, "subspace": args.subspace, "data": data_fingerprint(corpus),
                  "init_order": cfg.init_order}
    job = SuperLMJob.build(cfg, source, sub, corpus, provenance, f"{args.params}: superlm", args.subspaces)
    ckpt_dir = Path(args.checkpoints) / args.subspace
    if not job.dist.master:  # other ranks train their shard; rank 0 evaluates, logs and writes
        job.train(ckpt_dir)
        return

    import mlflow

    from autodistil.plots import loss_curve_png
    from autodistil.tracking import log_step, stage_run, write_metrics

    heldout_loss = job.heldout_report()
    logged = {"teacher": {"source": source}, "superlm": p, "subspace": sub.to_dict(), "world_size": job.dist.world}
    with stage_run(f"superlm@{args.subspace}", logged, experiment, tags={"subspace": args.subspace}) as run:
        before = heldout_loss()
        mlflow.log_metrics({f"heldout_before_{k}": v for k, v in before.items()})
        result = job.train(ckpt_dir, log_step)
        after = heldout_loss()
        mlflow.log_metrics({f"heldout_after_{k}": v for k, v in after.items()})

        with atomic_path(Path(args.out) / args.subspace, is_dir=True) as tmp:
            job.save(tmp)
        write_curve(Path(args.plots) / f"{args.subspace}.csv", result.history)
        metrics = {
            "subspace": args.subspace,
            "candidates": len(job.candidates),
            "probes": {k: a.name for k, a in job.probes.items()},
            "heldout_loss_before": before,
            "heldout_loss_after": after,
            "steps": result.steps,
            "resumed_from_step": result.resumed_from,
            "tokens": result.steps * cfg.batch_size * job.blocks.shape[1],
            # what the sampled sub-networks cost to train (forward + backward): the unit ablations hold equal
            "train_flops": sampled_flops(job.sampler, result.steps, cfg.batch_size, job.blocks.shape[1],
                                         cfg.hidden_weight > 0),
            "train_seconds": round(result.seconds, 1),
            "tokens_per_second": round(result.tokens_per_second, 1),
            "world_size": job.dist.world,
            "device": str(job.device),
        }
        write_metrics(Path(args.metrics) / f"{args.subspace}.json", metrics, run)
        mlflow.log_artifact(str(Path(args.plots) / f"{args.subspace}.csv"))
        with tempfile.TemporaryDirectory() as tmpdir:  # the curve as a picture, titled with its sub-space
            png = Path(tmpdir) / f"superlm_{args.subspace}.png"
            loss_curve_png(result.history, png, args.subspace, f"relation {cfg.loss}")
            mlflow.log_artifact(str(png))
    clear_checkpoints(result.checkpoint_dir)  # finished: the model is the output now
    print(json.dumps({"heldout_loss_before": before, "heldout_loss_after": after,
                      "tokens_per_second": metrics["tokens_per_second"]}))


if __name__ == "__main__":
    run_main(main)
