"""Relation distillation between a frozen teacher and SuperLM sub-networks on corpus blocks.

Shared by SuperLM training (one step: teacher once, several students) and by the search (held-out
loss of many candidates against teacher projections computed once).
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from .config import DistillSpec  # noqa: F401  (the objective, described by params.yaml's superlm section)
from .device import mixed_precision
from .relations import relation_loss, teacher_relations
from .space import Arch
from .superlm import SuperLM
from .targets import TeacherTargets, teacher_targets


CRITERIA = ("relation", "hidden", "distill")


def blocks_to_batch(blocks: np.ndarray, device, splits: np.ndarray | None = None, family=None
                    ) -> dict[str, torch.Tensor | None]:
    """Full corpus blocks -> model inputs. No attention mask: the blocks are never padded, so the teacher and
    the students run attention unmasked (SDPA's fused kernels) and the losses skip all masking work. With
    ``splits``, each block becomes a segment pair cut there in the pair format of the teacher's ``family``
    (:mod:`autodistil.segments`; default BERT's), with token type ids."""
    types = None
    if splits is not None:
        from .segments import as_pairs

        layout = {} if family is None else {"separators": family.pair_separators,
                                            "segment_types": family.segment_types}
        blocks, types = as_pairs(blocks, splits, **layout)
    cuda = torch.device(device).type == "cuda"

    def to_device(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.asarray(a, dtype=np.int64))
        if cuda:  # pinned memory: the copy does not stall the host
            t = t.pin_memory().to(device, non_blocking=True)
        return t.to(device)

    batch = {"input_ids": to_device(blocks), "attention_mask": None}
    if types is not None:
        batch["token_type_ids"] = to_device(types)
    return batch


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over real tokens (all of them when ``attention_mask`` is None) between the student's
    hidden state and the teacher's leading channels (fp32)."""
    diff = (student.float() - teacher[..., : student.shape[-1]].float()).pow(2).mean(-1)  # [B, T]
    if attention_mask is None:
        return diff.mean()
    real = attention_mask.bool()
    return torch.where(real, diff, 0.0).sum() / real.sum()


def student_losses(superlm: nn.Module, arch: Arch, batch: dict, target: TeacherTargets, spec: DistillSpec,
                   hidden: bool | None = None, teacher_rel: list[torch.Tensor] | None = None
                   ) -> dict[str, torch.Tensor]:
    """The loss terms of sub-network ``arch`` against the teacher's ``target``: ``relation`` and, when
    ``hidden`` (default: when the spec weighs it), ``hidden``. ``teacher_rel``: the teacher's relations of this
    batch, when computed once for many students (:func:`autodistil.relations.teacher_relations`).

    ``superlm`` may be the SuperLM or its DDP wrapper (the forward must go through the wrapper).
    """
    hidden = spec.uses_hidden if hidden is None else hidden
    out = superlm(
        batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
        arch=arch, distill_layer=spec.student_layer, stop_at_distill_layer=True, distill_hidden=hidden,
    )
    terms = {"relation": relation_loss(out.qkv, target.qkv, batch["attention_mask"], spec.relation_heads, spec.loss,
                                       teacher_rel, spec.relation_split)}
    if hidden:
        terms["hidden"] = hidden_loss(out.hidden, target.hidden, batch["attention_mask"])
    return terms


def objective(terms: dict[str, torch.Tensor], spec: DistillSpec):
    """The training objective from its terms."""
    return terms["relation"] + spec.hidden_weight * terms["hidden"] if spec.uses_hidden else terms["relation"]


def student_loss(superlm: nn.Module, arch: Arch, batch: dict, target: TeacherTargets, spec: DistillSpec
                 ) -> torch.Tensor:
    """The training objective of sub-network ``arch`` against the teacher's ``target``."""
    return objective(student_losses(superlm, arch, batch, target, spec), spec)


class HeldOut:
    """Held-out blocks with the teacher's targets computed once, for scoring many candidates.

    Every candidate gets each criterion of :data:`CRITERIA`: ``relation`` (the paper's search score),
    ``hidden`` (the hidden-state error at the distilled layer) and ``distill`` (the training objective,
    ``relation + hidden_weight * hidden``).
    """

    def __init__(self, teacher: nn.Module, blocks: np.ndarray, spec: DistillSpec, batch_size: int = 32,
                 device="cpu"):
        self.spec, self.device = spec, torch.device(device)
        self.batches = [blocks_to_batch(blocks[i:i + batch_size], device) for i in range(0, len(blocks), batch_size)]
        with mixed_precision(self.device):  # bf16 on CUDA; the relations below are fp32 whatever the inputs
            self.targets = [teacher_targets(teacher, b["input_ids"], b["attention_mask"], spec.teacher_layer,
                                            hidden=True) for b in self.batches]
        # the teacher's side of the relation loss, once per block rather than once per candidate
        self.relations = [teacher_relations(t.qkv, b["attention_mask"], spec.relation_heads, spec.loss)
                          for t, b in zip(self.targets, self.batches)]
        self.sizes = [len(b["input_ids"]) for b in self.batches]

    @torch.no_grad()
    def losses(self, superlm: SuperLM, arch: Arch) -> dict[str, float]:
        """Mean of every criterion of ``arch`` over the held-out blocks, in eval mode (dropout off); one host sync
        per candidate, at the end."""
        was_training = superlm.training
        superlm.eval()
        totals = {"relation": 0.0, "hidden": 0.0}
        try:
            with mixed_precision(self.device):
                for b, t, rel, n in zip(self.batches, self.targets, self.relations, self.sizes):
                    terms = student_losses(superlm, arch, b, t, self.spec, hidden=True, teacher_rel=rel)
                    for key, v in terms.items():
                        totals[key] = totals[key] + v.double() * n  # float64, as Python floats were
        finally:
            superlm.train(was_training)
        out = {k: float(v) / sum(self.sizes) for k, v in totals.items()}
        out["distill"] = out["relation"] + self.spec.hidden_weight * out["hidden"]
        return out

    def loss(self, superlm: SuperLM, arch: Arch, criterion: str = "relation") -> float:
        """One criterion of ``arch`` (default: the paper's relation loss)."""
        if criterion not in CRITERIA:
            raise ValueError(f"unknown search criterion {criterion!r}; expected one of {CRITERIA}")
        return self.losses(superlm, arch)[criterion]
