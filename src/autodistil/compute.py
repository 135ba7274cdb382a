"""SuperLM training compute: the FLOPs of the sampled sub-networks, as planned and as trained.

The unit is what an ablation must hold equal between arms: the forward and backward FLOPs (3 x 2 x MACs) of
every sub-network a step trains, on every sequence of the global batch, summed over steps and sub-spaces. The
teacher's forward is left out, by choice: the comparison is of what the students are trained with. It is not free
(K=3 runs the teacher once per step of each of its three SuperLMs, K=1 once per step of one; at the default budget
60 against 47 teacher passes), and :class:`autodistil.throughput.Throughput` counts it for the MFU. Per-sequence MACs
are those of :func:`autodistil.throughput.training_macs` (the forward stops at the distilled layer).
"""

from __future__ import annotations

from typing import Sequence

from .sampling import SubnetSampler
from .space import Arch
from .throughput import training_macs


def step_flops(archs: Sequence[Arch], sequences: int, seq_len: int, whole_layer: bool = False) -> float:
    """Training FLOPs (forward + backward) of one step that trains ``archs`` on ``sequences`` sequences."""
    return 6.0 * sequences * sum(training_macs(a, seq_len, whole_layer) for a in archs)


def expected_step_flops(candidates: Sequence[Arch], largest: Arch, smallest: Arch, mode: str, num_random: int,
                        sequences: int, seq_len: int, whole_layer: bool = False) -> float:
    """The mean of :func:`step_flops` over the sampler's draws (:class:`autodistil.sampling.SubnetSampler`):
    sandwich trains the largest, the smallest and ``num_random`` of the others; uniform ``num_random`` of all."""
    def mean(archs: Sequence[Arch]) -> float:
        return sum(step_flops([a], sequences, seq_len, whole_layer) for a in archs) / len(archs)

    if mode == "uniform":
        return min(num_random, len(candidates)) * mean(candidates)
    ends = [largest] if largest == smallest else [largest, smallest]
    others = [a for a in candidates if a not in ends]
    middle = min(num_random, len(others)) * mean(others) if others else 0.0
    return step_flops(ends, sequences, seq_len, whole_layer) + middle


def sampled_flops(sampler: SubnetSampler, steps: int, sequences: int, seq_len: int, whole_layer: bool = False
                  ) -> float:
    """The training FLOPs of the sub-networks ``sampler`` drew for steps ``0 .. steps - 1`` (what a run of that
    many steps trained, resumed or not: the draws are a function of the step number)."""
    macs: dict[Arch, float] = {}
    total = 0.0
    for step in range(steps):
        for a in sampler(step):
            if a not in macs:
                macs[a] = step_flops([a], sequences, seq_len, whole_layer)
            total += macs[a]
    return total
