"""The weight-sharing SuperLM: a BERT-like encoder (BERT, RoBERTa, ELECTRA) shaped as the envelope of a sub-space.

Any architecture of the sub-space runs as a sub-network of it: leading slices for every width,
LayerNorm statistics over the active hidden channels, and a depth rule (strided by default) choosing
which layers a shallower student keeps. Parameter names mirror the teacher's family's stock model (BERT's
names, which RoBERTa and ELECTRA share) so that both building from a teacher and exporting a student are
leading slices of a state dict; what differs between families is read from :mod:`autodistil.family`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

from .elastic import ElasticEmbedding, ElasticLayerNorm, ElasticLinear, leading_slice
from .family import family_of_config
from .relations import QKV
from .space import Arch, Envelope, SearchSpaceError, depth_indices, rank_kept


@dataclass(frozen=True)
class SuperLMConfig:
    """Everything needed to rebuild a SuperLM (saved as ``superlm.json`` beside its weights)."""

    envelope: Envelope
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str
    pad_token_id: int
    relation_heads: int  # N_r, the teacher's head count
    model_type: str = "bert"  # the teacher's family (autodistil.family): students are exported as its type
    position_offset: int = 0  # first position id (RoBERTa: padding_idx + 1)
    embedding_size: int | None = None  # ELECTRA's embedding width where it differs from the hidden size
    pooler: bool = True
    depth_rule: str = "strided"
    layer_ranking: list[int] | None = None  # the SuperLM's layers, most important first (importance depth rule)
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    provenance: dict = field(default_factory=dict)

    @classmethod
    def from_teacher_config(cls, config, envelope: Envelope, **overrides) -> "SuperLMConfig":
        family = family_of_config(config)
        return cls(
            envelope=envelope,
            vocab_size=config.vocab_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            layer_norm_eps=config.layer_norm_eps,
            hidden_act=config.hidden_act,
            pad_token_id=config.pad_token_id if config.pad_token_id is not None else 0,
            relation_heads=config.num_attention_heads,
            model_type=family.model_type,
            position_offset=family.position_offset(config),
            embedding_size=family.embedding_size(config),
            pooler=family.pooler,
            **overrides,
        )

    def to_dict(self) -> dict:
        """Every field, but the family's at BERT's values left out: a BERT SuperLM's superlm.json and checkpoint
        identity are what they were before families existed (``from_dict`` fills them back)."""
        d = asdict(self)
        for name, bert in FAMILY_DEFAULTS.items():
            if d[name] == bert:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SuperLMConfig":
        return cls(**{**d, "envelope": Envelope(**d["envelope"])})


FAMILY_DEFAULTS = {"model_type": "bert", "position_offset": 0, "embedding_size": None, "pooler": True}


class SuperLMOutput(NamedTuple):
    last_hidden_state: torch.Tensor | None  # None when the forward stopped at the distilled layer
    qkv: QKV | None
    hidden: torch.Tensor | None = None  # output of the distilled layer (when asked for)


class ElasticEmbeddings(nn.Module):
    """Word, position and token-type embeddings at the active hidden size, or, under an embedding projection
    (ELECTRA), at the fixed embedding size that every student keeps."""

    def __init__(self, cfg: SuperLMConfig):
        super().__init__()
        E = cfg.embedding_size or cfg.envelope.hidden
        self.fixed = cfg.embedding_size
        self.position_offset = cfg.position_offset
        self.word_embeddings = ElasticEmbedding(cfg.vocab_size, E, padding_idx=cfg.pad_token_id)
        self.position_embeddings = ElasticEmbedding(cfg.max_position_embeddings, E)
        self.token_type_embeddings = ElasticEmbedding(cfg.type_vocab_size, E)
        self.LayerNorm = ElasticLayerNorm(E, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, input_ids, token_type_ids, hidden: int) -> torch.Tensor:
        hidden = self.fixed or hidden
        # padded positions get ids past padding_idx too (RoBERTa gives them padding_idx): masked keys, never read
        positions = torch.arange(input_ids.shape[1], device=input_ids.device) + self.position_offset
        x = (
            self.word_embeddings(input_ids, hidden)
            + self.token_type_embeddings(token_type_ids, hidden)
            + self.position_embeddings(positions, hidden)
        )
        return self.dropout(self.LayerNorm(x))


class _Linear(nn.Module):
    """``dense`` (+ optional ``LayerNorm``) container, named as in BERT."""

    def __init__(self, d_in: int, d_out: int, eps: float | None = None):
        super().__init__()
        self.dense = ElasticLinear(d_in, d_out)
        if eps is not None:
            self.LayerNorm = ElasticLayerNorm(d_out, eps=eps)


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, width: int):
        super().__init__()
        self.query = ElasticLinear(hidden, width)
        self.key = ElasticLinear(hidden, width)
        self.value = ElasticLinear(hidden, width)


class _Attention(nn.Module):
    def __init__(self, hidden: int, width: int, eps: float):
        super().__init__()
        self.self = _SelfAttention(hidden, width)
        self.output = _Linear(width, hidden, eps)


class ElasticLayer(nn.Module):
    """One post-LayerNorm BERT layer running at any (heads, head size, hidden, FFN) within its maxima."""

    def __init__(self, cfg: SuperLMConfig):
        super().__init__()
        env = cfg.envelope
        self.attention = _Attention(env.hidden, env.attention_width, cfg.layer_norm_eps)
        self.intermediate = _Linear(env.hidden, env.ffn)
        self.output = _Linear(env.ffn, env.hidden, cfg.layer_norm_eps)
        self.act = ACT2FN[cfg.hidden_act]
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.attention_dropout = cfg.attention_dropout

    def project_qkv(self, x: torch.Tensor, arch: Arch) -> QKV:
        sa = self.attention.self
        w = arch.attention_width
        return QKV(sa.query(x, w), sa.key(x, w), sa.value(x, w))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None, arch: Arch, qkv: QKV | None = None
                ) -> torch.Tensor:
        B, T, H = x.shape
        q, k, v = qkv if qkv is not None else self.project_qkv(x, arch)
        heads = lambda t: t.view(B, T, arch.heads, arch.head_size).transpose(1, 2)  # noqa: E731
        ctx = F.scaled_dot_product_attention(
            heads(q), heads(k), heads(v), attn_mask=key_mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        ctx = ctx.transpose(1, 2).reshape(B, T, arch.attention_width)
        out = self.attention.output
        a = out.LayerNorm(self.dropout(out.dense(ctx, H)) + x)
        f = self.act(self.intermediate.dense(a, arch.ffn))
        return self.output.LayerNorm(self.dropout(self.output.dense(f, H)) + a)


class SuperLM(nn.Module):
    """BERT-like encoder whose sub-networks are the architectures of one sub-space."""

    def __init__(self, cfg: SuperLMConfig):
        super().__init__()
        self.config = cfg
        env = cfg.envelope
        self.embeddings = ElasticEmbeddings(cfg)
        if cfg.embedding_size:
            self.embeddings_project = ElasticLinear(cfg.embedding_size, env.hidden)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(ElasticLayer(cfg) for _ in range(env.layers))
        if cfg.pooler:
            self.pooler = _Linear(env.hidden, env.hidden)
        self.active: Arch | None = None

    # -- sub-network selection -------------------------------------------------------------------
    def check_arch(self, arch: Arch) -> None:
        if not self.config.envelope.contains(arch):
            raise SearchSpaceError(f"{arch.name} does not fit in this SuperLM (envelope {self.config.envelope})")
        if arch.heads * arch.head_size != arch.attention_width:  # pragma: no cover - Arch guarantees it
            raise SearchSpaceError(f"{arch.name}: inconsistent attention width")

    def set_active(self, arch: Arch) -> None:
        """Select the sub-network that :meth:`forward` runs when no ``arch`` is passed."""
        self.check_arch(arch)
        self.active = arch

    def layer_indices(self, arch: Arch) -> list[int]:
        return depth_indices(self.config.envelope.layers, arch.layers, self.config.depth_rule,
                             self.config.layer_ranking)

    # -- forward -----------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        arch: Arch | None = None,
        distill_layer: int | None = -1,
        stop_at_distill_layer: bool = False,
        distill_hidden: bool = False,
    ) -> SuperLMOutput:
        """Run the sub-network ``arch`` (default: the active one).

        ``distill_layer`` indexes the student's own layers (-1 = its last); the Q/K/V of that layer are
        returned, and with ``distill_hidden`` its output hidden state too. With ``stop_at_distill_layer`` the
        forward ends right after what is distilled (the projections, or the layer's output): the rest of
        the network cannot influence a loss on them, so training skips it.
        """
        arch = arch or self.active
        if arch is None:
            raise RuntimeError("no sub-network selected: call set_active(arch) or pass arch=")
        self.check_arch(arch)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        # no mask for unpadded input (corpus blocks): SDPA may then take its fused (flash) kernels
        key_mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()  # True = attend

        layers = self.layer_indices(arch)
        target = None if distill_layer is None else range(arch.layers)[distill_layer]
        x = self.embeddings(input_ids, token_type_ids, arch.hidden)
        if self.config.embedding_size:
            x = self.embeddings_project(x, arch.hidden)
        qkv = hidden = None
        for i, idx in enumerate(layers):
            layer = self.encoder.layer[idx]
            if i == target:
                qkv = layer.project_qkv(x, arch)
                if stop_at_distill_layer and not distill_hidden:
                    return SuperLMOutput(None, qkv)
                x = layer(x, key_mask, arch, qkv)
                if distill_hidden:
                    hidden = x
                    if stop_at_distill_layer:
                        return SuperLMOutput(None, qkv, hidden)
            else:
                x = layer(x, key_mask, arch)
        return SuperLMOutput(x, qkv, hidden)

    # -- weights -----------------------------------------------------------------------------------
    def sliced_state_dict(self, arch: Arch, target_shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
        """The weights of sub-network ``arch`` under the parameter names and shapes of the family's stock model."""
        self.check_arch(arch)
        return slice_state_dict(self.state_dict(), target_shapes, self.layer_indices(arch))

    @classmethod
    def from_teacher(cls, teacher: nn.Module, cfg: SuperLMConfig, teacher_ranking: list[int] | None = None
                     ) -> "SuperLM":
        """A SuperLM initialised with leading slices of the teacher's weights.

        SuperLM layer j takes teacher layer floor(j * N_teacher / N) (or j, with the first-k rule; with the
        importance rule, the N most important teacher layers of ``teacher_ranking``, in order, and the
        SuperLM's ``layer_ranking`` is set from it).
        """
        n_teacher = teacher.config.num_hidden_layers
        layer_map = depth_indices(n_teacher, cfg.envelope.layers, cfg.depth_rule, teacher_ranking)
        if cfg.depth_rule == "importance":
            cfg = replace(cfg, layer_ranking=rank_kept(teacher_ranking, layer_map))
        model = cls(cfg)
        teacher_sd = teacher.state_dict()
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        missing = [k for k in shapes if _teacher_key(k, layer_map) not in teacher_sd]
        if missing:
            raise ValueError(f"the teacher is not a {cfg.model_type} encoder: it has no weight for {missing[0]!r}")
        model.load_state_dict(slice_state_dict(teacher_sd, shapes, layer_map))
        return model

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), directory / "superlm.pt")
        (directory / "superlm.json").write_text(json.dumps(self.config.to_dict(), indent=2))

    @classmethod
    def load(cls, directory: str | Path, map_location="cpu") -> "SuperLM":
        directory = Path(directory)
        cfg = SuperLMConfig.from_dict(json.loads((directory / "superlm.json").read_text()))
        model = cls(cfg)
        model.load_state_dict(torch.load(directory / "superlm.pt", map_location=map_location, weights_only=True))
        return model


def _teacher_key(key: str, layer_map: list[int]) -> str:
    parts = key.split(".")
    if parts[:2] == ["encoder", "layer"]:
        parts[2] = str(layer_map[int(parts[2])])
    return ".".join(parts)


def slice_state_dict(
    source: dict[str, torch.Tensor], target_shapes: dict[str, torch.Size], layer_map: list[int]
) -> dict[str, torch.Tensor]:
    """Target layer i ← source layer ``layer_map[i]``; every tensor a leading slice of its source."""
    return {
        key: leading_slice(source[_teacher_key(key, layer_map)], tuple(shape)).clone()
        for key, shape in target_shapes.items()
    }
