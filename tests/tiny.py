"""Tiny random teachers and SuperLMs for the unit tests (no downloads, milliseconds to build)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import BertConfig, BertModel

from autodistil.space import Envelope, SubSpace, TeacherDims
from autodistil.superlm import SuperLM, SuperLMConfig

VOCAB = 120


def tiny_teacher(seed: int = 0, layers: int = 4, hidden: int = 64, heads: int = 4, ffn: int = 128) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=ffn, max_position_embeddings=64, attn_implementation="sdpa",
    )
    model = BertModel(config).eval()
    with torch.no_grad():  # BERT's init gives LayerNorms weight 1 / bias 0: perturb so slicing bugs show
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def tiny_family_teacher(model_type: str, seed: int = 0, embedding_size: int | None = None):
    """A tiny random teacher of another family (RoBERTa-like or ELECTRA; ``embedding_size`` below the hidden size
    gives ELECTRA its embedding projection), its LayerNorms perturbed as :func:`tiny_teacher`'s."""
    import transformers

    from autodistil.family import family_of

    config_cls, model_cls = family_of(model_type).classes()
    family = family_of(model_type)
    # ELECTRA without a projection has embeddings as wide as its hidden size; RoBERTa's have one token type
    extra = {"embedding_size": embedding_size or 64} if family.embedding_projection else {}
    if family.positions_after_padding:
        extra["type_vocab_size"] = 1
    # RoBERTa's position table holds padding_idx + 1 extra rows, as roberta-base's 514 for 512 tokens
    positions = 64 + (2 if family.positions_after_padding else 0)
    torch.manual_seed(seed)
    config = config_cls(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=positions, attn_implementation="sdpa",
                        **extra)
    model = model_cls(config).eval()
    assert isinstance(model, transformers.PreTrainedModel)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def tiny_subspace(convention: str = "stock") -> SubSpace:
    return SubSpace.from_dict(
        "tiny", {"layers": [1, 2, 3, 4], "heads": [2, 3, 4], "hidden": [32, 48, 64], "mlp_ratio": [1.5, 2]}, convention
    )


def tiny_superlm(teacher: BertModel, sub: SubSpace, **overrides) -> SuperLM:
    dims = TeacherDims.from_config(teacher.config)
    cfg = SuperLMConfig.from_teacher_config(teacher.config, Envelope.of(sub.candidates(dims)), **overrides)
    return SuperLM.from_teacher(teacher, cfg)


def padded_batch(seed: int = 1, batch: int = 3, length: int = 12, pad: int = 0):
    """Token ids with a ragged attention mask (row 0 full, the others padded at the end with ``pad``, which no
    other token is, as a tokenizer's output)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(pad + 1, VOCAB, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for row in range(1, batch):
        mask[row, length - 3 * row:] = 0
    ids = ids.masked_fill(mask == 0, pad)
    types = torch.zeros_like(ids)
    types[:, length // 2:] = 1
    return ids, mask, types


def tiny_tokenizer(folder):
    """A real WordPiece tokenizer over a tiny vocabulary, saved in ``folder``."""
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "##s"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"))  # transformers 5: vocab=, not vocab_file=
    tokenizer.save_pretrained(folder)
    return tokenizer


def training_blocks(n: int = 48, seq_len: int = 16, seed: int = 0) -> np.ndarray:
    """Random full corpus blocks, [CLS] ... [SEP]."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(5, VOCAB, size=(n, seq_len)).astype(np.uint16)
    blocks[:, 0], blocks[:, -1] = 2, 3
    return blocks


def training_setup(dropout: float = 0.0, **cfg):
    """(teacher, SuperLM, sandwich sampler, TrainConfig) of a 6-step run, a checkpoint every 2 steps."""
    from autodistil.sampling import SubnetSampler
    from autodistil.train import TrainConfig

    teacher = tiny_teacher()
    # every candidate is smaller than the teacher, so even the largest starts with a positive loss
    sub = SubSpace.from_dict("s", {"layers": [1, 2, 3], "heads": [2, 3], "hidden": [32, 48], "mlp_ratio": [1.5, 2]})
    dims = TeacherDims.from_config(teacher.config)
    superlm = tiny_superlm(teacher, sub, hidden_dropout=dropout, attention_dropout=dropout)
    sampler = SubnetSampler(sub.candidates(dims), sub.largest(dims), sub.smallest(dims), "sandwich", 2, seed=0)
    config = TrainConfig(**{"max_steps": 6, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 2, "log_every": 1,
                            "dropout": dropout, **cfg})
    return teacher, superlm, sampler, config


class StopTraining(Exception):
    """Raised by :func:`stop_after_checkpoints` on every rank at once."""


def stop_after_checkpoints(n: int) -> None:
    """Interrupt training on every rank right after its ``n``-th checkpoint: the barrier that follows a checkpoint
    under DDP is patched to raise once passed (a kill, without the race of a signal)."""
    import torch.distributed as dist

    real, seen = dist.barrier, [0]

    def barrier(*args, **kwargs):
        real(*args, **kwargs)
        seen[0] += 1
        if seen[0] == n:
            raise StopTraining

    dist.barrier = barrier


def superlm_params(raw: dict):
    """The ``superlm`` section ``raw`` checked as params.yaml's is (a step budget unless ``raw`` sets tokens)."""
    from autodistil.config import TrainConfig, check

    return check(TrainConfig, {"max_tokens": None, **raw}, "params.yaml: superlm")
