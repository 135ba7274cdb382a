"""Stage prepare_glue@<task>: GLUE TSV folder (or the hub's Parquet GLUE) -> tokenised splits.

    python stages/prepare_glue.py <task> <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, prepare_glue.*), writes data/glue/<task>/ and
metrics/prepare_glue/<task>.json, both atomically. Bad input: one line on stderr, exit 1, nothing written.
"""

import argparse
import time

from autodistil.glue import get_task, load_hub_splits, load_tsv_splits, prepare_task
from autodistil.io import int_param, load_params, param, run_main


def task_cap(params: dict, key: str, task: str, source: str) -> int | None:
    """``prepare_glue.<key>``: one cap for every task, or ``{default: n, <task>: n}`` (null = no cap)."""
    value = param(params, f"prepare_glue.{key}", None, source=source)
    if isinstance(value, dict):
        name = task if task in value else "default"
        return int_param(value, name, None, minimum=0, allow_none=True, source=f"{source}: prepare_glue.{key}")
    return int_param(params, f"prepare_glue.{key}", None, minimum=0, allow_none=True, source=source)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task", help="GLUE task (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out-root", required=True)
    ap.add_argument("--metrics-root", required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    p = param(params, "prepare_glue", source=args.params)
    spec = get_task(args.task)
    hub = p.get("hub")
    source = param(params, "prepare_glue.source", source=args.params)
    max_length = int_param(params, "prepare_glue.max_length", minimum=8, source=args.params)
    caps = {k: task_cap(params, k, spec.name, args.params) for k in ("max_train_samples", "max_eval_samples")}
    seed = int_param(params, "prepare_glue.seed", 0, source=args.params)

    t0 = time.perf_counter()
    # Parse (and validate) everything before anything is tracked or written.
    splits = load_hub_splits(spec, hub) if hub else load_tsv_splits(spec, source)

    from autodistil.teacher import load_tokenizer
    from autodistil.tracking import log_metrics, stage_run, write_metrics

    teacher = param(params, "teacher.source", source=args.params)
    tokenizer = load_tokenizer(teacher)
    stage = f"prepare_glue@{args.task}"
    logged = {"teacher": params.get("teacher", {}), "prepare_glue": {k: v for k, v in p.items() if k != "tasks"},
              "task": spec.name}
    experiment = param(params, "mlflow.experiment", default="autodistil")
    with stage_run(stage, logged, experiment) as run:
        stats = prepare_task(
            spec, splits, tokenizer, f"{args.out_root}/{args.task}",
            max_length=max_length,
            max_train_samples=caps["max_train_samples"],
            max_eval_samples=caps["max_eval_samples"],
            seed=seed,
            extra_meta={"source": hub or source, "tokenizer": teacher},
        )
        metrics = {"task": spec.name, "source": hub or source, "num_labels": spec.num_labels,
                   **stats, "seconds": round(time.perf_counter() - t0, 2)}
        log_metrics({k: v for k, v in metrics.items() if k not in ("task", "source")})
        write_metrics(f"{args.metrics_root}/{args.task}.json", metrics, run)
    s = ", ".join(f"{k} {v['examples']}" for k, v in stats.items())
    print(f"prepare_glue {spec.name}: {s} examples ({metrics['seconds']} s)")


if __name__ == "__main__":
    run_main(main)
