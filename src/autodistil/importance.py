"""Importance-ordered initialisation: permute the teacher so that leading slices keep what matters most.

A SuperLM is cut from the teacher by leading slices (the first H hidden channels, the first A heads, the
first F FFN neurons). Which parts come first is arbitrary in a trained network, so before slicing the
teacher's weights are permuted, once, so that they come in order of importance (Minitron, arXiv 2407.14679
section 2.2; NVIDIA Model-Optimizer sorts parameters the same way before its leading slices):

- heads, per layer: the norm of the head's context output (its slice of the attention-output input);
- FFN neurons, per layer: the magnitude of their activation;
- hidden channels, globally: the magnitude of the post-LayerNorm activation, summed over every LayerNorm
  (embeddings and the two of each layer), since one channel order has to serve every residual write.

Activations come from a forward pass over unlabeled calibration blocks (no labels, no gradients). Each score
is the mean over tokens, then the L2 norm over sequences (Minitron's best aggregation); magnitudes are used
so that a channel whose signed activations cancel out is not mistaken for an idle one.

The permutation is function-preserving: the permuted teacher's outputs are the original ones with their
hidden channels permuted (LayerNorm statistics do not depend on the channel order; heads and neurons are
summed over). Ties are broken by the original index, so the order is deterministic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

ORDER_FILE = "order.pt"


@dataclass
class Importance:
    channels: torch.Tensor  # [H]
    heads: list[torch.Tensor]  # per layer, [A]
    neurons: list[torch.Tensor]  # per layer, [F]
    blocks: torch.Tensor  # [L]: 1 - cos(layer input, layer output), mean over tokens and sequences

    def layer_ranking(self) -> list[int]:
        """The teacher's layers, most important (largest change of the residual stream) first; ties by index."""
        return _descending(self.blocks).tolist()


