"""The teacher-anchored lattice every generated partition draws from, the band measures and their defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping

from ..cost import Vocab, paper_gflops, paper_params
from ..space import Arch, SearchSpaceError, TeacherDims

DIMS = ("layers", "heads", "hidden", "mlp_ratio")
MEASURES = ("gflops_exact", "nonembed_params", "params", "gflops")

#: Default sub-space names per K (the stage checks them against ``partition.names`` in params.yaml).
DEFAULT_NAMES = {
    1: ("all",),
    2: ("base", "small"),
    3: ("base", "small", "tiny"),
    4: ("base", "medium", "small", "tiny"),
    5: ("large", "base", "medium", "small", "tiny"),
}

#: The paper's K=3 bands (fractions of the teacher, largest sub-space first) per measure.
#: ``params``: the paper's text; the others: what the paper's BERT-base grids actually span.

#: The paper's K=3 bands (fractions of the teacher, largest sub-space first) per measure.
#: ``params``: the paper's text; the others: what the paper's BERT-base grids actually span.
PAPER_BANDS = {
    "params": ((0.35, 0.75), (0.11, 0.26), (0.04, 0.10)),
    "nonembed_params": ((0.26, 0.70), (0.054, 0.20), (0.005, 0.044)),
    "gflops": ((0.26, 0.70), (0.057, 0.21), (0.006, 0.046)),
    # the network that runs (real attention width): bands around the default budgets of 50 %, 15 % and 4 %
    # of the teacher, wide enough for candidates of several depths on each budget
    "gflops_exact": ((0.35, 0.9), (0.09, 0.3), (0.02, 0.08)),
}

#: Default floors as fractions of the teacher (the paper's tiny grid: L 4 = 12/3, H 128 = 768/6, R 2 = 4/2).

#: Default floors as fractions of the teacher (the paper's tiny grid: L 4 = 12/3, H 128 = 768/6, R 2 = 4/2).
DEFAULT_FLOORS = {"layers": 1 / 3, "heads": 1 / 2, "hidden": 1 / 6, "mlp_ratio": 1 / 2}

#: Values per dimension of an auto grid (the paper's 4^4 = 256).


def canonical_ratio(x) -> str:
    """One spelling per MLP ratio (``4``, ``4.0`` and ``Fraction(4)`` -> ``"4"``; ``7/2``, ``3.5`` -> ``"3.5"``), so
    that equal grids give equal :class:`SubSpace` objects whatever the source (YAML, JSON, auto)."""
    f = Fraction(str(x))
    if f.denominator == 1:
        return str(f.numerator)
    dec = repr(float(f))
    return dec if Fraction(dec) == f else f"{f.numerator}/{f.denominator}"


def ratio_json(r: str):
    f = Fraction(r)
    return int(f) if f.denominator == 1 else float(f)


def _axis(top, step, floor, positive_min) -> list:
    """Teacher-anchored values ``top - j*step`` down to ``floor`` (ascending)."""
    vals, j = [], 0
    while True:
        v = top - j * step
        if v < floor or v < positive_min:
            break
        vals.append(v)
        j += 1
    return sorted(vals)


@dataclass(frozen=True)
class Lattice:
    """The values of each dimension a generated sub-space may use (ascending), anchored at the teacher: layers and
    heads by one, hidden by the teacher's head size in the ``stock`` convention (every hidden size brings its own
    head count) or H_t/24 otherwise, MLP ratio by halves; each down to its floor (a fraction of the teacher's).
    Ratios whose FFN size R x H is not a whole number for every hidden size are left out."""

    layers: list
    heads: list
    hidden: list
    mlp_ratio: list


def teacher_lattice(teacher: TeacherDims, convention: str, floors: Mapping[str, float] | None = None) -> Lattice:
    """The lattice of ``teacher`` (:class:`Lattice`) with ``floors`` over :data:`DEFAULT_FLOORS`; a dimension left
    with no value is a :class:`SearchSpaceError`."""
    floors = {**DEFAULT_FLOORS, **(floors or {})}
    h_step = teacher.head_size if convention == "stock" else max(1, teacher.hidden // 24)
    r_top = Fraction(teacher.ffn, teacher.hidden)
    hidden = _axis(teacher.hidden, h_step, floors["hidden"] * teacher.hidden, 1)
    ratios = _axis(r_top, Fraction(1, 2), Fraction(floors["mlp_ratio"]).limit_denominator(1000) * r_top,
                   Fraction(1, 10**6))
    lattice = Lattice(layers=_axis(teacher.layers, 1, floors["layers"] * teacher.layers, 1),
                      heads=_axis(teacher.heads, 1, floors["heads"] * teacher.heads, 1), hidden=hidden,
                      mlp_ratio=[r for r in ratios if all((r * h).denominator == 1 for h in hidden)])
    for key in ("layers", "heads", "hidden", "mlp_ratio"):
        if not getattr(lattice, key):
            raise SearchSpaceError(f"no {key} value between the floor {floors[key]} x teacher and the teacher")
    return lattice


def default_names(k: int) -> list[str]:
    if k < 1:
        raise SearchSpaceError(f"K must be >= 1, got {k}")
    return list(DEFAULT_NAMES.get(k, tuple(f"s{i}" for i in range(k))))


def default_bands(k: int, measure: str = "nonembed_params") -> list[tuple[float, float]]:
    """The paper's bands for K=3; for another K, K disjoint bands spread over the same overall range.

    K=1 gets one band covering the three (the one-shot ablation). Other K split the log range of the K=3
    bands into K equal parts separated by gaps of 20 % (the paper's gaps are 23-30 %).
    """
    if measure not in PAPER_BANDS:
        raise SearchSpaceError(f"unknown band measure {measure!r}; expected one of {MEASURES}")
    paper = PAPER_BANDS[measure]
    if k == 3:
        return [tuple(b) for b in paper]
    lo, hi = paper[-1][0], paper[0][1]
    if k == 1:
        return [(lo, hi)]
    gap = math.log(1.2)
    width = (math.log(hi / lo) - (k - 1) * gap) / k
    bands = []
    for i in range(k):  # largest first
        top = math.log(hi) - i * (width + gap)
        bands.append((round(math.exp(top - width), 6), round(math.exp(top), 6)))
    return bands


def measure_of(arch: Arch, measure: str, teacher: TeacherDims, vocab: Vocab = Vocab(), seq_len: int = 128) -> float:
    """The band measure of one architecture: ``gflops_exact`` for the network that runs (its real attention
    width), the others in the paper convention."""
    if measure == "gflops_exact":
        return teacher.gflops(arch, seq_len)
    if measure == "params":
        return paper_params(arch, teacher.heads, vocab)
    if measure == "nonembed_params":
        # less the embedding tables (and their LayerNorm), at the embeddings' own width (ELECTRA's may be narrower)
        return paper_params(arch, teacher.heads, vocab) - (vocab.embedding_size or arch.hidden) * (
            vocab.size + vocab.positions + vocab.token_types + 2)
    if measure == "gflops":
        return paper_gflops(arch, seq_len, teacher.heads)
    raise SearchSpaceError(f"unknown band measure {measure!r}; expected one of {MEASURES}")
