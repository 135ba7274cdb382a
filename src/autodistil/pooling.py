"""How a run turns a sequence's hidden states into one vector: the teacher's own way by default.

A sentence-transformers teacher (all-MiniLM-L6-v2) was trained through its pooling module (mean over real tokens),
and its BERT pooler was never trained; a plain BERT teacher's [CLS] and pooler were (next-sentence prediction).
``finetune.pooling: auto`` reads which, so that every model of a run (teacher, students, random twins) is
fine-tuned and measured through the pooling its teacher learned with. Students of a sentence-transformers
teacher are exported with its module files (:func:`sentence_transformers_files`), so that
``SentenceTransformer(folder)`` pools them as it pools the teacher.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

POOLINGS = ("cls", "mean")
ST_MODULES = "modules.json"


def pool(hidden: "torch.Tensor", attention_mask: "torch.Tensor", pooling: str) -> "torch.Tensor":
    """[B, T, H] -> [B, H]: the mean over real tokens, or the first token's state (``cls``)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
    mask = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def pooling_config(folder: str | Path) -> dict | None:
    """The sentence-transformers pooling config of a model folder (``modules.json`` naming a Pooling module), or
    None when the folder is no sentence-transformers model."""
    folder = Path(folder)
    modules = folder / ST_MODULES
    if not modules.is_file():
        return None
    for m in json.loads(modules.read_text()):
        if m.get("type", "").endswith(".Pooling"):
            path = folder / m.get("path", "") / "config.json"
            return json.loads(path.read_text()) if path.is_file() else None
    return None


def pooling_of_folder(folder: str | Path) -> str:
    """``mean`` or ``cls``: what the model in ``folder`` was trained to pool with (its pooler, when it has no
    sentence-transformers pooling)."""
    cfg = pooling_config(folder)
    if cfg is None:
        return "cls"
    if cfg.get("pooling_mode_mean_tokens") or cfg.get("pooling_mode_mean_sqrt_len_tokens"):
        return "mean"
    return "cls"


def resolve_pooling(setting: str, teacher_source: str) -> str:
    """``finetune.pooling`` made concrete: ``auto`` -> the teacher's (:func:`pooling_of_folder`)."""
    if setting in POOLINGS:
        return setting
    if setting != "auto":
        raise ValueError(f"finetune.pooling: expected auto, cls or mean, got {setting!r}")
    from .teacher import resolve_source

    folder = Path(resolve_source(teacher_source))
    return pooling_of_folder(folder) if folder.is_dir() else "cls"  # a hub id offline: its pooler


def sentence_transformers_files(teacher_folder: str | Path, hidden_size: int) -> dict[str, str]:
    """The sentence-transformers module files of the teacher, for a student of width ``hidden_size``: ``{relative
    path: text}`` (empty when the teacher is no sentence-transformers model). The pooling's embedding width is the
    student's; every other setting (mean pooling, normalisation, max sequence length) is the teacher's."""
    teacher_folder = Path(teacher_folder)
    if not (teacher_folder / ST_MODULES).is_file():
        return {}
    files = {}
    modules = json.loads((teacher_folder / ST_MODULES).read_text())
    files[ST_MODULES] = json.dumps(modules, indent=2) + "\n"
    for name in ("sentence_bert_config.json", "config_sentence_transformers.json"):
        if (teacher_folder / name).is_file():
            files[name] = (teacher_folder / name).read_text()
    for m in modules:
        sub = m.get("path", "")
        if not sub:
            continue
        for f in sorted((teacher_folder / sub).glob("*.json")) if (teacher_folder / sub).is_dir() else []:
            cfg = json.loads(f.read_text())
            if "word_embedding_dimension" in cfg:
                cfg["word_embedding_dimension"] = hidden_size
            files[f"{sub}/{f.name}"] = json.dumps(cfg, indent=2) + "\n"
    return files
