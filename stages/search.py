"""Stage search@<subspace>: the best student architecture per budget in a trained SuperLM, without re-training.

    python stages/search.py <subspace> <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, superlm.{loss,teacher_layer,student_layer,hidden_weight},
search.*), models/superlm/<subspace>/, partition/subspaces.json, the held-out corpus blocks (data/corpus) and,
with search.proxy, its GLUE task (data/glue). Scores every candidate (or a seeded sample above
search.max_candidates) by its held-out relation-distillation loss, picks one student per budget of
search.budgets.<subspace>, and writes

- metrics/search/<subspace>.csv    every scored candidate (the Pareto plot of dvc.yaml draws it);
- metrics/search/<subspace>.json   each chosen student's arch, costs, loss (latency where a budget measured it),
                                   the provenance (teacher, data and SuperLM hashes) and timings; the
                                   export@<student> stages turn each chosen student into a model folder;
- an MLflow run with the CSV and a loss-vs-GFLOPs scatter attached.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load
from autodistil.io import run_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("subspace")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--subspaces", required=True)
    ap.add_argument("--superlm", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--glue", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    params = load(args.params)

    # budgets, SuperLM and held-out blocks: all checked before anything heavy runs or anything is written
    from autodistil.search import plan_search

    plan = plan_search(params, args.subspace, args.subspaces, args.superlm, args.corpus, args.glue, args.params)

    from autodistil.record import record, tracked
    from autodistil.search import search_job
    from autodistil.tracking import log_step

    with tracked(f"search@{args.subspace}", params, plan.logged, tags={"subspace": args.subspace}) as run:
        record(run, search_job(plan, args.metrics, log=log_step, progress=not args.no_progress))


if __name__ == "__main__":
    run_main(main)
