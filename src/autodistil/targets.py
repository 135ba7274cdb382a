"""What distillation reads from the frozen teacher: the Q/K/V projections of one layer (and its output), captured
by hooks and stopping the forward pass as soon as they exist. (Apart from :mod:`autodistil.teacher`, which
needs no torch: the stages that only read the teacher's config or tokenizer start without it.)"""

from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn

from .relations import QKV


class _StopForward(Exception):
    """Raised by the capture hook once the wanted projections exist: the rest of the teacher is not needed."""


@contextmanager
def _capture(layer: nn.Module, store: dict, stop: bool, hidden: bool = False):
    """Store the layer's Q/K/V projections (and, with ``hidden``, its output); with ``stop``, end the
    forward pass once everything wanted is stored."""
    sa = layer.attention.self
    wanted = 4 if hidden else 3
    handles = []

    def keep(name, output):
        store[name] = output[0] if isinstance(output, tuple) else output
        if stop and len(store) == wanted:
            raise _StopForward

    for name in ("query", "key", "value"):
        handles.append(getattr(sa, name).register_forward_hook(lambda m, a, out, name=name: keep(name, out)))
    if hidden:
        handles.append(layer.register_forward_hook(lambda m, a, out: keep("hidden", out)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def teacher_qkv(
    teacher: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layer: int = -1,
    token_type_ids: torch.Tensor | None = None,
) -> QKV:
    """Q, K, V projections ([batch, tokens, width]) of teacher layer ``layer``, via forward hooks.

    Works with transformers' default SDPA attention (where ``output_attentions`` returns nothing), and
    stops the forward pass as soon as the three projections are captured.
    """
    return teacher_targets(teacher, input_ids, attention_mask, layer, token_type_ids).qkv


class TeacherTargets(NamedTuple):
    """What a student is distilled towards: one teacher layer's Q/K/V and, when asked, its output."""

    qkv: QKV
    hidden: torch.Tensor | None = None


@torch.no_grad()
def teacher_targets(
    teacher: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layer: int = -1,
    token_type_ids: torch.Tensor | None = None,
    hidden: bool = False,
) -> TeacherTargets:
    """Q/K/V of teacher layer ``layer`` and, with ``hidden``, that layer's output hidden state; the forward
    pass stops as soon as they exist."""
    layers = teacher.encoder.layer
    store: dict[str, torch.Tensor] = {}
    with _capture(layers[range(len(layers))[layer]], store, stop=True, hidden=hidden):
        try:
            teacher(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        except _StopForward:
            pass
    return TeacherTargets(QKV(store["query"], store["key"], store["value"]), store.get("hidden"))
