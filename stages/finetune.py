"""Stage finetune@<model>-<task>: fine-tune one model on one GLUE task, over the protocol's seeds.

    python stages/finetune.py <model> <task> <paths>     (the paths: as dvc.yaml's cmd passes them)

<model> is ``teacher`` (models/teacher/), a student (models/<student>/) or ``random-<student>`` (its
architecture, randomly initialised). Reads params.yaml (finetune.*, mlflow.experiment), the model folder and
data/glue/<task>/. Writes

- metrics/glue/<model>/<task>.json   the reported score (best or last epoch, per finetune.report) as mean and
                                     std over finetune.seeds, every metric of every dev split, each seed's
                                     epochs, the model's kind, arch and costs;
- finetuned/<model>/<task>/          the fine-tuned classifier of the first seed when finetune.keep_weights,
                                     else only a note (DVC needs the declared output to exist);
- one MLflow run tagged with the model, task, kind and the hash of the student's SuperLM, with the
  training loss per step and the dev metrics per epoch of every seed.

The work is :func:`autodistil.finetune.finetune_model`; this script checks the inputs and records its result.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load
from autodistil.io import InputError, run_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("task")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True)
    ap.add_argument("--glue", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()

    # ---- params and inputs, all checked before anything heavy runs or anything is written
    params = load(args.params)
    models = params.finetune.models
    if args.model not in models:
        raise InputError(f"{args.params}: finetune.models does not list {args.model!r} (lists {models!r})")
    model_dir = Path(args.models) / args.model
    if not (model_dir / "autodistil.json").is_file():
        stage = "teacher" if args.model == "teacher" else f"export@{args.model.removeprefix('random-')}"
        raise InputError(f"{model_dir}: not a model folder of this pipeline (run `dvc repro {stage}`)")
    task_dir = Path(args.glue) / args.task
    if not (task_dir / "task.json").is_file():
        raise InputError(f"{task_dir}: not a prepared GLUE task (run `dvc repro prepare_glue@{args.task}`)")

    # ---- fine-tuning
    from autodistil.export import read_info
    from autodistil.finetune import Protocol, finetune_model
    from autodistil.record import record, tracked

    protocol, info = Protocol.from_section(params.finetune), read_info(model_dir)
    # lineage by content: the SuperLM file a student was sliced from (its MLflow runs: metrics/export/<student>.json)
    tags = {"model": args.model, "task": args.task, "kind": info.get("kind", "student"),
            "arch": info.get("arch_name", ""),
            **{k: info[k] for k in ("student", "subspace", "superlm_sha256") if info.get(k)}}
    logged = {"finetune": {**protocol.to_dict(), "keep_weights": protocol.keep_weights},
              "model": args.model, "task": args.task}
    with tracked(f"finetune@{args.model}-{args.task}", params, logged, tags=tags) as run:
        record(run, finetune_model(protocol, args.model, args.task, model_dir, task_dir, info, args.out, args.metrics,
                                   progress=not args.no_progress))


if __name__ == "__main__":
    run_main(main)