@dataclass
class Order:
    """Permutations (new position -> old index) of the hidden channels, each layer's heads and neurons."""

    channels: torch.Tensor
    heads: list[torch.Tensor]
    neurons: list[torch.Tensor]

    @classmethod
    def of(cls, imp: Importance) -> "Order":
        return cls(_descending(imp.channels), [_descending(h) for h in imp.heads],
                   [_descending(n) for n in imp.neurons])

    @classmethod
    def identity(cls, hidden: int, heads: int, ffn: int, layers: int) -> "Order":
        return cls(torch.arange(hidden), [torch.arange(heads)] * layers, [torch.arange(ffn)] * layers)

    def to_dict(self) -> dict:
        return {"channels": self.channels, "heads": self.heads, "neurons": self.neurons}

    def digest(self) -> str:
        """Identifies the permutation: a checkpoint trained under one teacher order never resumes under another."""
        h = hashlib.sha256()
        for t in (self.channels, *self.heads, *self.neurons):
            h.update(t.to(torch.int64).cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> "Order":
        return cls(d["channels"], list(d["heads"]), list(d["neurons"]))


def _descending(score: torch.Tensor) -> torch.Tensor:
    return torch.argsort(-score.double(), stable=True)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def measure_importance(teacher: nn.Module, blocks: np.ndarray, batch_size: int = 16) -> Importance:
    """Activation importance of the teacher's channels, heads and neurons on ``blocks`` ([n, seq_len] ids)."""
    layers = teacher.encoder.layer
    cfg = teacher.config
    head_size = cfg.hidden_size // cfg.num_attention_heads
    device = next(teacher.parameters()).device
    sq: dict[str, torch.Tensor] = {}  # running sums of squares over sequences of the per-sequence means

    def add(key: str, per_sequence: torch.Tensor) -> None:
        v = per_sequence.double().pow(2).sum(0)
        sq[key] = sq[key] + v if key in sq else v

    block_sum = torch.zeros(len(layers), dtype=torch.float64)
    hidden_in: dict[int, torch.Tensor] = {}
    handles = []

    def ln_hook(_m, _a, out):
        add("channels", _first(out).abs().mean(1))

    # the first hidden state: the embeddings' LayerNorm, or ELECTRA's projection of narrower embeddings
    projection = getattr(teacher, "embeddings_project", None)
    first, channels_at = ((projection, projection) if projection is not None
                          else (teacher.embeddings, teacher.embeddings.LayerNorm))
    handles.append(channels_at.register_forward_hook(ln_hook))
    handles.append(first.register_forward_hook(lambda _m, _a, out: hidden_in.__setitem__(0, _first(out))))
    for i, layer in enumerate(layers):
        handles.append(layer.attention.output.LayerNorm.register_forward_hook(ln_hook))
        handles.append(layer.output.LayerNorm.register_forward_hook(ln_hook))

        def ctx_hook(_m, args, i=i):
            ctx = args[0]
            B, T, W = ctx.shape
            add(f"heads.{i}", ctx.view(B, T, W // head_size, head_size).norm(dim=-1).mean(1))

        def ffn_hook(_m, _a, out, i=i):
            add(f"neurons.{i}", _first(out).abs().mean(1))

        def block_hook(_m, _a, out, i=i):
            x_in, x_out = hidden_in[i], _first(out)
            block_sum[i] += (1 - torch.cosine_similarity(x_in, x_out, dim=-1)).mean(1).double().sum().cpu()
            hidden_in[i + 1] = x_out

        handles.append(layer.attention.output.dense.register_forward_pre_hook(ctx_hook))
        handles.append(layer.intermediate.register_forward_hook(ffn_hook))
        handles.append(layer.register_forward_hook(block_hook))
    was_training = teacher.training
    teacher.eval()
    try:
        for i in range(0, len(blocks), batch_size):
            ids = torch.as_tensor(np.asarray(blocks[i:i + batch_size], dtype=np.int64), device=device)
            teacher(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        for h in handles:
            h.remove()
        teacher.train(was_training)
    n = len(layers)
    return Importance(
        channels=sq["channels"].sqrt().cpu(),
        heads=[sq[f"heads.{i}"].sqrt().cpu() for i in range(n)],
        neurons=[sq[f"neurons.{i}"].sqrt().cpu() for i in range(n)],
        blocks=(block_sum / max(len(blocks), 1)).float(),
    )


def _head_rows(perm: torch.Tensor, head_size: int) -> torch.Tensor:
    """Row indices of a [A * head_size, ...] projection for a head permutation."""
    return (perm[:, None] * head_size + torch.arange(head_size)[None, :]).reshape(-1)


def permute_state_dict(sd: dict[str, torch.Tensor], order: Order, head_size: int) -> dict[str, torch.Tensor]:
    """A state dict under BERT's parameter names (BERT, RoBERTa, ELECTRA) with ``order`` applied; other keys
    unchanged. Under ELECTRA's embedding projection the hidden channels begin at the projection's output, so the
    embeddings, at their own width, keep their order."""
    P = order.channels
    out = dict(sd)

    def put(key, fn):
        if key in out:
            out[key] = fn(out[key]).contiguous()

    if "embeddings_project.weight" in out:
        put("embeddings_project.weight", lambda w: w[P])
        put("embeddings_project.bias", lambda b: b[P])
    else:
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            put(f"embeddings.{name}.weight", lambda w: w[:, P])
        for part in ("weight", "bias"):
            put(f"embeddings.LayerNorm.{part}", lambda w: w[P])
    for i, (heads, neurons) in enumerate(zip(order.heads, order.neurons)):
        pre = f"encoder.layer.{i}."
        rows = _head_rows(heads, head_size)
        for proj in ("query", "key", "value"):
            put(f"{pre}attention.self.{proj}.weight", lambda w: w[rows][:, P])
            put(f"{pre}attention.self.{proj}.bias", lambda b: b[rows])
        put(f"{pre}attention.output.dense.weight", lambda w: w[P][:, rows])
        put(f"{pre}intermediate.dense.weight", lambda w: w[neurons][:, P])
        put(f"{pre}intermediate.dense.bias", lambda b: b[neurons])
        put(f"{pre}output.dense.weight", lambda w: w[P][:, neurons])
        for key in ("attention.output.dense.bias", "output.dense.bias", "attention.output.LayerNorm.weight",
                    "attention.output.LayerNorm.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"):
            put(pre + key, lambda w: w[P])
    put("pooler.dense.weight", lambda w: w[P][:, P])
    put("pooler.dense.bias", lambda b: b[P])
    return out


@torch.no_grad()
def apply_order(teacher: nn.Module, order: Order) -> nn.Module:
    """Permute ``teacher``'s weights in place (same function, hidden channels of its outputs permuted)."""
    cfg = teacher.config
    sd = permute_state_dict(teacher.state_dict(), order, cfg.hidden_size // cfg.num_attention_heads)
    teacher.load_state_dict(sd)
    return teacher


def calibration_blocks(blocks: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of ``n`` corpus blocks (all of them if there are fewer), in corpus order."""
    if n >= len(blocks):
        return np.asarray(blocks)
    rows = np.sort(np.random.default_rng(seed).choice(len(blocks), size=n, replace=False))
    return np.asarray(blocks[rows])
