"""Host cost of one SuperLM training step outside model compute, at the paper's corpus sizes.

    python bench/step_host.py [--sizes 230000 7800000 33600000] [--out bench/step_host.json]

What a rank does on the host each step before its model runs: the step's global batch in the data order, its
shard, the micro-batches, the rows read from the memory-mapped corpus, the tensors built, the sub-networks
drawn. Measured on an index-only memmap of each size (a sparse file: it costs no disk and no RAM), opened as the
stage opens its corpus (:func:`autodistil.corpus.load_blocks`), at the paper's
step (2,048 blocks of 128 tokens, 8 ranks: 256 rows per rank), as the median over steps, for

- ``before``: the data order as first built (a permutation of the whole corpus on every step);
- ``after``: :class:`autodistil.sampling.DataOrder` (an epoch's permutation built once), steady state, plus
  the one step per epoch that builds the permutation (``epoch_start_ms``) and its share spread over the epoch.

The sparse file makes this the host's CPU work alone: on a real corpus that is not in the page cache, each of
a step's rows is also one random 4 KiB read from storage (256 per rank per step; with ``MADV_RANDOM``, no
read-around). On the CPU there is no device sync to count; on a GPU, tests/test_gpu.py runs the non-logging
steps with CUDA's sync debug mode set to error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from autodistil.corpus import load_blocks
from autodistil.distill import blocks_to_batch
from autodistil.sampling import DataOrder, SubnetSampler
from autodistil.space import Arch
from autodistil.train import Dist, micro_batches

PAPER_SIZES = (230_000, 7_800_000, 33_600_000)  # blocks: the CPU corpus x10, 1 B tokens, Wikipedia + BookCorpus
SEQ_LEN, BATCH, WORLD = 128, 2048, 8


def per_step_permutation(step: int, batch_size: int, n_blocks: int, seed: int) -> np.ndarray:
    """The data order as first built: a permutation of every block, on every step."""
    start, rows = step * batch_size, []
    while len(rows) < batch_size:
        epoch, offset = divmod(start + len(rows), n_blocks)
        perm = np.random.default_rng([seed, epoch]).permutation(n_blocks)
        rows.extend(perm[offset: offset + batch_size - len(rows)].tolist())
    return np.asarray(rows)


def _sampler() -> SubnetSampler:
    archs = [Arch(layers, 12, 768, 3072, 64) for layers in range(4, 13)]
    return SubnetSampler(archs, archs[-1], archs[0], "sandwich", 2, seed=0)


def host_step_ms(blocks: np.ndarray, rows_of, steps: range, micro: int | None = 128) -> list[float]:
    """Milliseconds of host work of each step: order, shard, micro-batches, memmap read, tensors, sub-networks."""
    d, sampler, times = Dist(rank=0, world=WORLD), _sampler(), []
    for step in steps:
        t0 = time.perf_counter()
        rows = np.sort(d.shard(rows_of(step)))
        for part in micro_batches(rows, micro):
            blocks_to_batch(blocks[part], "cpu")
        sampler(step)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def measure(sizes=PAPER_SIZES, steps: int = 20, before_steps: int = 3) -> dict:
    out = {"seq_len": SEQ_LEN, "global_batch": BATCH, "world": WORLD, "rows_per_rank": BATCH // WORLD, "sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            np.lib.format.open_memmap(folder / "train.npy", mode="w+", dtype=np.uint16, shape=(n, SEQ_LEN)).flush()
            blocks = load_blocks(folder, "train")  # as the superlm stage opens it
            order = DataOrder(n, BATCH, seed=0)
            t0 = time.perf_counter()
            order.rows(0)  # the epoch's first step builds its permutation
            epoch_start = (time.perf_counter() - t0) * 1e3
            after = host_step_ms(blocks, order.rows, range(1, steps + 1))
            before = host_step_ms(blocks, lambda s: per_step_permutation(s, BATCH, n, 0), range(1, before_steps + 1))
            steps_per_epoch = n // BATCH
            row = {"n_blocks": n, "tokens": n * SEQ_LEN,
                   "before_ms": statistics.median(before), "after_ms": statistics.median(after),
                   "epoch_start_ms": epoch_start, "steps_per_epoch": steps_per_epoch,
                   "after_amortised_ms": statistics.median(after) + epoch_start / max(steps_per_epoch, 1)}
            out["sizes"].append(row)
            print(f"{n:>11,} blocks: before {row['before_ms']:9.1f} ms  after {row['after_ms']:6.2f} ms "
                  f"(+ {epoch_start:.0f} ms once per epoch of {steps_per_epoch:,} steps)", flush=True)
            del blocks
            (folder / "train.npy").unlink()
    small, large = out["sizes"][0], out["sizes"][-1]
    out["after_largest_over_smallest"] = large["after_ms"] / small["after_ms"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(PAPER_SIZES))
    ap.add_argument("--out", default="bench/step_host.json")
    args = ap.parse_args()
    result = measure(args.sizes)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
