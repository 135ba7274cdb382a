"""Stage search@<subspace>: the best student architecture per budget in a trained SuperLM, without re-training.

    python stages/search.py <subspace> <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, superlm.{loss,teacher_layer,student_layer},
search.*), models/superlm/<subspace>/, partition/subspaces.json and the held-out corpus blocks
(data/corpus). Scores every candidate (or a seeded sample above search.max_candidates) by its held-out
relation-distillation loss, picks one student per budget of search.budgets.<subspace>, and writes

- metrics/search/<subspace>.csv    every scored candidate (the Pareto plot of dvc.yaml draws it);
- metrics/search/<subspace>.json   each chosen student's arch, costs, loss (latency where a budget measured it),
                                   the provenance (teacher, data and SuperLM hashes) and timings; the
                                   export@<student> stages turn each chosen student into a model folder;
- an MLflow run with the CSV and a loss-vs-GFLOPs scatter attached.
"""

import argparse
import hashlib
import json
import time
from pathlib import Path

from autodistil.io import InputError, load_params, param, run_main


def file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


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
    sub_name = args.subspace

    # ---- params and inputs (all checked before anything heavy runs or anything is written)
    params = load_params(args.params)
    source = param(params, "teacher.source", source=args.params)
    experiment = param(params, "mlflow.experiment", default="autodistil")
    from autodistil.partition import load_subspace, load_subspaces, load_teacher_shape
    from autodistil.search import SearchConfig, check_feasible, cost_row, sample_candidates
    from autodistil.space import SearchSpaceError

    subspace = load_subspace(args.subspaces, sub_name)
    cfg = SearchConfig.from_params(params, sub_name, load_subspaces(args.subspaces), Path(args.glue), args.params)
    # budgets on params / GFLOPs are checked against the grid before anything heavy runs
    dims, vocab = load_teacher_shape(args.subspaces)
    try:
        all_candidates = subspace.candidates(dims)
    except SearchSpaceError as e:
        raise InputError(f"{args.subspaces}: {e}") from None
    archs, sampled = sample_candidates(all_candidates, cfg.max_candidates, cfg.seed)
    pinned = {b.arch for b in cfg.budgets.values() if b.arch} - {a.name for a in archs}
    archs += [a for a in all_candidates if a.name in pinned]  # a pinned student is scored even outside the sample
    cost_rows = [cost_row(a, cfg.seq_len, dims.heads, vocab) for a in archs]
    teacher_row = cost_row(dims.as_arch(), cfg.seq_len, dims.heads, vocab)
    budgets = {name: b.resolve(teacher_row, cfg.convention) for name, b in cfg.budgets.items()}  # fractions -> limits
    for budget in budgets.values():
        check_feasible(cost_rows, budget, cfg.convention, sub_name)

    superlm_dir = Path(args.superlm) / sub_name
    if not (superlm_dir / "superlm.pt").is_file():
        raise InputError(f"{superlm_dir}: no trained SuperLM (run `dvc repro superlm@{sub_name}`)")
    corpus = Path(args.corpus)
    if not (corpus / "heldout.npy").is_file():
        raise InputError(f"{corpus}/heldout.npy: not found (run the prepare_corpus stage)")

    # ---- heavy imports and the search
    import tempfile

    import mlflow

    from autodistil.corpus import load_blocks
    from autodistil.device import resolve_device
    from autodistil.plots import pareto_png
    from autodistil.search import load_superlm_and_teacher, search_subspace, write_csv
    from autodistil.tracking import log_metrics, log_step, stage_run, write_metrics

    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    superlm, teacher = load_superlm_and_teacher(superlm_dir, source, dims, archs, device, args.subspaces)
    blocks = load_blocks(corpus, "heldout")
    if len(blocks) < cfg.eval_blocks:
        raise InputError(f"{corpus}/heldout.npy has {len(blocks)} blocks, search.eval_blocks asks for {cfg.eval_blocks}")
    hashes = {"superlm_sha256": file_hash(superlm_dir / "superlm.pt"),
              "heldout_sha256": file_hash(corpus / "heldout.npy", corpus / "meta.json"),
              "train_data": superlm.config.provenance.get("data")}

    logged = {"teacher": {"source": source}, "search": param(params, "search"),
              "superlm_loss": vars(cfg.spec) | {"relation_heads": superlm.config.relation_heads}}
    with stage_run(f"search@{sub_name}", logged, experiment, tags={"subspace": sub_name}) as run:
        found = search_subspace(superlm, teacher, blocks[:cfg.eval_blocks], archs, budgets, cfg, sub_name,
                                dims.heads, vocab, device, log=log_step, progress=not args.no_progress)
        write_csv(Path(args.metrics) / f"{sub_name}.csv", found.rows, sub_name)
        metrics = {
            "subspace": sub_name,
            "candidates": len(all_candidates),
            "candidates_scored": len(found.rows),
            "sampled": sampled,
            "convention": cfg.convention,
            "criterion": cfg.criterion,
            "teacher_costs": {k: teacher_row[k] for k in ("params_paper", "gflops_paper", "params_exact", "gflops_exact")},
            "seq_len": cfg.seq_len,
            "students": found.students,  # read by export@<student>, with the provenance below
            "provenance": {"teacher": source, "distill": vars(found.spec), "heldout_blocks": cfg.eval_blocks,
                           "sampled": sampled, **hashes},
            "best_loss": min(r["loss"] for r in found.rows),
            "timing": {"wall_seconds": round(time.perf_counter() - t_start, 2), **found.timing},
        }
        log_metrics({k: v for k, v in metrics.items() if k != "students"})
        for name, st in found.students.items():
            log_metrics({"loss": st["loss"], **st["costs"]}, prefix=f"{name}.")
        write_metrics(Path(args.metrics) / f"{sub_name}.json", metrics, run)
        mlflow.log_artifact(str(Path(args.metrics) / f"{sub_name}.csv"))
        with tempfile.TemporaryDirectory() as d:
            png = Path(d) / f"search_{sub_name}.png"
            pareto_png({sub_name: found.rows}, png, cfg.convention, f"held-out {cfg.criterion} loss")
            mlflow.log_artifact(str(png))
    print(json.dumps({"subspace": sub_name, "wall_seconds": metrics["timing"]["wall_seconds"],
                      "seconds_per_candidate": metrics["timing"]["seconds_per_candidate"],
                      "students": {n: {"arch": s["arch_name"], "loss": round(s["loss"], 4),
                                       "gflops_paper": round(s["costs"]["gflops_paper"], 4)}
                                   for n, s in found.students.items()}}))


if __name__ == "__main__":
    run_main(main)
