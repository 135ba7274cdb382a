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
    from autodistil.cost import Vocab
    from autodistil.partition import load_subspace, load_subspaces, load_teacher_dims
    from autodistil.search import SearchConfig, check_feasible, cost_row, sample_candidates
    from autodistil.space import SearchSpaceError

    subspace = load_subspace(args.subspaces, sub_name)
    cfg = SearchConfig.from_params(params, sub_name, load_subspaces(args.subspaces), Path(args.glue), args.params)
    # budgets on params / GFLOPs are checked against the grid before anything heavy runs
    doc_teacher = json.loads(Path(args.subspaces).read_text())["teacher"]
    dims = load_teacher_dims(args.subspaces)
    vocab = Vocab(doc_teacher["vocab_size"], doc_teacher["max_position_embeddings"], doc_teacher["type_vocab_size"])
    try:
        all_candidates = subspace.candidates(dims)
    except SearchSpaceError as e:
        raise InputError(f"{args.subspaces}: {e}") from None
    archs, sampled = sample_candidates(all_candidates, cfg.max_candidates, cfg.seed)
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
    import dataclasses
    import tempfile

    import mlflow
    import torch

    from autodistil.device import resolve_device

    from autodistil.corpus import load_blocks
    from autodistil.distill import HeldOut
    from autodistil.export import build_student
    from autodistil.importance import ORDER_FILE, Order, apply_order
    from autodistil.plots import pareto_png
    from autodistil.latency import measure_latency
    from autodistil.search import choose_students, mark_chosen, score_candidates, student_record, write_csv
    from autodistil.space import TeacherDims
    from autodistil.superlm import SuperLM
    from autodistil.teacher import load_teacher
    from autodistil.tracking import log_metrics, log_step, stage_run, write_metrics

    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    superlm = SuperLM.load(superlm_dir).eval().to(device)
    teacher = load_teacher(source, device)
    if TeacherDims.from_config(teacher.config) != dims:
        raise InputError(f"{args.subspaces}: partitioned for another teacher than teacher.source {source!r}")
    if (superlm_dir / ORDER_FILE).is_file():  # the SuperLM was sliced from the importance-ordered teacher
        apply_order(teacher, Order.from_dict(torch.load(superlm_dir / ORDER_FILE, weights_only=False)))
    for a in archs:
        if not superlm.config.envelope.contains(a):
            raise InputError(f"{superlm_dir}: candidate {a.name} does not fit the SuperLM (was it trained on "
                             f"another partition? re-run superlm@{sub_name})")
    blocks = load_blocks(corpus, "heldout")
    if len(blocks) < cfg.eval_blocks:
        raise InputError(f"{corpus}/heldout.npy has {len(blocks)} blocks, search.eval_blocks asks for {cfg.eval_blocks}")
    blocks = blocks[:cfg.eval_blocks]
    spec = dataclasses.replace(cfg.spec, relation_heads=superlm.config.relation_heads)
    hashes = {"superlm_sha256": file_hash(superlm_dir / "superlm.pt"),
              "heldout_sha256": file_hash(corpus / "heldout.npy", corpus / "meta.json"),
              "train_data": superlm.config.provenance.get("data")}

    arch_by_name = {a.name: a for a in archs}
    latency_cache: dict[str, dict] = {}

    def latency(row) -> float:
        if row["arch"] not in latency_cache:
            latency_cache[row["arch"]] = measure_latency(build_student(superlm, arch_by_name[row["arch"]]), cfg.latency)
        return latency_cache[row["arch"]]["latency_ms"]

    logged = {"teacher": {"source": source}, "search": param(params, "search"), "superlm_loss": dataclasses.asdict(spec)}
    with stage_run(f"search@{sub_name}", logged, experiment, tags={"subspace": sub_name}) as run:
        t0 = time.perf_counter()
        heldout = HeldOut(teacher, blocks, spec, cfg.batch_size, device)
        teacher_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = score_candidates(superlm, heldout, archs, cfg.seq_len, progress=not args.no_progress,
                                log=log_step, criterion=cfg.criterion)
        score_seconds = time.perf_counter() - t0
        chosen, proxy_seconds = choose_students(rows, budgets, cfg.convention, sub_name, latency, cfg.proxy,
                                                lambda row: build_student(superlm, arch_by_name[row["arch"]]))
        mark_chosen(rows, chosen)
        students = {name: student_record(row, arch_by_name[row["arch"]], budgets[name], cfg.seq_len, dims.heads, vocab,
                                         latency_cache.get(row["arch"], {}).get("latency_ms"),
                                         cfg.proxy.task if cfg.proxy else None)
                    for name, row in chosen.items()}
        wall = time.perf_counter() - t_start
        csv_path = Path(args.metrics) / f"{sub_name}.csv"
        for r in rows:
            if r["arch"] in latency_cache:
                r["latency_ms"] = latency_cache[r["arch"]]["latency_ms"]
        write_csv(csv_path, rows, sub_name)
        metrics = {
            "subspace": sub_name,
            "candidates": len(all_candidates),
            "candidates_scored": len(rows),
            "sampled": sampled,
            "convention": cfg.convention,
            "criterion": cfg.criterion,
            "teacher_costs": {k: teacher_row[k] for k in ("params_paper", "gflops_paper", "params_exact", "gflops_exact")},
            "seq_len": cfg.seq_len,
            "students": students,  # read by export@<student>, with the provenance below
            "provenance": {"teacher": source, "distill": dataclasses.asdict(spec), "heldout_blocks": cfg.eval_blocks,
                           "sampled": sampled, **hashes},
            "best_loss": min(r["loss"] for r in rows),
            "timing": {
                "wall_seconds": round(wall, 2),
                "teacher_seconds": round(teacher_seconds, 3),
                "score_seconds": round(score_seconds, 3),
                "seconds_per_candidate": round(score_seconds / len(rows), 4),
                "latency_measurements": len(latency_cache),
                "proxy_seconds": round(proxy_seconds, 2),
                "heldout_blocks": cfg.eval_blocks,
                "threads": torch.get_num_threads(),
            },
        }
        log_metrics({k: v for k, v in metrics.items() if k != "students"})
        for name, st in students.items():
            log_metrics({"loss": st["loss"], **st["costs"]}, prefix=f"{name}.")
        write_metrics(Path(args.metrics) / f"{sub_name}.json", metrics, run)
        mlflow.log_artifact(str(csv_path))
        with tempfile.TemporaryDirectory() as d:
            png = Path(d) / f"search_{sub_name}.png"
            pareto_png({sub_name: rows}, png, cfg.convention, f"held-out {cfg.criterion} loss")
            mlflow.log_artifact(str(png))
    print(json.dumps({"subspace": sub_name, "wall_seconds": metrics["timing"]["wall_seconds"],
                      "seconds_per_candidate": metrics["timing"]["seconds_per_candidate"],
                      "students": {n: {"arch": s["arch_name"], "loss": round(s["loss"], 4),
                                       "gflops_paper": round(s["costs"]["gflops_paper"], 4)}
                                   for n, s in students.items()}}))


if __name__ == "__main__":
    run_main(main)
