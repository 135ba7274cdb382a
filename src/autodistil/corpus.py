"""Unlabelled text -> fixed-length token blocks for relation distillation (train) and search (held-out).

Documents come from a local folder of UTF-8 text files (``*.txt``, sorted by path; documents separated by
blank lines) or a hub dataset (one row = one document; streamed, so only what the budget needs is read).
Each document goes wholly to train or to held-out, decided by a seeded hash of its text (deterministic,
independent of order and batch size). Within a split, documents' tokens are concatenated with one [SEP]
between documents and cut into blocks ``[CLS] + (seq_len - 2) tokens + [SEP]``; the incomplete tail is
dropped, so every block is full and unpadded.

On disk (``data/corpus/``): ``train.npy`` and ``heldout.npy`` ([n_blocks, seq_len], uint16 when the vocab
fits, else int32; open with :func:`load_blocks`, a memmap) and ``meta.json``.

At scale (billions of tokens): ``workers`` processes tokenise chunks of documents while this process reads,
splits and packs them in document order, so the output is byte for byte the same for any number of workers;
blocks are written into the ``.npy`` files as they fill (:func:`write_blocks`), so memory stays a small constant
whatever the output size.

:func:`prepare_corpus` is the prepare_corpus stage's work: params.yaml's source, budgets and later needs in,
the blocks and the stage's :class:`autodistil.record.Record` out.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import mmap
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import Params
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


def resolve_workers(value: int | str) -> int:
    """``prepare_corpus.workers``: a positive number of processes, or ``auto`` (the CPUs this process may use)."""
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"prepare_corpus.workers must be a positive integer or 'auto', got {value!r}")
    return value


@dataclass(frozen=True)
class CorpusOptions:
    """How documents become blocks. The first five fields are the prepare_corpus params that fix the blocks;
    ``batch_docs`` (documents per packing step) also fixes ``documents_scanned``; ``workers`` and ``progress``
    change nothing in the output."""

    seq_len: int = 128
    train_tokens: int = 3_000_000
    heldout_blocks: int = 256
    heldout_fraction: float = 0.02
    seed: int = 0
    batch_docs: int = 256
    workers: int | str = 1  # tokenising processes, or "auto"
    progress: bool = True
    source: str = "corpus"  # names the input in errors

    def __post_init__(self) -> None:
        if self.seq_len < 3:
            raise InputError(f"prepare_corpus.seq_len must be >= 3, got {self.seq_len}")
        if not 0 < self.heldout_fraction < 1:
            raise InputError(f"prepare_corpus.heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if self.budget("train") < 1 or self.heldout_blocks < 1:
            raise InputError(
                f"prepare_corpus budgets must give >= 1 block each (train_tokens {self.train_tokens} at seq_len"
                f" {self.seq_len}, heldout_blocks {self.heldout_blocks})"
            )
        object.__setattr__(self, "workers", resolve_workers(self.workers))  # "auto" -> a number

    def budget(self, split: str) -> int:
        """A split's budget in blocks."""
        return int(self.train_tokens) // self.seq_len if split == "train" else int(self.heldout_blocks)

    def describe(self, split: str) -> str:
        """The params that size a split, for errors."""
        if split == "train":
            return f"prepare_corpus.train_tokens {self.train_tokens} at seq_len {self.seq_len}"
        return f"prepare_corpus.heldout_fraction {self.heldout_fraction}, heldout_blocks {self.heldout_blocks}"


@dataclass(frozen=True)
class Need:
    """Blocks a later stage takes from a split, and the param that asks for them (named in the error)."""

    blocks: int
    param: str


