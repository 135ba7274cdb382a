"""Self-attention relation distillation (MiniLMv2 style).

For X in {Q, K, V} of one layer, the [batch, tokens, width] projections are split into N_r relation
heads of size d_r = width // N_r (trailing channels dropped) and turned into relations
X_a X_a^T / sqrt(d_r). Two losses compare student and teacher relations:

- ``kl`` (the paper, default): softmax over keys, KL(teacher || student), mean over relation heads and
  real query tokens, summed over Q, K, V;
- ``mse`` (the authors' code): mean squared error of the raw scaled scores over real (query, key) pairs,
  summed over Q, K, V.

Padding never counts: padded keys are masked before the softmax and padded query rows are excluded, so
adding padding to a batch leaves the loss unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSSES = ("kl", "mse")


def relation_scores(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, T, W] -> [B, N_r, T, T] scaled self-relations."""
    B, T, W = x.shape
    d = W // n_heads
    if d == 0:
        raise ValueError(f"width {W} is smaller than the {n_heads} relation heads")
    x = x[..., : n_heads * d].reshape(B, T, n_heads, d).transpose(1, 2)
    return x @ x.transpose(-1, -2) / math.sqrt(d)


def _kl(student: torch.Tensor, teacher: torch.Tensor, keys: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    neg = torch.finfo(student.dtype).min
    log_p_s = F.log_softmax(student.masked_fill(~keys, neg), dim=-1)
    log_p_t = F.log_softmax(teacher.masked_fill(~keys, neg), dim=-1)
    kl = torch.where(keys, log_p_t.exp() * (log_p_t - log_p_s), 0.0).sum(-1)  # [B, N_r, T]
    return torch.where(rows, kl, 0.0).sum() / (rows.sum() * student.shape[1])


def _mse(student: torch.Tensor, teacher: torch.Tensor, keys: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    pairs = keys & rows[..., None]  # [B, 1, T, T]
    sq = torch.where(pairs, (student - teacher) ** 2, 0.0)
    return sq.sum() / (pairs.sum() * student.shape[1])


def relation_loss(
    student_qkv,
    teacher_qkv,
    attention_mask: torch.Tensor,
    n_heads: int,
    kind: str = "kl",
) -> torch.Tensor:
    """Sum over Q, K, V of the relation loss between student and teacher projections.

    ``attention_mask`` is [B, T] with 1 for real tokens. Computed in fp32 whatever the input dtype.
    """
    if kind not in LOSSES:
        raise ValueError(f"unknown relation loss {kind!r}; expected one of {LOSSES}")
    fn = _kl if kind == "kl" else _mse
    real = attention_mask.bool()
    keys = real[:, None, None, :]  # [B, 1, 1, T]
    rows = real[:, None, :]  # [B, 1, T]
    total = 0.0
    for s, t in zip(student_qkv, teacher_qkv):
        rs = relation_scores(s.float(), n_heads)
        rt = relation_scores(t.float(), n_heads)
        total = total + fn(rs, rt, keys, rows)
    return total
