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


def global_batch_rows(step: int, batch_size: int, n_blocks: int, seed: int) -> np.ndarray:
    """Block indices of step ``step``: epochs of seeded permutations, read in order."""
    start = step * batch_size
    rows = []
    while len(rows) < batch_size:
        epoch, offset = divmod(start + len(rows), n_blocks)
        perm = np.random.default_rng([seed, epoch]).permutation(n_blocks)
        rows.extend(perm[offset: offset + batch_size - len(rows)].tolist())
    return np.asarray(rows)