class _BlockPacker:
    """Concatenates documents' token ids (one [SEP] between documents) into full blocks of seq_len, handed to
    ``sink`` at each :meth:`cut`; only the tokens of the unfinished block are kept."""

    def __init__(self, seq_len: int, cls_id: int, sep_id: int, max_blocks: int, dtype: np.dtype,
                 sink: Callable[[np.ndarray], Any]):
        self.body = seq_len - 2
        self.cls_id, self.max_blocks, self.dtype, self.sink = cls_id, max_blocks, dtype, sink
        self.sep = np.array([sep_id], dtype=dtype)
        self.parts: list[np.ndarray] = []
        self.pending = 0  # tokens in parts
        self.n_blocks = 0  # blocks handed to the sink
        self.documents = 0
        self.doc_tokens = 0

    @property
    def full(self) -> bool:
        return self.n_blocks + self.pending // self.body >= self.max_blocks

    def add(self, ids: np.ndarray) -> None:
        if self.full or not len(ids):
            return
        self.documents += 1
        self.doc_tokens += len(ids)
        if self.documents > 1:  # one [SEP] between consecutive documents, also across block boundaries
            self.parts.append(self.sep)
            self.pending += 1
        self.parts.append(ids)
        self.pending += len(ids)

    def cut(self) -> None:
        """Hand the full blocks of the pending tokens (up to the budget) to the sink; keep the rest (none once
        the budget is met)."""
        k = min(self.pending // self.body, self.max_blocks - self.n_blocks)
        if k == 0:
            return
        tokens = np.concatenate(self.parts)
        block = np.empty((k, self.body + 2), dtype=self.dtype)
        block[:, 0], block[:, -1] = self.cls_id, self.sep[0]
        block[:, 1:-1] = tokens[: k * self.body].reshape(k, self.body)
        self.sink(block)
        self.n_blocks += k
        rest = tokens[k * self.body:] if self.n_blocks < self.max_blocks else tokens[:0]
        self.parts, self.pending = [rest], len(rest)


class _NpyWriter:
    """A ``[rows, columns]`` ``.npy`` file written a batch of rows at a time: the header for 0 rows first, rewritten
    in place with the real count by :meth:`finish`. numpy pads the header so that the first dimension can grow to
    21 digits without changing its size, so the file is byte for byte what ``np.save`` writes."""

    def __init__(self, path: Path, columns: int, dtype: np.dtype):
        self.file = open(path, "wb")
        self.columns, self.dtype, self.rows = columns, dtype, 0
        self.header_size = self._write_header()

    def _write_header(self) -> int:
        from numpy.lib import format as npy

        self.file.seek(0)
        npy.write_array_header_1_0(self.file, {"descr": npy.dtype_to_descr(self.dtype), "fortran_order": False,
                                               "shape": (self.rows, self.columns)})
        return self.file.tell()

    def __call__(self, rows: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(rows, dtype=self.dtype).data)
        self.rows += len(rows)

    def finish(self) -> None:
        if self._write_header() != self.header_size:
            raise RuntimeError(f"{self.file.name}: the .npy header changed size; numpy must pad it for growth")
        self.file.close()

    def __enter__(self) -> "_NpyWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


# ----------------------------------------------------------------------------------------- tokenising
def _token_ids(tokenizer, texts: list[str], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The texts' token ids, concatenated, and each text's count: compact to send between processes. Only the
    ids are built (no attention masks or type ids)."""
    if not texts:
        return np.empty(0, dtype=dtype), np.empty(0, dtype=np.int64)
    ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                    verbose=False)["input_ids"]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))
    return flat, lengths


_worker_state: tuple[Any, np.dtype] | None = None  # (tokenizer, dtype) in a pool process


def _start_worker(tokenizer, dtype: np.dtype) -> None:
    global _worker_state
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which ends the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # pool.terminate() ends workers quietly (a stage's handler raises)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per process: `workers` is the parallelism
    _worker_state = (tokenizer, dtype)


def _worker_token_ids(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    tokenizer, dtype = _worker_state
    return _token_ids(tokenizer, texts, dtype)


def _tokenised(chunks: Iterator[tuple[Any, list[str]]], tokenizer, dtype: np.dtype, workers: int
               ) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
    """``(tag, ids, lengths)`` for each ``(tag, texts)`` of ``chunks``, in order. With ``workers > 1`` a pool of
    processes tokenises at most two chunks per process ahead of the consumer, so the corpus is never read far
    ahead into memory."""
    if workers == 1:
        for tag, texts in chunks:
            yield tag, *_token_ids(tokenizer, texts, dtype)
        return
    # fork: workers inherit the loaded tokenizer instead of importing torch and transformers again (seconds each).
    # An executor, not a multiprocessing.Pool: a worker that dies (OOM killer, SIGKILL) fails the stage with
    # BrokenProcessPool instead of leaving it waiting for that chunk forever.
    ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(tokenizer, dtype))
    try:
        ahead: deque = deque()
        for tag, texts in chunks:
            ahead.append((tag, pool.submit(_worker_token_ids, texts)))
            if len(ahead) >= 2 * workers:
                tag, result = ahead.popleft()
                yield tag, *result.result()
        while ahead:
            tag, result = ahead.popleft()
            yield tag, *result.result()
    finally:  # also on an error or an interruption: queued chunks are dropped, the workers end
        pool.shutdown(wait=True, cancel_futures=True)


def _documents_ids(documents: Iterator[str], tokenizer, dtype: np.dtype, opts: CorpusOptions,
                   split_of: Callable[[str], str], is_full: Callable[[str], bool]
                   ) -> Iterator[tuple[str | None, np.ndarray | None]]:
    """``(split, token ids)`` of every document, in order; ``(None, None)`` for a document whose split was full
    when it was read (not tokenised)."""

    def chunks() -> Iterator[tuple[list[str | None], list[str]]]:
        while chunk := list(itertools.islice(documents, opts.batch_docs)):
            splits = [None if is_full(s) else s for s in map(split_of, chunk)]
            yield splits, [text for text, s in zip(chunk, splits) if s is not None]

    for splits, ids, lengths in _tokenised(chunks(), tokenizer, dtype, opts.workers):
        ends = np.cumsum(lengths)
        k = 0
        for split in splits:
            if split is None:
                yield None, None
            else:
                yield split, ids[ends[k] - lengths[k]:ends[k]]
                k += 1


def _checked_documents(documents: Iterator[str], tokenizer, opts: CorpusOptions) -> Iterator[str]:
    """The documents, once the tokenizer and the first document are checked: bad input fails before any output."""
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise InputError("the teacher's tokenizer has no [CLS]/[SEP] tokens")
    documents = iter(documents)
    first = next(documents, None)
    if first is None:
        raise InputError(f"{opts.source}: empty corpus (no non-blank documents)")
    return itertools.chain([first], documents)


def _pack(documents: Iterator[str], tokenizer, opts: CorpusOptions,
          sinks: dict[str, Callable[[np.ndarray], Any]]) -> dict[str, Any]:
    """Tokenise documents into the splits' sinks until both budgets are met or documents run out; the stats."""
    from tqdm.auto import tqdm

    dtype = block_dtype(len(tokenizer))
    packers = {s: _BlockPacker(opts.seq_len, tokenizer.cls_token_id, tokenizer.sep_token_id, opts.budget(s),
                               dtype, sinks[s]) for s in SPLITS}

    def split_of(text: str) -> str:
        return "heldout" if heldout_by_hash(text, opts.seed, opts.heldout_fraction) else "train"

    stream = _documents_ids(documents, tokenizer, dtype, opts, split_of, lambda s: packers[s].full)
    bar = tqdm(total=sum(map(opts.budget, SPLITS)), unit="block", desc="prepare_corpus", disable=not opts.progress)
    t0, scanned, batch = time.perf_counter(), 0, []

    def flush() -> None:
        for split, ids in batch:
            packers[split].add(ids)
        batch.clear()
        for p in packers.values():
            p.cut()
        bar.update(sum(p.n_blocks for p in packers.values()) - bar.n)
        tokens = sum(p.doc_tokens for p in packers.values())
        bar.set_postfix_str(f"{tokens / max(time.perf_counter() - t0, 1e-9):,.0f} tok/s", refresh=False)

    with contextlib.closing(stream):  # stopping early ends the worker processes at once
        for split, ids in stream:
            # the single-process order of events, whatever the workers: a document is skipped when its split was
            # full at the last packing step, so blocks and documents_scanned do not depend on `workers`
            scanned += 1
            if split is not None and not packers[split].full:
                batch.append((split, ids))
                if len(batch) >= opts.batch_docs:
                    flush()
            if all(p.full for p in packers.values()):
                break
        flush()
    bar.close()
    for s in SPLITS:
        if packers[s].n_blocks == 0:
            raise InputError(
                f"{opts.source}: corpus too small: 0 {s} blocks of {opts.seq_len} tokens from {scanned} documents"
            )
    stats: dict[str, Any] = {
        "documents_scanned": scanned,
        "exhausted": not all(p.full for p in packers.values()),
        "seq_len": opts.seq_len,
        "dtype": dtype.name,
        "vocab_size": len(tokenizer),
    }
    for s, p in packers.items():
        stats[s] = {"documents": p.documents, "document_tokens": p.doc_tokens, "blocks": p.n_blocks,
                    "tokens": p.n_blocks * opts.seq_len}
    return stats


# ------------------------------------------------------------------------------------------- outputs
@dataclass
class CorpusResult:
    arrays: dict[str, np.ndarray]
    stats: dict[str, Any]


def build_blocks(documents: Iterator[str], tokenizer, **options) -> CorpusResult:
    """Tokenise documents into train/held-out blocks in memory (small corpora, tests); options as
    :class:`CorpusOptions`.

    ``train_tokens`` is the train budget in tokens (``train_tokens // seq_len`` blocks); ``heldout_blocks``
    the held-out budget in blocks. Documents of a full split are skipped before tokenisation.
    """
    opts = CorpusOptions(**options)
    documents = _checked_documents(documents, tokenizer, opts)
    blocks: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    stats = _pack(documents, tokenizer, opts, {s: blocks[s].append for s in SPLITS})
    return CorpusResult({s: np.concatenate(blocks[s]) for s in SPLITS}, stats)


def _check_budgets(opts: CorpusOptions, needs: dict[str, Need], where: str) -> None:
    for split, need in needs.items():
        if opts.budget(split) < need.blocks:
            key = "train_tokens" if split == "train" else "heldout_blocks"
            raise InputError(
                f"{where}: prepare_corpus.{key} {getattr(opts, key)} gives {opts.budget(split)} {split} blocks"
                f" (seq_len {opts.seq_len}) but {need.param} asks for {need.blocks}: raise prepare_corpus.{key}"
                f" or lower {need.param}"
            )


def _check_needs(stats: dict[str, Any], opts: CorpusOptions, needs: dict[str, Need], where: str) -> None:
    for split, need in needs.items():
        have = stats[split]["blocks"]
        if have < need.blocks:
            more = " or raise prepare_corpus.heldout_fraction" if split == "heldout" else ""
            raise InputError(
                f"{where}: {split} split has {have} blocks but {need.param} asks for {need.blocks}"
                f" ({opts.describe(split)}): use a larger corpus{more}, or lower {need.param}"
            )


def write_blocks(documents: Iterator[str], tokenizer, out_dir: str | os.PathLike, meta: dict | None = None,
                 needs: dict[str, Need] | None = None, **options) -> dict[str, Any]:
    """Tokenise documents into ``train.npy``, ``heldout.npy`` and ``meta.json`` in ``out_dir``, atomically; the stats.

    Blocks go to disk as they fill (memory stays a small constant, whatever the corpus). ``needs``: the blocks
    later stages take from each split; a corpus or budget that gives fewer fails here, and nothing is written.
    Options: :class:`CorpusOptions`.
    """
    opts, needs, where = CorpusOptions(**options), needs or {}, str(out_dir)
    documents = _checked_documents(documents, tokenizer, opts)
    _check_budgets(opts, needs, where)
    dtype = block_dtype(len(tokenizer))
    with atomic_path(out_dir, is_dir=True) as tmp, contextlib.ExitStack() as files:
        writers = {s: files.enter_context(_NpyWriter(tmp / f"{s}.npy", opts.seq_len, dtype)) for s in SPLITS}
        stats = _pack(documents, tokenizer, opts, writers)
        _check_needs(stats, opts, needs, where)
        for writer in writers.values():
            writer.finish()
        (tmp / META_FILE).write_text(json.dumps({**(meta or {}), **stats}, indent=2) + "\n", encoding="utf-8")
    return stats


def load_blocks(directory: str | os.PathLike, split: str = "train") -> np.ndarray:
    """A split's blocks as a read-only memmap [n_blocks, seq_len] (uint16 or int32), advised for random access:
    a training step reads a few hundred scattered 256-byte rows, and the kernel's default read-around (128 KiB per
    page fault) made that 0.6 s per step on a 33.6 M-block corpus instead of 2 ms (bench/step_host.py)."""
    if split not in SPLITS:
        raise InputError(f"unknown corpus split '{split}' (expected one of {', '.join(SPLITS)})")
    path = Path(directory) / f"{split}.npy"
    if not path.is_file():
        raise InputError(f"{path}: not found (run the prepare_corpus stage first)")
    blocks = np.load(path, mmap_mode="r")
    mapping = getattr(blocks, "_mmap", None)  # numpy's memmap keeps its mmap.mmap here
    if mapping is not None and hasattr(mmap, "MADV_RANDOM"):  # Linux and macOS; elsewhere, the default
        mapping.madvise(mmap.MADV_RANDOM)
    return blocks


def load_meta(directory: str | os.PathLike) -> dict:
    return json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- the stage
def later_needs(params: Params) -> dict[str, Need]:
    """The held-out blocks later stages take (``search.eval_blocks``, ``superlm.eval_blocks``,
    ``probes.eval_blocks``; the largest ask is named), so that a corpus too small for them fails here rather than
    after the SuperLMs trained. (The train split has no such floor: a batch larger than the corpus reads it more
    than once, and the importance calibration takes what there is.)"""
    asks = [Need(params.search.eval_blocks, "search.eval_blocks"),
            Need(params.superlm.eval_blocks, "superlm.eval_blocks"),
            Need(params.probes.eval_blocks, "probes.eval_blocks")]
    return {"heldout": max(asks, key=lambda n: n.blocks)}


def prepare_corpus(params: Params, out_dir: str | os.PathLike, metrics_path: str | os.PathLike):
    """The prepare_corpus stage's work: the documents of ``prepare_corpus.source`` (or of ``prepare_corpus.hub``
    when it names a dataset), tokenised by the teacher's tokenizer into ``out_dir`` (:func:`write_blocks`, sized
    for :func:`later_needs`), and their stats as a :class:`autodistil.record.Record`."""
    from .record import Record
    from .teacher import load_tokenizer

    p, hub, teacher = params.prepare_corpus, params.prepare_corpus.hub, params.teacher.source
    workers = resolve_workers(p.workers)
    if hub.dataset:
        source = hub.dataset + (f":{hub.config}" if hub.config else "")
        docs = iter_hub_documents(hub.dataset, hub.config, hub.split, hub.text_field)
    else:
        source = str(p.source)
        docs = iter_local_documents(source)
    tokenizer = load_tokenizer(teacher)

    t0 = time.perf_counter()
    st = write_blocks(docs, tokenizer, out_dir, meta={"source": source, "tokenizer": teacher},
                      needs=later_needs(params), seq_len=p.seq_len, train_tokens=p.train_tokens,
                      heldout_blocks=p.heldout_blocks, heldout_fraction=p.heldout_fraction, seed=p.seed,
                      workers=workers, source=source)
    seconds = round(time.perf_counter() - t0, 2)
    metrics = {
        "source": source,
        **st,
        "workers": workers,
        "seconds": seconds,
        "tokens_per_second": round((st["train"]["document_tokens"] + st["heldout"]["document_tokens"])
                                   / max(seconds, 1e-9)),
    }
    logged = {k: v for k, v in metrics.items() if k not in ("source", "dtype")}
    return Record(metrics, metrics_path, logged={"": logged},
                  summary=f"prepare_corpus: train {st['train']['blocks']} blocks ({st['train']['documents']} "
                          f"documents), held-out {st['heldout']['blocks']} blocks ({st['heldout']['documents']} "
                          f"documents), {st['documents_scanned']} documents scanned, {seconds} s")
