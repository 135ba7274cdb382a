"""Self-attention relation distillation (MiniLMv2 style).

For X in {Q, K, V} of one layer, the [batch, tokens, width] projections are split into relation heads and
turned into relations X_a X_a^T / sqrt(d_r). Two splits (``SPLITS``):

- ``heads`` (default): the relation heads are the attention heads. A student sliced from the teacher keeps whole
  heads of the teacher's head size, so its head a is compared with the teacher's head a (the teacher's extra heads
  are left out). A perfect slice scores exactly 0 at any head count.
- ``fixed`` (the paper's and the authors' code): N_r relation heads (the teacher's head count) of width // N_r
  channels on both sides (trailing channels dropped). A student with fewer heads than the teacher then compares
  pieces of its inherited heads with the teacher's whole heads: a perfect slice scores far from 0 (KL 0.6 to 1.5
  at 11 to 4 heads of the packaged MiniLM teacher).

Two losses compare student and teacher relations:

- ``kl`` (the paper, default): softmax over keys, KL(teacher || student), mean over relation heads and
  real query tokens, summed over Q, K, V;
- ``mse`` (the authors' code): mean squared error of the raw scaled scores over real (query, key) pairs,
  summed over Q, K, V.

Padding never counts: padded keys are masked before the softmax and padded query rows are excluded, so
adding padding to a batch leaves the loss unchanged. ``attention_mask=None`` means full, unpadded blocks (the
corpus): no masking work at all, and no look at the mask's values (which would be a device-to-host sync on a GPU).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

LOSSES = ("kl", "mse")
SPLITS = ("heads", "fixed")


class QKV(NamedTuple):
    """Projected queries, keys and values of one layer, each [batch, tokens, attention width]."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor


def relation_scores(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, T, W] -> [B, N_r, T, T] scaled self-relations."""
    B, T, W = x.shape
    d = W // n_heads
    if d == 0:
        raise ValueError(f"width {W} is smaller than the {n_heads} relation heads")
    x = x[..., : n_heads * d].reshape(B, T, n_heads, d).transpose(1, 2)
    return x @ x.transpose(-1, -2) / math.sqrt(d)


def student_heads(student_width: int, teacher_width: int, teacher_heads: int, split: str) -> int:
    """How many relation heads the student's projections are split into: the teacher's head count (``fixed``), or
    as many of the teacher's heads as the student's width holds (``heads``)."""
    if split == "fixed":
        return teacher_heads
    head = teacher_width // teacher_heads
    if student_width % head or student_width > teacher_width:
        raise ValueError(f"attention width {student_width} is not a whole number of the teacher's {teacher_heads} "
                         f"heads of {head} (relation split 'heads' compares whole heads)")
    return student_width // head


def _leading_heads(rel, n: int):
    """The teacher's side of the loss restricted to its first ``n`` relation heads (dim 1)."""
    if isinstance(rel, tuple):
        return tuple(r[:, :n] for r in rel)
    return rel[:, :n]


def _log_probs(scores: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
    if keys is not None:  # full blocks (the corpus) have no padded key to mask
        scores = scores.masked_fill(~keys, torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def _teacher_kl_side(scores: torch.Tensor, keys: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(p_t, sum_k p_t log p_t): the teacher's probabilities (exactly 0 on padded keys) and negative entropy."""
    log_p_t = _log_probs(scores, keys)
    p_t = log_p_t.exp()
    if keys is not None:
        p_t = p_t.masked_fill(~keys, 0.0)
        log_p_t = log_p_t.masked_fill(~keys, 0.0)
    return p_t, (p_t * log_p_t).sum(-1)


def _kl(student: torch.Tensor, teacher: tuple[torch.Tensor, torch.Tensor], keys: torch.Tensor | None,
        rows: torch.Tensor | None) -> torch.Tensor:
    # KL(t || s) per query row = sum_k p_t log p_t - sum_k p_t log p_s; the first term is the teacher's alone
    p_t, neg_entropy = teacher
    kl = neg_entropy - (p_t * _log_probs(student, keys)).sum(-1)  # [B, N_r, T]; p_t = 0 on padded keys
    if rows is None:  # unpadded: every query row counts
        return kl.sum() / kl.numel()
    return torch.where(rows, kl, 0.0).sum() / (rows.sum() * student.shape[1])


def _mse(student: torch.Tensor, teacher: torch.Tensor, keys: torch.Tensor | None,
         rows: torch.Tensor | None) -> torch.Tensor:
    sq = (student - teacher) ** 2
    if rows is None:
        return sq.sum() / sq.numel()
    pairs = keys & rows[..., None]  # [B, 1, T, T]
    return torch.where(pairs, sq, 0.0).sum() / (pairs.sum() * student.shape[1])


def _masks(attention_mask: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Keys [B, 1, 1, T] and query rows [B, 1, T] to count; both None for unpadded blocks."""
    if attention_mask is None:
        return None, None
    real = attention_mask.bool()
    return real[:, None, None, :], real[:, None, :]


def teacher_relations(teacher_qkv, attention_mask: torch.Tensor | None, n_heads: int, kind: str = "kl") -> list:
    """The teacher's side of :func:`relation_loss` for Q, K, V (for ``kl`` its probabilities and negative
    entropy per query row, for ``mse`` its scores), to compute once when many students are compared on the same
    batch (every training step, the search)."""
    keys, _ = _masks(attention_mask)
    with torch.autocast(teacher_qkv[0].device.type, enabled=False):  # fp32 even under bf16 autocast
        rel = [relation_scores(t.float(), n_heads) for t in teacher_qkv]
        return [_teacher_kl_side(r, keys) for r in rel] if kind == "kl" else rel


def relation_loss(
    student_qkv,
    teacher_qkv,
    attention_mask: torch.Tensor | None,
    n_heads: int,
    kind: str = "kl",
    teacher_rel: list[torch.Tensor] | None = None,
    split: str = "heads",
) -> torch.Tensor:
    """Sum over Q, K, V of the relation loss between student and teacher projections.

    ``n_heads`` is the teacher's head count; ``split`` (:data:`SPLITS`) says how the student's projections are cut
    into relation heads: whole heads of the teacher's head size compared with the teacher's leading heads
    (``heads``), or ``n_heads`` pieces on both sides (``fixed``).

    ``attention_mask`` is [B, T] with 1 for real tokens, or None for unpadded blocks. Computed in fp32 whatever
    the input dtype.
    ``teacher_rel``: :func:`teacher_relations` of ``teacher_qkv``, when already computed.
    """
    if kind not in LOSSES:
        raise ValueError(f"unknown relation loss {kind!r}; expected one of {LOSSES}")
    if split not in SPLITS:
        raise ValueError(f"unknown relation split {split!r}; expected one of {SPLITS}")
    fn = _kl if kind == "kl" else _mse
    keys, rows = _masks(attention_mask)
    if teacher_rel is None:
        teacher_rel = teacher_relations(teacher_qkv, attention_mask, n_heads, kind)
    total = 0.0
    with torch.autocast(student_qkv[0].device.type, enabled=False):  # fp32 even under bf16 autocast
        for s, x, t in zip(student_qkv, teacher_qkv, teacher_rel):
            heads = student_heads(s.shape[-1], x.shape[-1], n_heads, split)
            total = total + fn(relation_scores(s.float(), heads), _leading_heads(t, heads), keys, rows)
    return total
