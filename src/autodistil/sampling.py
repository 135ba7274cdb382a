"""What each SuperLM training step sees, as a pure function of the step number: the sub-networks it trains
(sandwich or uniform sampling) and the corpus blocks of its global batch. Every rank computes the same, and a
resumed run draws what the uninterrupted one would have."""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from .space import Arch


class SubnetSampler:
    """Sub-networks of a step, drawn from ``random.Random(seed, step)`` so that every rank agrees."""

    def __init__(self, candidates: Sequence[Arch], largest: Arch, smallest: Arch, mode: str, num_random: int,
                 seed: int):
        self.candidates, self.largest, self.smallest = list(candidates), largest, smallest
        self.mode, self.num_random, self.seed = mode, num_random, seed

    def __call__(self, step: int) -> list[Arch]:
        rng = random.Random(self.seed * 1_000_003 + step)
        if self.mode == "uniform":
            return rng.sample(self.candidates, min(self.num_random, len(self.candidates)))
        others = [a for a in self.candidates if a not in (self.largest, self.smallest)]
        middle = rng.sample(others, min(self.num_random, len(others)))
        ends = [self.largest] if self.largest == self.smallest else [self.largest, self.smallest]
        return [ends[0], *middle, *ends[1:]]


class DataOrder:
    """Block indices of any step: epochs of seeded permutations of all blocks, read in order.

    Step ``s`` reads positions ``s * batch_size ...`` of the endless sequence perm(epoch 0), perm(epoch 1), ...
    where perm(e) = ``default_rng([seed, e]).permutation(n_blocks)``: every block once per epoch, and any step
    computable from its number alone (resume, every rank). An epoch's permutation is built once and kept (int32
    where it fits: 134 MB at 33.6 M blocks), so a step costs O(batch) host time, not O(corpus); only the first
    step of an epoch pays for its permutation.
    """

    def __init__(self, n_blocks: int, batch_size: int, seed: int):
        if n_blocks < 1:
            raise ValueError("no training blocks")
        self.n_blocks, self.batch_size, self.seed = n_blocks, batch_size, seed
        self._cache: dict[int, np.ndarray] = {}  # at most the two epochs a batch can straddle

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks)
            dtype = np.int32 if self.n_blocks <= np.iinfo(np.int32).max else np.int64
            self._cache = {e: p for e, p in self._cache.items() if e == epoch - 1}
            self._cache[epoch] = perm.astype(dtype, copy=False)
        return self._cache[epoch]

    def rows(self, step: int) -> np.ndarray:
        """The global batch of ``step`` (all ranks), in reading order."""
        start, parts, need = step * self.batch_size, [], self.batch_size
        while need:
            epoch, offset = divmod(start, self.n_blocks)
            part = self.permutation(epoch)[offset: offset + need]
            parts.append(part)
            start, need = start + len(part), need - len(part)
        return np.concatenate(parts).astype(np.int64, copy=False)
