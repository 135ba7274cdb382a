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
"""

import argparse
import json
import time
from pathlib import Path

from autodistil.io import InputError, atomic_path, load_params, param, run_main


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
    params = load_params(args.params)
    section = param(params, "finetune", source=args.params)
    if not isinstance(section, dict):
        raise InputError(f"{args.params}: finetune must be a mapping")
    models = param(params, "finetune.models", source=args.params)
    if not isinstance(models, list) or args.model not in models:
        raise InputError(f"{args.params}: finetune.models does not list {args.model!r} (lists {models!r})")
    from autodistil.finetune import Protocol

    protocol = Protocol.from_params(section, f"{args.params}: finetune")
    experiment = param(params, "mlflow.experiment", default="autodistil")

    model_dir = Path(args.models) / args.model
    if not (model_dir / "autodistil.json").is_file():
        stage = ("teacher" if args.model == "teacher"
                 else f"export@{args.model.removeprefix('random-')}")
        raise InputError(f"{model_dir}: not a model folder of this pipeline (run `dvc repro {stage}`)")
    task_dir = Path(args.glue) / args.task
    if not (task_dir / "task.json").is_file():
        raise InputError(f"{task_dir}: not a prepared GLUE task (run `dvc repro prepare_glue@{args.task}`)")

    # ---- fine-tuning
    import dataclasses

    from autodistil.export import read_info
    from autodistil.finetune import finetune, over_seeds
    from autodistil.tracking import log_metrics, log_step, stage_run, write_metrics

    info = read_info(model_dir)
    kind = info.get("kind", "student")
    # lineage by content: the SuperLM file a student was sliced from (its MLflow runs: metrics/export/<student>.json)
    tags = {"model": args.model, "task": args.task, "kind": kind, "arch": info.get("arch_name", ""),
            **{k: info[k] for k in ("student", "subspace", "superlm_sha256") if info.get(k)}}
    logged = {"finetune": {**protocol.to_dict(), "keep_weights": protocol.keep_weights},
              "model": args.model, "task": args.task}
    t0 = time.perf_counter()
    per_seed, kept = [], None
    with stage_run(f"finetune@{args.model}-{args.task}", logged, experiment, tags=tags) as run:
        for i, seed in enumerate(protocol.seeds):
            res = finetune(model_dir, task_dir, dataclasses.replace(protocol.config, seed=seed),
                           log=lambda m, step, seed=seed: log_step({f"seed{seed}.{k}": v for k, v in m.items()}, step),
                           random_init=kind == "random",
                           keep=protocol.report if protocol.keep_weights and i == 0 else None,
                           progress=not args.no_progress, desc=f"{args.model} {args.task} seed {seed}")
            kept = res.pop("model", kept)
            chosen = res[protocol.report]
            per_seed.append({"seed": seed, "epoch": chosen["epoch"], "score": chosen[res["main_split"]][res["main_metric"]],
                             "best_epoch": res["best_epoch"], "epochs": res["epochs"], "steps": res["steps"],
                             "seconds": round(res["seconds"], 2)})
        main, splits = res["main_metric"], res["dev_splits"]
        score, dev = over_seeds(per_seed, splits)
        metrics = {
            "model": args.model, "kind": kind, "task": args.task, "main_metric": main,
            "main_split": splits[0], "report": protocol.report, "seeds": list(protocol.seeds),
            "score": score["mean"], "score_std": score["std"], "dev": dev,
            "arch": info.get("arch"), "costs": info.get("costs"),
            "params_module": info.get("params_module"),
            **({"student": info["student"]} if kind == "random" else {}),
            "protocol": {**protocol.to_dict(), "train_examples": res["train_examples"]},
            "per_seed": per_seed, "seconds": round(time.perf_counter() - t0, 2),
        }
        log_metrics({"score": score["mean"], "score_std": score["std"], "seconds": metrics["seconds"]})
        log_metrics(dev)
        with atomic_path(Path(args.out) / args.model / args.task, is_dir=True) as tmp:
            if kept is not None:
                kept.save_pretrained(tmp)
                from transformers import AutoTokenizer

                AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp)
            else:
                (tmp / "README.md").write_text(
                    f"Weights of finetune@{args.model}-{args.task} are not kept (finetune.keep_weights: false); "
                    f"the scores are in {args.metrics}/{args.model}/{args.task}.json.\n")
        write_metrics(Path(args.metrics) / args.model / f"{args.task}.json", metrics, run)
    print(json.dumps({"model": args.model, "task": args.task, main: round(score["mean"], 4),
                      "std": round(score["std"], 4), "report": protocol.report, "seconds": metrics["seconds"]}))


if __name__ == "__main__":
    run_main(main)
