"""Elastic primitives: modules holding the SuperLM's largest weights that run on a leading slice.

Width is always the leading slice (the method: no importance re-ordering, no projection). Each
primitive takes the active output size as an argument and reads the active input size off its input,
so one module serves every sub-network without state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def leading_slice(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The ``shape``-sized corner of ``t`` that starts at index 0 in every dimension."""
    if len(shape) != t.dim() or any(n > m for n, m in zip(shape, t.shape)):
        raise ValueError(f"cannot slice a tensor of shape {tuple(t.shape)} to {tuple(shape)}")
    return t[tuple(slice(0, n) for n in shape)]


class ElasticLinear(nn.Linear):
    """``nn.Linear`` that uses ``weight[:out, :in]`` (``in`` = the input's last dimension)."""

    def forward(self, x: torch.Tensor, out_features: int | None = None) -> torch.Tensor:
        out = self.out_features if out_features is None else out_features
        bias = None if self.bias is None else self.bias[:out]
        return F.linear(x, self.weight[:out, : x.shape[-1]], bias)


class ElasticEmbedding(nn.Embedding):
    """``nn.Embedding`` returning the first ``dim`` columns (every row stays)."""

    def forward(self, ids: torch.Tensor, dim: int | None = None) -> torch.Tensor:
        weight = self.weight if dim is None else self.weight[:, :dim]
        return F.embedding(ids, weight, self.padding_idx)


class ElasticLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` whose statistics and affine parameters cover only the active channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1]
        return F.layer_norm(x, (h,), self.weight[:h], self.bias[:h], self.eps)
