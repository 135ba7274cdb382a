"""Relation distillation between a frozen teacher and SuperLM sub-networks on corpus blocks.

Shared by SuperLM training (one step: teacher once, several students) and by the search (held-out
loss of many candidates against teacher projections computed once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .relations import relation_loss
from .space import Arch
from .superlm import QKV, SuperLM
from .teacher import teacher_qkv


@dataclass(frozen=True)
class DistillSpec:
    """Which layers are distilled, with which loss."""

    loss: str = "kl"  # kl (paper) | mse (authors' code)
    teacher_layer: int = -1
    student_layer: int = -1
    relation_heads: int = 12


def blocks_to_batch(blocks: np.ndarray, device) -> dict[str, torch.Tensor]:
    """Full corpus blocks (no padding) -> model inputs."""
    ids = torch.as_tensor(np.asarray(blocks, dtype=np.int64), device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def student_loss(superlm: nn.Module, arch: Arch, batch: dict, target: QKV, spec: DistillSpec) -> torch.Tensor:
    """Relation loss of sub-network ``arch`` against the teacher's projections ``target``.

    ``superlm`` may be the SuperLM or its DDP wrapper (the forward must go through the wrapper).
    """
    out = superlm(
        batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
        arch=arch, distill_layer=spec.student_layer, stop_at_distill_layer=True,
    )
    return relation_loss(out.qkv, target, batch["attention_mask"], spec.relation_heads, spec.loss)


class HeldOut:
    """Held-out blocks with the teacher's projections computed once, for scoring many candidates."""

    def __init__(self, teacher: nn.Module, blocks: np.ndarray, spec: DistillSpec, batch_size: int = 32,
                 device="cpu"):
        self.spec = spec
        self.batches = [blocks_to_batch(blocks[i:i + batch_size], device) for i in range(0, len(blocks), batch_size)]
        self.targets = [teacher_qkv(teacher, b["input_ids"], b["attention_mask"], spec.teacher_layer)
                        for b in self.batches]
        self.sizes = [len(b["input_ids"]) for b in self.batches]

    @torch.no_grad()
    def loss(self, superlm: SuperLM, arch: Arch) -> float:
        """Mean relation loss of ``arch`` over the held-out blocks, in eval mode (dropout off)."""
        was_training = superlm.training
        superlm.eval()
        try:
            total = sum(student_loss(superlm, arch, b, t, self.spec).item() * n
                        for b, t, n in zip(self.batches, self.targets, self.sizes))
        finally:
            superlm.train(was_training)
        return total / sum(self.sizes)
