"""Unlabelled text -> fixed-length token blocks for relation distillation (train) and search (held-out).

Documents come from a local folder of UTF-8 text files (``*.txt``, sorted by path; documents separated by
blank lines) or a hub dataset (one row = one document; streamed, so only what the budget needs is read).
Each document goes wholly to train or to held-out, decided by a seeded hash of its text (deterministic,
independent of order and batch size). Within a split, documents' tokens are concatenated with one [SEP]
between documents and cut into blocks ``[CLS] + (seq_len - 2) tokens + [SEP]``; the incomplete tail is
dropped, so every block is full and unpadded.

On disk (``data/corpus/``): ``train.npy`` and ``heldout.npy`` ([n_blocks, seq_len], uint16 when the vocab
fits, else int32; open with :func:`load_blocks`, a memmap) and ``meta.json``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import InputError, atomic_path

SPLITS = ("train", "heldout")
META_FILE = "meta.json"


# ------------------------------------------------------------------------------------------ documents
def iter_text_files(source: str | os.PathLike) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InputError(f"{source}: corpus folder not found")
    return sorted(p for p in source.rglob("*.txt") if p.is_file())


def iter_local_documents(source: str | os.PathLike) -> Iterator[str]:
    """Documents of a folder (or one file) of text: runs of non-blank lines, joined by newlines."""
    files = iter_text_files(source)
    if not files:
        raise InputError(f"{source}: empty corpus (no *.txt files)")
    for path in files:
        doc: list[str] = []
        with path.open("rb") as f:
            for i, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8-sig" if i == 1 else "utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    raise InputError(
                        f"{path}:{i}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                    ) from None
                if line.strip():
                    doc.append(line)
                elif doc:
                    yield "\n".join(doc)
                    doc = []
        if doc:
            yield "\n".join(doc)


def iter_hub_documents(
    dataset: str, config: str | None = None, split: str = "train", text_field: str = "text",
    streaming: bool = True,
) -> Iterator[str]:
    """Rows of a hub dataset (``Salesforce/wikitext``, ``wikimedia/wikipedia`` ...) or of a local Parquet/Arrow
    folder or file, one non-blank ``text_field`` per document."""
    import datasets

    local = Path(dataset).expanduser()
    if local.exists():
        files = sorted(local.rglob("*.parquet")) if local.is_dir() else [local]
        if not files:
            raise InputError(f"{local}: no *.parquet files")
        ds = datasets.load_dataset("parquet", data_files=[str(p) for p in files], split="train", streaming=streaming)
        where = str(local)
    else:
        where = f"{dataset}" + (f":{config}" if config else "")
        try:
            ds = datasets.load_dataset(dataset, config, split=split, streaming=streaming)
        except (FileNotFoundError, ConnectionError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"hub dataset {where} split '{split}': {first}") from None
    for i, row in enumerate(ds):
        if text_field not in row:
            raise InputError(f"{where}: no field '{text_field}' (found {', '.join(row)})")
        text = row[text_field]
        if text is None:
            continue
        if not isinstance(text, str):
            raise InputError(f"{where} row {i}: field '{text_field}' is not text")
        if text.strip():
            yield text


def heldout_by_hash(text: str, seed: int, fraction: float) -> bool:
    """Whether a document belongs to the held-out split: a seeded 64-bit hash of its text, below ``fraction``."""
    h = hashlib.blake2b(text.encode("utf-8"), digest_size=8, salt=str(seed).encode()[:16])
    return int.from_bytes(h.digest(), "little") / 2**64 < fraction


# --------------------------------------------------------------------------------------------- blocks
def block_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)


class _BlockPacker:
    """Concatenates documents' token ids (one [SEP] between documents) into full blocks of seq_len."""

    def __init__(self, seq_len: int, cls_id: int, sep_id: int, max_blocks: int, dtype: np.dtype):
        self.body = seq_len - 2
        self.cls_id, self.sep_id, self.max_blocks, self.dtype = cls_id, sep_id, max_blocks, dtype
        self.pending: list[int] = []
        self.blocks: list[np.ndarray] = []  # each [k, seq_len]
        self.n_blocks = 0
        self.documents = 0
        self.doc_tokens = 0

    @property
    def full(self) -> bool:
        return self.n_blocks >= self.max_blocks

    def add(self, ids: list[int]) -> None:
        if self.full or not ids:
            return
        self.documents += 1
        self.doc_tokens += len(ids)
        if self.documents > 1:  # one [SEP] between consecutive documents, also across block boundaries
            self.pending.append(self.sep_id)
        self.pending.extend(ids)
        k = min(len(self.pending) // self.body, self.max_blocks - self.n_blocks)
        if k:
            body = np.asarray(self.pending[: k * self.body], dtype=self.dtype).reshape(k, self.body)
            block = np.empty((k, self.body + 2), dtype=self.dtype)
            block[:, 0], block[:, -1], block[:, 1:-1] = self.cls_id, self.sep_id, body
            self.blocks.append(block)
            self.n_blocks += k
            del self.pending[: k * self.body]
        if self.full:
            self.pending = []

    def array(self) -> np.ndarray:
        if not self.blocks:
            return np.empty((0, self.body + 2), dtype=self.dtype)
        return np.concatenate(self.blocks)


@dataclass
class CorpusResult:
    arrays: dict[str, np.ndarray]
    stats: dict[str, Any]


def build_blocks(
    documents: Iterator[str],
    tokenizer,
    seq_len: int = 128,
    train_tokens: int = 3_000_000,
    heldout_blocks: int = 256,
    heldout_fraction: float = 0.02,
    seed: int = 0,
    batch_docs: int = 256,
    progress: bool = True,
    source: str = "corpus",
) -> CorpusResult:
    """Tokenise documents into train/held-out blocks until both budgets are met or documents run out.

    ``train_tokens`` is the train budget in tokens (``train_tokens // seq_len`` blocks); ``heldout_blocks``
    the held-out budget in blocks. Documents of a full split are skipped before tokenisation.
    """
    if seq_len < 3:
        raise InputError(f"prepare_corpus.seq_len must be >= 3, got {seq_len}")
    if not 0 < heldout_fraction < 1:
        raise InputError(f"prepare_corpus.heldout_fraction must be in (0, 1), got {heldout_fraction}")
    max_train = int(train_tokens) // seq_len
    if max_train < 1 or heldout_blocks < 1:
        raise InputError(
            f"prepare_corpus budgets must give >= 1 block each (train_tokens {train_tokens} at seq_len {seq_len},"
            f" heldout_blocks {heldout_blocks})"
        )
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise InputError("the teacher's tokenizer has no [CLS]/[SEP] tokens")
    dtype = block_dtype(len(tokenizer))
    packers = {
        "train": _BlockPacker(seq_len, cls_id, sep_id, max_train, dtype),
        "heldout": _BlockPacker(seq_len, cls_id, sep_id, int(heldout_blocks), dtype),
    }
    documents = iter(documents)
    first = next(documents, None)  # an empty corpus fails before any progress output
    if first is None:
        raise InputError(f"{source}: empty corpus (no non-blank documents)")
    documents = itertools.chain([first], documents)
    from tqdm.auto import tqdm

    bar = tqdm(total=max_train + int(heldout_blocks), unit="block", desc="prepare_corpus", disable=not progress)
    scanned = 0
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        if not batch:
            return
        before = sum(p.n_blocks for p in packers.values())
        ids = tokenizer([t for _, t in batch], add_special_tokens=False, verbose=False)["input_ids"]
        for (split, _), doc_ids in zip(batch, ids):
            packers[split].add(doc_ids)
        batch.clear()
        bar.update(sum(p.n_blocks for p in packers.values()) - before)

    for text in documents:
        scanned += 1
        split = "heldout" if heldout_by_hash(text, seed, heldout_fraction) else "train"
        if not packers[split].full:
            batch.append((split, text))
            if len(batch) >= batch_docs:
                flush()
        if all(p.full for p in packers.values()):
            break
    flush()
    bar.close()
    arrays = {s: packers[s].array() for s in SPLITS}
    for s in SPLITS:
        if len(arrays[s]) == 0:
            raise InputError(
                f"{source}: corpus too small: 0 {s} blocks of {seq_len} tokens from {scanned} documents"
            )
    stats: dict[str, Any] = {
        "documents_scanned": scanned,
        "exhausted": not all(p.full for p in packers.values()),
        "seq_len": seq_len,
        "dtype": dtype.name,
        "vocab_size": len(tokenizer),
    }
    for s in SPLITS:
        p = packers[s]
        stats[s] = {
            "documents": p.documents,
            "document_tokens": p.doc_tokens,
            "blocks": int(len(arrays[s])),
            "tokens": int(arrays[s].size),
        }
    return CorpusResult(arrays, stats)


def save_blocks(result: CorpusResult, out_dir: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write ``train.npy``, ``heldout.npy`` and ``meta.json`` into ``out_dir`` atomically."""
    with atomic_path(out_dir, is_dir=True) as tmp:
        for split, arr in result.arrays.items():
            np.save(tmp / f"{split}.npy", np.ascontiguousarray(arr))
        full_meta = {**(meta or {}), **result.stats}
        (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2) + "\n", encoding="utf-8")
    return Path(out_dir)


def load_blocks(directory: str | os.PathLike, split: str = "train") -> np.ndarray:
    """A split's blocks as a read-only memmap [n_blocks, seq_len] (uint16 or int32)."""
    if split not in SPLITS:
        raise InputError(f"unknown corpus split '{split}' (expected one of {', '.join(SPLITS)})")
    path = Path(directory) / f"{split}.npy"
    if not path.is_file():
        raise InputError(f"{path}: not found (run the prepare_corpus stage first)")
    return np.load(path, mmap_mode="r")


def load_meta(directory: str | os.PathLike) -> dict:
    return json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
