"""Corpus blocks as segment pairs: the two-segment inputs of BERT's pre-training (and of the authors' SuperLM
data), made from the single-segment blocks of the corpus at training time.

A block ``[CLS] t1 .. t(L-2) [SEP]`` becomes ``[CLS] t1 .. t(s-1) [SEP] ts .. t(L-3) [SEP]``: two consecutive spans
of the same text, the second with token type 1, the block's last content token dropped to make room for the
middle separator (the block's own last token). A RoBERTa teacher gets its own format, ``<s> A </s></s> B </s>``
with one token type (two content tokens dropped). The split ``s`` is drawn per block from a quarter to three
quarters of the length, seeded by (seed, step, block row): the same for any number of ranks or micro-batches.
Both the teacher and the students see the pair, so relations across segments and the token-type embedding of
segment B, which GLUE's pair tasks rely on, are distilled too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SEGMENTS = ("single", "pairs")


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise on uint64 (wrapping arithmetic): a well-spread hash of a counter."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def pair_splits(rows: Sequence[int], seed: int, step: int, seq_len: int, separators: int = 1) -> np.ndarray:
    """The position of the (first) middle separator of each block row (between ``seq_len // 4`` and
    ``3 * seq_len // 4``), a hash of (seed, step, row): vectorised, so a 2,048-row batch costs the host
    microseconds per step. ``separators``: how many separate the segments (RoBERTa: two)."""
    if seq_len < 4 + separators:
        raise ValueError(f"segment pairs need blocks of at least {4 + separators} tokens, got {seq_len}")
    lo, hi = max(2, seq_len // 4), min(seq_len - 2 - separators, 3 * seq_len // 4)
    key = _mix(np.array([seed, step], dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    draw = _mix(np.asarray(rows, dtype=np.uint64) ^ _mix(key[0] ^ _mix(key[1:]))[0])
    return (lo + draw % np.uint64(hi - lo + 1)).astype(np.int64)


def as_pairs(blocks: np.ndarray, splits: np.ndarray, separators: int = 1, segment_types: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, token type ids) of ``blocks`` cut into two segments at ``splits`` (one per block), in the
    teacher's family's pair format (:mod:`autodistil.family`): BERT's ``[CLS] A [SEP] B [SEP]`` with segment B of
    token type 1, or RoBERTa's ``<s> A </s></s> B </s>`` (``separators=2``, one token type)."""
    n, length = blocks.shape
    pos = np.arange(length)[None, :]
    s = np.asarray(splits, dtype=np.int64)[:, None]
    # gather index: the first span in place, then the block's separator (its last token) ``separators`` times,
    # the second span shifted by as many, the separator last
    index = np.where(pos < s, pos, pos - separators)
    index = np.where(((pos >= s) & (pos < s + separators)) | (pos == length - 1), length - 1, index)
    ids = np.take_along_axis(np.asarray(blocks), np.broadcast_to(index, (n, length)), axis=1)
    types = (pos >= s + separators) & segment_types  # segment B from after the separators; none in RoBERTa
    return ids, types.astype(np.int64)
