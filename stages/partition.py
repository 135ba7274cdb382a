"""Stage partition: the teacher's shape + params -> K disjoint sub-space grids.

    python stages/partition.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, partition.*) and the teacher's config (no weights),
writes partition/subspaces.json and metrics/partition.json, both atomically. Bad input: one line on
stderr, exit 1, nothing written.
"""

import argparse
import time

from autodistil.io import load_params, param, run_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    source = str(param(params, "teacher.source", source=args.params))
    from autodistil.partition import partition_from_params, partition_metrics

    t0 = time.perf_counter()
    subs, doc = partition_from_params(params, source, args.params)
    metrics = partition_metrics(doc, round(time.perf_counter() - t0, 3))

    from autodistil.io import atomic_write_json
    from autodistil.tracking import log_metrics, stage_run, write_metrics

    logged = {"teacher": params.get("teacher", {}), "partition": params.get("partition")}
    with stage_run("partition", logged, param(params, "mlflow.experiment", default="autodistil")) as run:
        atomic_write_json(args.out, doc)
        log_metrics({k: v for k, v in metrics.items() if k not in ("mode", "convention")})
        write_metrics(args.metrics, metrics, run)
        import mlflow

        mlflow.log_dict(doc, "subspaces.json")
    for name, d in doc["subspaces"].items():
        print(f"partition: {name}: L{d['layers']} A{d['heads']} H{d['hidden']} R{d['mlp_ratio']}: "
              f"{d['candidates']} candidates ({d['skipped']} skipped), "
              f"{d['params_paper'][0] / 1e6:.2f}-{d['params_paper'][1] / 1e6:.2f} M params, "
              f"{d['gflops_exact'][0]:.3f}-{d['gflops_exact'][1]:.3f} GFLOPs "
              f"({100 * d['gflops_exact_frac'][0]:.1f}-{100 * d['gflops_exact_frac'][1]:.1f} % of the teacher's)")
    print(f"partition: {doc['mode']}, {doc['convention']}, K={len(subs)}, teacher {source}, "
          f"{metrics['seconds']} s")


if __name__ == "__main__":
    run_main(main)
