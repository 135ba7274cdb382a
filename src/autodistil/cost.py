"""Cost model: parameters and FLOPs in two conventions.

``paper``: the AutoDistil paper's formulas, which assume an attention width w = H * A / A_teacher
(A_teacher = 12 for BERT-base) and count multiply-accumulates per sequence, without embeddings,
softmax or LayerNorm. They reproduce the published anchors (BERT-base 109 M / 11.2 GFLOPs).

``exact``: the model that actually runs, with its real attention width A * head_size. Parameters are
what the module holds; FLOPs are the multiply-accumulates of its matrix products, which is what
``torch.utils.flop_counter`` counts (divided by 2: torch counts a multiply-add as 2 FLOPs). The pooler
runs on the [CLS] token only.

"GFLOPs" everywhere in this project means 1e9 multiply-accumulates per sequence, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

from .family import family_of_config
from .space import Arch, exact_macs


@dataclass(frozen=True)
class Vocab:
    """Embedding table sizes (BERT's by default), and what else of a model's family counts outside the layers:
    ELECTRA's embedding width with its projection, the pooler (not ELECTRA's)."""

    size: int = 30522
    positions: int = 512
    token_types: int = 2
    embedding_size: int | None = None  # embeddings narrower than the hidden size, projected up (ELECTRA)
    pooler: bool = True

    @classmethod
    def from_config(cls, config) -> "Vocab":
        """From a transformers config, the teacher's shape namespace or a SuperLM config (which holds the
        projected embedding width already, and no hidden size)."""
        family = family_of_config(config)
        emb = family.embedding_size(config) if hasattr(config, "hidden_size") else getattr(
            config, "embedding_size", None)
        return cls(config.vocab_size, config.max_position_embeddings, config.type_vocab_size, emb,
                   getattr(config, "pooler", family.pooler))


def paper_params(arch: Arch, teacher_heads: int = 12, vocab: Vocab = Vocab()) -> float:
    """The paper's parameter formula (width H·A/12), its embeddings and pooler as the teacher's family has them."""
    L, H, R = arch.layers, arch.hidden, arch.ffn / arch.hidden
    w = H * arch.heads / teacher_heads
    E = vocab.embedding_size or H
    embeddings = E * (vocab.size + vocab.positions + vocab.token_types + 2) + (E * H + H if vocab.embedding_size else 0)
    return (
        embeddings
        + L * (H * H + 3 * H * w + 6 * H)
        + L * (2 * R * H * H + R * H + 3 * H)
        + (H * H + 2 * H if vocab.pooler else 0)
    )


def paper_gflops(arch: Arch, seq_len: int = 128, teacher_heads: int = 12) -> float:
    L, H, R, n = arch.layers, arch.hidden, arch.ffn / arch.hidden, seq_len
    w = H * arch.heads / teacher_heads
    macs = L * (3 * n * H * w + 2 * n * n * w + n * H * H + 2 * n * R * H * H) + n * H * H + 2 * H
    return macs / 1e9


def exact_params(arch: Arch, vocab: Vocab = Vocab()) -> int:
    """Parameter count of the stock-layout encoder (with its family's pooler and embeddings) that runs ``arch``."""
    H, w, F = arch.hidden, arch.attention_width, arch.ffn
    E = vocab.embedding_size or H
    embeddings = (vocab.size + vocab.positions + vocab.token_types) * E + 2 * E
    if vocab.embedding_size:
        embeddings += E * H + H  # the projection to the hidden size
    attention = 3 * (H * w + w) + (w * H + H) + 2 * H
    mlp = (H * F + F) + (F * H + H) + 2 * H
    pooler = H * H + H if vocab.pooler else 0
    return embeddings + arch.layers * (attention + mlp) + pooler


def exact_gflops(arch: Arch, seq_len: int = 128, vocab: Vocab = Vocab()) -> float:
    """Matrix-product multiply-accumulates per sequence of the model that runs ``arch`` (with its family's pooler
    on one token and embedding projection on every token, as ``vocab`` says)."""
    return exact_macs(arch, seq_len, vocab.pooler, vocab.embedding_size) / 1e9


def costs(arch: Arch, seq_len: int = 128, teacher_heads: int = 12, vocab: Vocab = Vocab()) -> dict:
    """Both conventions, as stored in ``autodistil.json`` and the search tables."""
    return {
        "params_paper": paper_params(arch, teacher_heads, vocab),
        "gflops_paper": paper_gflops(arch, seq_len, teacher_heads),
        "params_exact": exact_params(arch, vocab),
        "gflops_exact": exact_gflops(arch, seq_len, vocab),
        "seq_len": seq_len,
    }


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model, seq_len: int = 128, **forward_kwargs) -> float:
    """Multiply-accumulates of one forward pass on one sequence, counted by torch.

    Counted under the MATH attention backend: torch's counter sees nothing inside the fused CPU
    attention kernel, while the math backend decomposes attention into counted matrix products.
    """
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    ids = torch.ones(1, seq_len, dtype=torch.long, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids), **forward_kwargs)
    return counter.get_total_flops() / 2 / 1e9
