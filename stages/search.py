"""Stage search@<subspace>: the best student architecture per budget in a trained SuperLM, without re-training.

    python stages/search.py <subspace>

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

from autodistil.io import InputError, int_param, load_params, param, run_main


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
    ap.add_argument("--subspaces", default="partition/subspaces.json")
    ap.add_argument("--superlm", default="models/superlm")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--glue", default="data/glue")
    ap.add_argument("--metrics", default="metrics/search")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    sub_name = args.subspace

    # ---- params (all checked before anything heavy runs or anything is written)
    params = load_params(args.params)
    src = args.params
    p = param(params, "search", source=src)
    source = param(params, "teacher.source", source=src)
    experiment = param(params, "mlflow.experiment", default="autodistil")
    from autodistil.distill import DistillSpec
    from autodistil.partition import load_subspaces
    from autodistil.device import DEVICES, resolve_device
    from autodistil.search import CONVENTIONS, LatencyConfig, parse_budgets
    from autodistil.space import SearchSpaceError

    try:
        subspaces = load_subspaces(args.subspaces)
    except SearchSpaceError as e:
        raise InputError(str(e)) from None
    if sub_name not in subspaces:
        raise InputError(f"{args.subspaces}: no sub-space {sub_name!r} (have {', '.join(subspaces)})")
    budgets_all = parse_budgets(param(p, "budgets", source=src), param(p, "students", source=src),
                                subspaces, f"{src}: search")
    if sub_name not in budgets_all:
        raise InputError(f"{src}: search.budgets has no budget for sub-space {sub_name!r} "
                         f"(has {', '.join(budgets_all)})")
    budgets = budgets_all[sub_name]
    eval_blocks = int_param(params, "search.eval_blocks", minimum=1, source=src)
    batch_size = int_param(params, "search.batch_size", minimum=1, source=src)
    max_candidates = int_param(params, "search.max_candidates", minimum=2, allow_none=True, source=src)
    seed = int_param(params, "search.seed", default=0, source=src)
    seq_len = int_param(params, "search.seq_len", minimum=1, source=src)
    convention = param(p, "convention", default="paper", source=src)
    if convention not in CONVENTIONS:
        raise InputError(f"{src}: search.convention must be one of {CONVENTIONS}, got {convention!r}")
    latency_cfg = LatencyConfig.from_params(param(p, "latency", default={}), f"{src}: search.latency")
    device_setting = param(p, "device", default="auto", source=src)
    if device_setting not in DEVICES:
        raise InputError(f"{src}: search.device must be one of {DEVICES}, got {device_setting!r}")
    proxy = dict(param(p, "proxy", default={}) or {})
    proxy_on = bool(proxy.get("enabled", False))
    if proxy_on:
        from autodistil.finetune import FinetuneConfig

        proxy_cfg = FinetuneConfig.from_params({"device": device_setting,  # the search's device unless set
                                                **{k: v for k, v in proxy.items() if k not in ("enabled", "task", "top_k")}},
                                               f"{src}: search.proxy")
        top_k = int_param(params, "search.proxy.top_k", minimum=1, source=src)
        task_dir = Path(args.glue) / str(param(p, "proxy.task", source=src))
        if not (task_dir / "task.json").is_file():
            raise InputError(f"{task_dir}: not a prepared GLUE task (search.proxy.task; run prepare_glue)")
    from autodistil.distill import CRITERIA

    criterion = param(p, "criterion", default="relation", source=src)
    if criterion not in CRITERIA:
        raise InputError(f"{src}: search.criterion must be one of {CRITERIA}, got {criterion!r}")
    try:
        hidden_weight = float(param(params, "superlm.hidden_weight", default=0.0))
    except (TypeError, ValueError):
        raise InputError(f"{src}: superlm.hidden_weight must be a number") from None
    spec = DistillSpec(
        loss=str(param(params, "superlm.loss", default="kl")),
        teacher_layer=int(param(params, "superlm.teacher_layer", default=-1)),
        student_layer=int(param(params, "superlm.student_layer", default=-1)),
        hidden_weight=hidden_weight,
    )
    # budgets on params / GFLOPs are checked against the grid before anything heavy runs
    from autodistil.cost import Vocab, costs
    from autodistil.partition import load_teacher_dims
    from autodistil.search import check_feasible, cost_row, sample_candidates

    doc_teacher = json.loads(Path(args.subspaces).read_text())["teacher"]
    dims = load_teacher_dims(args.subspaces)
    vocab = Vocab(doc_teacher["vocab_size"], doc_teacher["max_position_embeddings"], doc_teacher["type_vocab_size"])
    try:
        all_candidates = subspaces[sub_name].candidates(dims)
    except SearchSpaceError as e:
        raise InputError(f"{args.subspaces}: {e}") from None
    archs, sampled = sample_candidates(all_candidates, max_candidates, seed)
    cost_rows = [cost_row(a, seq_len, dims.heads, vocab) for a in archs]
    teacher_row = cost_row(dims.as_arch(), seq_len, dims.heads, vocab)
    budgets = {name: b.resolve(teacher_row, convention) for name, b in budgets.items()}  # fractions -> limits
    for budget in budgets.values():
        check_feasible(cost_rows, budget, convention, sub_name)

    superlm_dir = Path(args.superlm) / sub_name
    if not (superlm_dir / "superlm.pt").is_file():
        raise InputError(f"{superlm_dir}: no trained SuperLM (run `dvc repro superlm@{sub_name}`)")
    corpus = Path(args.corpus)
    if not (corpus / "heldout.npy").is_file():
        raise InputError(f"{corpus}/heldout.npy: not found (run the prepare_corpus stage)")

    # ---- heavy imports and the search
    import dataclasses

    import mlflow
    import torch

    from autodistil.corpus import load_blocks
    from autodistil.distill import HeldOut
    from autodistil.export import build_student
    from autodistil.importance import ORDER_FILE, Order, apply_order
    from autodistil.plots import pareto_png
    from autodistil.search import NoFitError, mark_chosen, measure_latency, score_candidates, select, write_csv
    from autodistil.space import TeacherDims
    from autodistil.superlm import SuperLM
    from autodistil.teacher import load_teacher
    from autodistil.tracking import log_metrics, log_step, stage_run, write_metrics

    t_start = time.perf_counter()
    device = resolve_device(device_setting)
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
    if len(blocks) < eval_blocks:
        raise InputError(f"{corpus}/heldout.npy has {len(blocks)} blocks, search.eval_blocks asks for {eval_blocks}")
    blocks = blocks[:eval_blocks]
    spec = dataclasses.replace(spec, relation_heads=superlm.config.relation_heads)
    hashes = {"superlm_sha256": file_hash(superlm_dir / "superlm.pt"),
              "heldout_sha256": file_hash(corpus / "heldout.npy", corpus / "meta.json"),
              "train_data": superlm.config.provenance.get("data")}

    latency_cache: dict[str, dict] = {}

    def latency(row) -> float:
        if row["arch"] not in latency_cache:
            arch = arch_by_name[row["arch"]]
            latency_cache[row["arch"]] = measure_latency(build_student(superlm, arch), latency_cfg)
        return latency_cache[row["arch"]]["latency_ms"]

    arch_by_name = {a.name: a for a in archs}
    logged = {"teacher": {"source": source}, "search": p, "superlm_loss": dataclasses.asdict(spec)}
    with stage_run(f"search@{sub_name}", logged, experiment, tags={"subspace": sub_name}) as run:
        t0 = time.perf_counter()
        heldout = HeldOut(teacher, blocks, spec, batch_size, device)
        teacher_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = score_candidates(superlm, heldout, archs, seq_len, progress=not args.no_progress,
                                log=log_step, criterion=criterion)
        score_seconds = time.perf_counter() - t0

        chosen: dict[str, dict] = {}
        proxy_seconds = 0.0
        for name, budget in budgets.items():
            if not proxy_on:
                chosen[name] = select(rows, budget, convention, sub_name, latency)
                continue
            # task-proxy re-rank: the top_k by loss that fit are fine-tuned briefly, the best dev score wins
            from autodistil.finetune import finetune

            fitting = []
            pool = list(rows)
            while len(fitting) < top_k:
                try:
                    row = select(pool, budget, convention, sub_name, latency)
                except NoFitError:
                    if fitting:
                        break
                    raise
                fitting.append(row)
                pool = [r for r in pool if r is not row]
            for row in fitting:
                if row.get("proxy_score") is None:
                    t1 = time.perf_counter()
                    res = finetune(build_student(superlm, arch_by_name[row["arch"]]), task_dir, proxy_cfg)
                    row["proxy_score"] = res["score"]
                    row["proxy_seconds"] = time.perf_counter() - t1
                    proxy_seconds += row["proxy_seconds"]
            chosen[name] = max(fitting, key=lambda r: (r["proxy_score"], -r["loss"]))
        mark_chosen(rows, chosen)

        students = {}
        for name, row in chosen.items():
            arch = arch_by_name[row["arch"]]
            students[name] = {
                "arch": arch.to_dict(), "arch_name": arch.name, "budget": budgets[name].to_dict(),
                "loss": row["loss"], "losses": {k: row[f"loss_{k}"] for k in CRITERIA},
                "costs": costs(arch, seq_len, dims.heads, vocab),
                **({"latency_ms": latency_cache[arch.name]["latency_ms"]} if arch.name in latency_cache else {}),
                **({"proxy": {"task": proxy.get("task"), "score": row["proxy_score"]}} if proxy_on else {}),
            }
        wall = time.perf_counter() - t_start
        csv_path = Path(args.metrics) / f"{sub_name}.csv"
        for r in rows:
            if r["arch"] in latency_cache:
                r["latency_ms"] = latency_cache[r["arch"]]["latency_ms"]
        write_csv(csv_path, rows, sub_name)
        per_candidate = score_seconds / len(rows)
        metrics = {
            "subspace": sub_name,
            "candidates": len(all_candidates),
            "candidates_scored": len(rows),
            "sampled": sampled,
            "convention": convention,
            "criterion": criterion,
            "teacher_costs": {k: teacher_row[k] for k in ("params_paper", "gflops_paper", "params_exact", "gflops_exact")},
            "seq_len": seq_len,
            "students": students,  # read by export@<student>, with the provenance below
            "provenance": {"teacher": source, "distill": dataclasses.asdict(spec), "heldout_blocks": eval_blocks,
                           "sampled": sampled, **hashes},
            "best_loss": min(r["loss"] for r in rows),
            "timing": {
                "wall_seconds": round(wall, 2),
                "teacher_seconds": round(teacher_seconds, 3),
                "score_seconds": round(score_seconds, 3),
                "seconds_per_candidate": round(per_candidate, 4),
                "latency_measurements": len(latency_cache),
                "proxy_seconds": round(proxy_seconds, 2),
                "heldout_blocks": eval_blocks,
                "threads": torch.get_num_threads(),
            },
        }
        log_metrics({k: v for k, v in metrics.items() if k != "students"})
        for name, s in students.items():
            log_metrics({"loss": s["loss"], **s["costs"]}, prefix=f"{name}.")
        write_metrics(Path(args.metrics) / f"{sub_name}.json", metrics, run)
        mlflow.log_artifact(str(csv_path))
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            png = Path(d) / f"search_{sub_name}.png"
            pareto_png({sub_name: rows}, png, convention, f"held-out {criterion} loss")
            mlflow.log_artifact(str(png))
    print(json.dumps({"subspace": sub_name, "wall_seconds": metrics["timing"]["wall_seconds"],
                      "seconds_per_candidate": metrics["timing"]["seconds_per_candidate"],
                      "students": {n: {"arch": s["arch_name"], "loss": round(s["loss"], 4),
                                       "gflops_paper": round(s["costs"]["gflops_paper"], 4)}
                                   for n, s in students.items()}}))


if __name__ == "__main__":
    run_main(main)
