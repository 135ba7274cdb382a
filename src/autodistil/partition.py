"""Step 1 of AutoDistil: partition the student search space into K compact, non-overlapping sub-spaces.

Two ways to get the K grids (each an explicit list of integers per dimension, see :class:`SubSpace`):

- :func:`explicit_partition`: grids written by hand (``configs/paper.yaml`` carries the paper's base / small /
  tiny grids for BERT-base), validated: non-empty, within the teacher, pairwise disjoint.
- :func:`auto_partition`: grids derived from the teacher's shape, K and K target bands, following the
  heuristics visible in the paper's grids (METHOD.md):

  * every value lies on a coarse, teacher-anchored lattice: layers ``L_t - j``, heads ``A_t - j``, hidden
    ``H_t - j * H_t/24``, MLP ratio ``R_t - j/2``; a grid is an evenly spaced window of that lattice
    (stride 1 preferred, wider strides only when the band needs them, e.g. K=1);
  * each sub-space's cost range sits in its own band and the bands are disjoint and ordered (the range of
    sub-space i lies strictly below the range of sub-space i-1), which also makes the grids disjoint;
  * depth is kept before width: among the grids that fit the band about as well as the best one, the
    deepest wins; sub-spaces only go shallow when the width floors (below) cannot reach the band;
  * floors scaled to the teacher, read off the paper's tiny grid: layers >= L_t/3, heads >= A_t/2,
    hidden >= H_t/6, MLP ratio >= R_t/2.

Band measure. The paper's bands (about 35-75 %, 11-26 %, 4-10 % of the teacher) are on *total* parameters
of a 110 M BERT-base whose embeddings are 22 % of its weights. For the packaged 22.7 M MiniLM teacher the
embeddings are 52 % (11.9 M), so total-parameter bands cannot be transferred: the 4-10 % band would need
H < 64 for the embeddings alone. The default measure is therefore the *non-embedding* parameters in the
paper's convention (everything but the word/position/type tables), which tracks compute (FLOPs / 128 tokens)
and transfers across teachers. The paper's own grids occupy 26-70 %, 5.4-20 % and 0.5-4.4 % of BERT-base's
non-embedding parameters: those are the default bands (:data:`PAPER_BANDS`). ``measure="params"`` with the
paper's total-parameter bands and ``measure="gflops"`` are available too.

Costs are reported in the paper convention (:func:`autodistil.cost.paper_params`,
:func:`autodistil.cost.paper_gflops`): they depend on the grid only, not on the attention convention.
"""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .cost import Vocab, exact_gflops, paper_gflops, paper_params
from .space import CONVENTIONS, Arch, SearchSpaceError, SubSpace, TeacherDims, validate_disjoint

DIMS = ("layers", "heads", "hidden", "mlp_ratio")
MEASURES = ("gflops_exact", "nonembed_params", "params", "gflops")
PREFER = ("width", "depth")

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
PAPER_BANDS = {
    "params": ((0.35, 0.75), (0.11, 0.26), (0.04, 0.10)),
    "nonembed_params": ((0.26, 0.70), (0.054, 0.20), (0.005, 0.044)),
    "gflops": ((0.26, 0.70), (0.057, 0.21), (0.006, 0.046)),
    # the network that runs (real attention width): bands around the default budgets of 50 %, 15 % and 4 %
    # of the teacher, wide enough for candidates of several depths on each budget
    "gflops_exact": ((0.35, 0.9), (0.09, 0.3), (0.02, 0.08)),
}

#: Default floors as fractions of the teacher (the paper's tiny grid: L 4 = 12/3, H 128 = 768/6, R 2 = 4/2).
DEFAULT_FLOORS = {"layers": 1 / 3, "heads": 1 / 2, "hidden": 1 / 6, "mlp_ratio": 1 / 2}

#: Values per dimension of an auto grid (the paper's 4^4 = 256).
DEFAULT_VALUES = {"layers": 4, "heads": 4, "hidden": 4, "mlp_ratio": 4}


# ----------------------------------------------------------------------------------------------- helpers


def canonical_ratio(x) -> str:
    """One spelling per MLP ratio (``4``, ``4.0`` and ``Fraction(4)`` -> ``"4"``; ``7/2``, ``3.5`` -> ``"3.5"``), so
    that equal grids give equal :class:`SubSpace` objects whatever the source (YAML, JSON, auto)."""
    f = Fraction(str(x))
    if f.denominator == 1:
        return str(f.numerator)
    dec = repr(float(f))
    return dec if Fraction(dec) == f else f"{f.numerator}/{f.denominator}"


def _subspace(name: str, grid: Mapping, convention: str) -> SubSpace:
    grid = dict(grid)
    if isinstance(grid.get("mlp_ratio"), (list, tuple)):
        try:
            grid["mlp_ratio"] = [canonical_ratio(r) for r in grid["mlp_ratio"]]
        except (ValueError, ZeroDivisionError):
            raise SearchSpaceError(f"sub-space {name!r}: mlp_ratio {grid['mlp_ratio']!r} must be numbers") from None
    return SubSpace.from_dict(name, grid, convention)


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
        return exact_gflops(arch, seq_len)
    if measure == "params":
        return paper_params(arch, teacher.heads, vocab)
    if measure == "nonembed_params":
        return paper_params(arch, teacher.heads, vocab) - arch.hidden * (
            vocab.size + vocab.positions + vocab.token_types + 2)
    if measure == "gflops":
        return paper_gflops(arch, seq_len, teacher.heads)
    raise SearchSpaceError(f"unknown band measure {measure!r}; expected one of {MEASURES}")


def check_grid_bounds(sub: SubSpace, teacher: TeacherDims) -> None:
    """Every listed value within the teacher (checked per value, so stock-skipped pairs cannot hide one)."""
    r_max = Fraction(teacher.ffn, teacher.hidden)
    limits = {"layers": teacher.layers, "heads": teacher.heads, "hidden": teacher.hidden}
    for key, limit in limits.items():
        for v in getattr(sub, key):
            if v <= 0:
                raise SearchSpaceError(f"sub-space {sub.name!r}: {key} value {v} must be a positive integer")
            if v > limit:
                raise SearchSpaceError(f"sub-space {sub.name!r}: {key} value {v} exceeds the teacher's {limit}")
    for r in sub.mlp_ratio:
        if Fraction(r) <= 0:
            raise SearchSpaceError(f"sub-space {sub.name!r}: mlp_ratio value {r} must be positive")
        if Fraction(r) * max(sub.hidden) > teacher.ffn:
            raise SearchSpaceError(
                f"sub-space {sub.name!r}: mlp_ratio {r} x hidden {max(sub.hidden)} = FFN "
                f"{float(Fraction(r) * max(sub.hidden)):g} exceeds the teacher's {teacher.ffn} (ratio {float(r_max):g})")


def validate(subspaces: Sequence[SubSpace], teacher: TeacherDims) -> None:
    """Non-empty, within the teacher, unique names, pairwise disjoint; raises :class:`SearchSpaceError`."""
    if not subspaces:
        raise SearchSpaceError("no sub-spaces: K must be >= 1")
    names = [s.name for s in subspaces]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SearchSpaceError(f"sub-space names must be unique; repeated: {dup}")
    for sub in subspaces:
        check_grid_bounds(sub, teacher)
        sub.candidates(teacher)  # raises on an empty grid
    validate_disjoint(subspaces, teacher)


def skipped_pairs(sub: SubSpace, head_size: int) -> int:
    """Grid points that are not candidates in the stock convention (H != A x the teacher's head size): the
    head count follows from the hidden size, so a grid of n hidden sizes and their n head counts has n x n
    (A, H) pairs of which n are architectures."""
    if sub.convention != "stock":
        return 0
    bad = sum(1 for A in sub.heads for H in sub.hidden if H != A * head_size)
    return bad * len(sub.layers) * len(sub.mlp_ratio)


def unused_values(sub: SubSpace, teacher: TeacherDims) -> dict[str, list]:
    """Listed values that yield no candidate at all (a stock head count without its hidden size, a value whose
    every combination falls outside the cost band): a grid should have none."""
    cands = sub.candidates(teacher)
    out = {key: [v for v in getattr(sub, key) if v not in {getattr(a, key) for a in cands}]
           for key in ("layers", "heads", "hidden")}
    used_ratios = {Fraction(a.ffn, a.hidden) for a in cands}
    out["mlp_ratio"] = [_ratio_json(r) for r in sub.mlp_ratio if Fraction(r) not in used_ratios]
    return {k: v for k, v in out.items() if v}


# ---------------------------------------------------------------------------------------------- explicit


def explicit_partition(grids: Mapping[str, Mapping], convention: str = "stock", teacher: TeacherDims | None = None
                       ) -> list[SubSpace]:
    """Sub-spaces from hand-written grids ``{name: {layers: [...], heads: [...], hidden: [...], mlp_ratio: [...]}}``.

    Order is kept (largest first by convention). With ``teacher`` the grids are validated at once.
    """
    if convention not in CONVENTIONS:
        raise SearchSpaceError(f"unknown attention convention {convention!r}; expected one of {CONVENTIONS}")
    if not isinstance(grids, Mapping) or not grids:
        raise SearchSpaceError("explicit grids must be a non-empty mapping {name: {layers, heads, hidden, mlp_ratio}}")
    subs = []
    for name, grid in grids.items():
        if not isinstance(grid, Mapping):
            raise SearchSpaceError(f"sub-space {name!r}: expected a mapping with {', '.join(DIMS)}, got {grid!r}")
        extra = sorted(set(grid) - set(DIMS) - {"convention", "band", "band_seq_len"})
        if extra:
            raise SearchSpaceError(f"sub-space {name!r}: unknown keys {extra}; expected {', '.join(DIMS)}")
        for key in ("layers", "heads", "hidden"):
            for v in grid.get(key) or []:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise SearchSpaceError(f"sub-space {name!r}: {key} value {v!r} must be an integer")
        subs.append(_subspace(str(name), grid, convention))
    if teacher is not None:
        validate(subs, teacher)
    return subs


# -------------------------------------------------------------------------------------------------- auto


def _lattice(top, step, floor, positive_min) -> list:
    """Teacher-anchored values ``top - j*step`` down to ``floor`` (ascending)."""
    vals, j = [], 0
    while True:
        v = top - j * step
        if v < floor or v < positive_min:
            break
        vals.append(v)
        j += 1
    return sorted(vals)


def _windows(n_axis: int, n: int) -> list[tuple[int, ...]]:
    """Evenly spaced index windows of ``n`` values (fewer if the axis is shorter), any stride."""
    if n_axis <= n:
        return [tuple(range(n_axis))]
    out = []
    for stride in range(1, (n_axis - 1) // (n - 1) + 1 if n > 1 else 2):
        for start in range(n_axis - (n - 1) * stride):
            out.append(tuple(start + i * stride for i in range(n)))
    return out


def _stride(window: tuple[int, ...]) -> int:
    """0 for a contiguous window, else its stride minus 1."""
    return window[1] - window[0] - 1 if len(window) > 1 else 0


def _check_setup(k, names, convention: str, bands, default, low_min: float | None
                 ) -> tuple[int, list[str], list[tuple[float, float]]]:
    """K, the sub-space names and K disjoint bands ordered largest first (``default(K)`` when ``bands`` is
    None), checked; ``low_min``: a band's low end must exceed it (``None``: may be 0, for the half-open
    (low, high] bands of the band partition)."""
    if int(k) != k or k < 1:
        raise SearchSpaceError(f"K must be a positive integer, got {k!r}")
    k = int(k)
    if convention not in CONVENTIONS:
        raise SearchSpaceError(f"unknown attention convention {convention!r}; expected one of {CONVENTIONS}")
    names = list(names) if names is not None else default_names(k)
    if len(names) != k:
        raise SearchSpaceError(f"{len(names)} names {names} for K={k} sub-spaces")
    bands = [tuple(map(float, b)) for b in (default(k) if bands is None else bands)]
    if len(bands) != k:
        raise SearchSpaceError(f"{len(bands)} bands for K={k} sub-spaces; give one [low, high] per sub-space")
    for i, (lo, hi) in enumerate(bands):
        if not (lo > low_min if low_min is not None else lo >= 0) or not lo < hi:
            rule = f"{low_min:g} < low < high" if low_min is not None else "0 <= low < high"
            raise SearchSpaceError(f"band {i} {[lo, hi]} must satisfy {rule}")
        if i and hi > bands[i - 1][0]:
            raise SearchSpaceError(f"bands must be disjoint and ordered largest first: {list(bands[i - 1])} then {[lo, hi]}")
    return k, names, bands


def auto_partition(
    teacher: TeacherDims,
    k: int,
    names: Sequence[str] | None = None,
    bands: Sequence[Sequence[float]] | None = None,
    measure: str = "nonembed_params",
    values: Mapping[str, int] | None = None,
    convention: str = "stock",
    floors: Mapping[str, float] | None = None,
    min_candidates: int = 8,
    tolerance: float = 0.15,
    vocab: Vocab = Vocab(),
    seq_len: int = 128,
    prefer: str = "depth",
) -> list[SubSpace]:
    """K disjoint sub-spaces derived from the teacher's shape (largest first); see the module docstring.

    ``bands``: K ``[low, high]`` fractions of the teacher's ``measure``, largest first (default
    :func:`default_bands`). ``values``: values per dimension (default 4 each). ``min_candidates``: a grid
    must keep at least this many valid architectures (or all of its grid points if fewer). ``tolerance``:
    grids whose band misfit (``|ln(lo/band_lo)| + |ln(hi/band_hi)|``) is within this of the best are
    considered equally good, and among them ``prefer`` decides: ``depth`` (default) takes the deepest (the
    paper's grids keep depth and shrink width); ``width`` the grid reaching the widest hidden size, so that
    the band is met by fewer layers at (near) full width. In the ``stock`` convention the hidden lattice
    steps by the teacher's head size and every hidden size brings its own head count (H / head size), so no
    listed value is without a candidate.
    """
    k, names, bands = _check_setup(k, names, convention, bands, lambda k: default_bands(k, measure), low_min=0.0)
    if prefer not in PREFER:
        raise SearchSpaceError(f"unknown preference {prefer!r}; expected one of {PREFER}")
    values = {**DEFAULT_VALUES, **(values or {})}
    floors = {**DEFAULT_FLOORS, **(floors or {})}
    for key in DIMS:
        if int(values[key]) != values[key] or values[key] < 1:
            raise SearchSpaceError(f"values.{key} must be a positive integer, got {values[key]!r}")

    # The lattice: coarse even steps anchored at the teacher.
    stock = convention == "stock"
    h_step = teacher.head_size if stock else max(1, teacher.hidden // 24)
    r_top = Fraction(teacher.ffn, teacher.hidden)
    r_step = Fraction(1, 2) if (h_step % 2 == 0) else Fraction(1)
    hidden_axis = _lattice(teacher.hidden, h_step, floors["hidden"] * teacher.hidden, 1)
    axes = {
        "layers": _lattice(teacher.layers, 1, floors["layers"] * teacher.layers, 1),
        # stock: one head count per hidden size (whole teacher heads, width = H)
        "heads": ([h // teacher.head_size for h in hidden_axis] if stock
                  else _lattice(teacher.heads, 1, floors["heads"] * teacher.heads, 1)),
        "hidden": hidden_axis,
        "mlp_ratio": _lattice(r_top, r_step, Fraction(floors["mlp_ratio"]).limit_denominator(1000) * r_top,
                              Fraction(1, 10**6)),
    }
    # ratios whose R*H is not an integer for every lattice H are dropped
    axes["mlp_ratio"] = [r for r in axes["mlp_ratio"] if all((r * h).denominator == 1 for h in axes["hidden"])]
    for key, ax in axes.items():
        if not ax:
            raise SearchSpaceError(f"no {key} value between the floor {floors[key]} x teacher and the teacher")

    teacher_measure = measure_of(teacher.as_arch(), measure, teacher, vocab, seq_len)
    cache: dict[tuple, float] = {}

    def cost(iL, iA, iH, iR) -> float:
        key = (iL, iA, iH, iR)
        if key not in cache:
            H, R = axes["hidden"][iH], axes["mlp_ratio"][iR]
            arch = Arch(axes["layers"][iL], axes["heads"][iA], H, int(R * H), teacher.head_size)
            cache[key] = measure_of(arch, measure, teacher, vocab, seq_len) / teacher_measure
        return cache[key]

    wins = {key: _windows(len(axes[key]), int(values[key])) for key in DIMS}
    # (heads window, hidden window) pairs: stock ties the heads to the hidden sizes (same lattice index)
    width_windows = ([(ih, wH, ih, wH) for ih, wH in enumerate(wins["hidden"])] if stock else
                     [(ia, wA, ih, wH) for ia, wA in enumerate(wins["heads"]) for ih, wH in enumerate(wins["hidden"])])
    # cost of every lattice point, as a fraction of the teacher's
    table = np.array([[[[cost(iL, iA, iH, iR) for iR in range(len(axes["mlp_ratio"]))]
                        for iH in range(len(axes["hidden"]))]
                       for iA in range(len(axes["heads"]))]
                      for iL in range(len(axes["layers"]))])
    # per layer window and per ratio window: first / last index, size, stride, top value
    L_first = np.array([w[0] for w in wins["layers"]]); L_last = np.array([w[-1] for w in wins["layers"]])
    R_first = np.array([w[0] for w in wins["mlp_ratio"]]); R_last = np.array([w[-1] for w in wins["mlp_ratio"]])
    L_len = np.array([len(w) for w in wins["layers"]]); R_len = np.array([len(w) for w in wins["mlp_ratio"]])
    L_stride = np.array([_stride(w) for w in wins["layers"]]); R_stride = np.array([_stride(w) for w in wins["mlp_ratio"]])
    L_top = np.array([axes["layers"][w[-1]] for w in wins["layers"]])
    R_top = np.array([float(axes["mlp_ratio"][w[-1]]) for w in wins["mlp_ratio"]])
    sizes = (L_len[:, None] * R_len[None, :])  # grid points per (layer window, ratio window)

    subspaces: list[SubSpace] = []
    ceiling = math.inf  # the previous sub-space's lowest cost: this one must stay strictly below
    for name, (b_lo, b_hi) in zip(names, bands):
        blocks = []
        for ia, wA, ih, wH in width_windows:
            # the (A, H) pairs that give valid architectures; the cost is monotone in L and R, so the
            # range of the grid is the min / max over these pairs at its lowest / highest L and R
            valid_pairs = [(a, h) for a in wA for h in wH if not stock or a == h]
            if not valid_pairs:
                continue
            a_idx = np.array([a for a, _ in valid_pairs]); h_idx = np.array([h for _, h in valid_pairs])
            pair_costs = table[:, a_idx, h_idx, :]  # [L, pairs, R]
            lo = pair_costs.min(axis=1)[L_first[:, None], R_first[None, :]]
            hi = pair_costs.max(axis=1)[L_last[:, None], R_last[None, :]]
            total = (1 if stock else len(wA)) * len(wH) * sizes  # stock: the heads are tied, not a dimension
            valid = len(valid_pairs) * sizes
            ok = (valid >= np.minimum(min_candidates, total)) & (hi < ceiling)
            if not ok.any():
                continue
            li, ri = np.nonzero(ok)
            blocks.append(dict(
                li=li, ri=ri, ia=np.full(len(li), ia), ih=np.full(len(li), ih),
                misfit=np.abs(np.log(lo[li, ri] / b_lo)) + np.abs(np.log(hi[li, ri] / b_hi)),
                skipped=(total - valid)[li, ri],
                stride=_stride(wA) + _stride(wH) + R_stride[ri],
                top_heads=np.full(len(li), axes["heads"][wA[-1]]),
                top_hidden=np.full(len(li), axes["hidden"][wH[-1]]),
            ))
        if not blocks:
            raise SearchSpaceError(
                f"auto partition: no grid for sub-space {name!r} (band {[b_lo, b_hi]} of the teacher's {measure}) "
                f"below the previous sub-space and above the floors; lower K, use fewer values per dimension, "
                f"widen the bands or lower the floors")
        c = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
        keep = c["misfit"] <= c["misfit"].min() + tolerance
        c = {key: v[keep] for key, v in c.items()}
        # contiguous layers, then width kept before depth (widest hidden, then deepest) or depth before width,
        # then compact width grids, then fewest stock-skipped pairs, then the best fit, then the widest heads /
        # MLP ratio (np.lexsort: last key first)
        first = (-L_top[c["li"]], -c["top_hidden"]) if prefer == "width" else (-L_top[c["li"]],)
        order = np.lexsort((
            -R_top[c["ri"]], -c["top_heads"], np.round(c["misfit"], 6), c["skipped"], c["stride"],
            *first, L_stride[c["li"]],
        ))
        j = order[0]
        idx = (wins["layers"][c["li"][j]], wins["hidden" if stock else "heads"][c["ia"][j]],
               wins["hidden"][c["ih"][j]], wins["mlp_ratio"][c["ri"][j]])
        grid = {key: [axes[key][i] for i in w] for key, w in zip(DIMS, idx)}
        sub = _subspace(name, grid, convention)
        subspaces.append(sub)
        ceiling = min(measure_of(a, measure, teacher, vocab, seq_len) / teacher_measure for a in sub.candidates(teacher))
    validate(subspaces, teacher)
    return subspaces


# -------------------------------------------------------------------------------------------------- band

#: Default cost bands of the band partition, K=3, largest first: (low, high] fractions of the teacher's exact
#: GFLOPs. Their tops are the default budgets (50 %, 15 %, 4 %), so every candidate is one a budget can pick.
BAND_BANDS = ((0.30, 0.50), (0.075, 0.15), (0.02, 0.04))


def band_partition(
    teacher: TeacherDims,
    k: int,
    names: Sequence[str] | None = None,
    bands: Sequence[Sequence[float]] | None = None,
    convention: str = "stock",
    floors: Mapping[str, float] | None = None,
    seq_len: int = 128,
) -> list[SubSpace]:
    """K sub-spaces, each every point of the teacher-anchored lattice whose exact GFLOPs fall in its band.

    The lattice is the auto partition's (layers by one, hidden by the teacher's head size in the stock
    convention or H_t/24 otherwise, MLP ratio by halves, down to the floors). Cutting it by cost rather
    than by dimension puts shallow-and-wide and deep-and-narrow students of about the same cost into one
    sub-space, so the search compares them (a product grid that spans depth and width at once spans a
    factor of ten in cost). The sub-spaces are disjoint because the (low, high] bands are; each lists only
    the values some candidate uses.
    """
    k, names, bands = _check_setup(k, names, convention, bands,
                                   lambda k: BAND_BANDS if k == 3 else default_bands(k, "gflops_exact"), low_min=None)
    floors = {**DEFAULT_FLOORS, **(floors or {})}
    stock = convention == "stock"
    h_step = teacher.head_size if stock else max(1, teacher.hidden // 24)
    r_top = Fraction(teacher.ffn, teacher.hidden)
    hidden = _lattice(teacher.hidden, h_step, floors["hidden"] * teacher.hidden, 1)
    layers = _lattice(teacher.layers, 1, floors["layers"] * teacher.layers, 1)
    heads = _lattice(teacher.heads, 1, floors["heads"] * teacher.heads, 1)
    ratios = [r for r in _lattice(r_top, Fraction(1, 2), Fraction(floors["mlp_ratio"]).limit_denominator(1000) * r_top,
                                  Fraction(1, 10**6)) if all((r * h).denominator == 1 for h in hidden)]
    full = exact_gflops(teacher.as_arch(), seq_len)
    subspaces = []
    for name, (lo, hi) in zip(names, bands):
        points = []
        for L, H, R in itertools.product(layers, hidden, ratios):
            for A in ([H // teacher.head_size] if stock else heads):
                arch = Arch(L, A, H, int(R * H), teacher.head_size)
                if lo < exact_gflops(arch, seq_len) / full <= hi:
                    points.append((arch, R))
        if not points:
            raise SearchSpaceError(f"band partition: no candidate of the lattice in band {[lo, hi]} for sub-space "
                                   f"{name!r} (the floors may be too high: lower partition.band.floors)")
        grid = {"layers": sorted({a.layers for a, _ in points}), "heads": sorted({a.heads for a, _ in points}),
                "hidden": sorted({a.hidden for a, _ in points}), "mlp_ratio": sorted({r for _, r in points}),
                "band": [lo, hi], "band_seq_len": seq_len}
        subspaces.append(_subspace(name, grid, convention))
    validate(subspaces, teacher)
    return subspaces


# --------------------------------------------------------------------------------------------- describe


def _ratio_json(r: str):
    f = Fraction(r)
    return int(f) if f.denominator == 1 else float(f)


def describe(subspaces: Sequence[SubSpace], teacher: TeacherDims, seq_len: int = 128, vocab: Vocab = Vocab()) -> dict:
    """Per sub-space: the grid, the FFN sizes, candidate and skipped counts, largest/smallest, cost bands.

    Costs in the paper convention and, for GFLOPs, the exact one (the network that runs); ``*_frac`` are
    fractions of the teacher in the same convention.
    """
    t_arch = teacher.as_arch()
    t_params = paper_params(t_arch, teacher.heads, vocab)
    t_gflops = paper_gflops(t_arch, seq_len, teacher.heads)
    t_nonemb = measure_of(t_arch, "nonembed_params", teacher, vocab, seq_len)
    t_exact = exact_gflops(t_arch, seq_len)
    out = {}
    for sub in subspaces:
        cands = sub.candidates(teacher)
        params = [paper_params(a, teacher.heads, vocab) for a in cands]
        gflops = [paper_gflops(a, seq_len, teacher.heads) for a in cands]
        nonemb = [measure_of(a, "nonembed_params", teacher, vocab, seq_len) for a in cands]
        exact = [exact_gflops(a, seq_len) for a in cands]
        out[sub.name] = {
            "layers": list(sub.layers),
            "heads": list(sub.heads),
            "hidden": list(sub.hidden),
            "mlp_ratio": [_ratio_json(r) for r in sub.mlp_ratio],
            "ffn": sorted({a.ffn for a in cands}),
            "candidates": len(cands),
            "skipped": skipped_pairs(sub, teacher.head_size),
            "unused_values": unused_values(sub, teacher),
            "largest": sub.largest(teacher).to_dict(),
            "smallest": sub.smallest(teacher).to_dict(),
            "params_paper": [min(params), max(params)],
            "gflops_paper": [min(gflops), max(gflops)],
            "params_frac": [min(params) / t_params, max(params) / t_params],
            "nonembed_params_frac": [min(nonemb) / t_nonemb, max(nonemb) / t_nonemb],
            "gflops_frac": [min(gflops) / t_gflops, max(gflops) / t_gflops],
            "gflops_exact": [min(exact), max(exact)],
            "gflops_exact_frac": [min(exact) / t_exact, max(exact) / t_exact],
            **({"band": list(sub.band), "band_seq_len": sub.band_seq_len} if sub.band is not None else {}),
        }
    return out


def teacher_summary(teacher: TeacherDims, source: str, seq_len: int = 128, vocab: Vocab = Vocab()) -> dict:
    arch = teacher.as_arch()
    return {
        "source": source,
        "layers": teacher.layers,
        "heads": teacher.heads,
        "hidden": teacher.hidden,
        "ffn": teacher.ffn,
        "head_size": teacher.head_size,
        "vocab_size": vocab.size,
        "max_position_embeddings": vocab.positions,
        "type_vocab_size": vocab.token_types,
        "params_paper": paper_params(arch, teacher.heads, vocab),
        "gflops_paper": paper_gflops(arch, seq_len, teacher.heads),
        "gflops_exact": exact_gflops(arch, seq_len),
        "seq_len": seq_len,
    }


def subspaces_document(subspaces: Sequence[SubSpace], teacher: TeacherDims, source: str, convention: str,
                       seq_len: int = 128, vocab: Vocab = Vocab(), mode: str = "explicit", settings: Mapping | None = None
                       ) -> dict:
    """The content of ``partition/subspaces.json``."""
    return {
        "teacher": teacher_summary(teacher, source, seq_len, vocab),
        "convention": convention,
        "mode": mode,
        "settings": dict(settings or {}),
        "subspaces": describe(subspaces, teacher, seq_len, vocab),
    }


def load_subspaces(path: str | Path) -> dict[str, SubSpace]:
    """``{name: SubSpace}`` from ``partition/subspaces.json``, in the file's order (largest first)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SearchSpaceError(f"{path}: not found (run the partition stage first)") from None
    except json.JSONDecodeError as e:
        raise SearchSpaceError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("subspaces"), dict):
        raise SearchSpaceError(f"{path}: expected a mapping with a 'subspaces' mapping")
    convention = doc.get("convention", "stock")
    return {name: _subspace(name, grid, convention) for name, grid in doc["subspaces"].items()}


def load_subspace(path: str | Path, name: str) -> SubSpace:
    """Sub-space ``name`` of ``partition/subspaces.json``; a missing file or name is an :class:`InputError`."""
    from .io import InputError

    try:
        subspaces = load_subspaces(path)
    except SearchSpaceError as e:
        raise InputError(str(e)) from None
    if name not in subspaces:
        raise InputError(f"{path}: no sub-space {name!r} (have {', '.join(subspaces)})")
    return subspaces[name]


def load_teacher_shape(path: str | Path) -> tuple[TeacherDims, Vocab]:
    """The teacher's dims and vocabulary recorded in ``partition/subspaces.json``."""
    t = json.loads(Path(path).read_text(encoding="utf-8"))["teacher"]
    return (TeacherDims(int(t["layers"]), int(t["heads"]), int(t["hidden"]), int(t["ffn"])),
            Vocab(t["vocab_size"], t["max_position_embeddings"], t["type_vocab_size"]))


# ------------------------------------------------------------------------------------- from params.yaml
def teacher_shape(source: str) -> tuple[TeacherDims, Vocab]:
    """The teacher's dims and vocabulary from its config alone (no weights are loaded; the family checked by
    :func:`autodistil.teacher.teacher_config`)."""
    from types import SimpleNamespace

    from .io import InputError
    from .teacher import teacher_config

    raw = teacher_config(source)
    keys = ("num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size",
            "vocab_size", "max_position_embeddings", "type_vocab_size")
    missing = [k for k in keys if k not in raw]
    if missing:
        raise InputError(f"teacher.source {source!r}: its config lacks {', '.join(missing)} (not a BERT-like config)")
    config = SimpleNamespace(**{k: raw[k] for k in keys})
    return TeacherDims.from_config(config), Vocab.from_config(config)


def _bands(bands, where: str):
    """``null`` or a list of ``[low, high]`` fractions (read with :func:`autodistil.io.number`: DVC writes small
    floats back as 5e-05, which YAML 1.1 reads as a string)."""
    from .io import InputError, number

    if bands is None:
        return None
    try:
        if not isinstance(bands, list) or not all(isinstance(b, list) and len(b) == 2 for b in bands):
            raise ValueError
        return [[number(x) for x in b] for b in bands]
    except (TypeError, ValueError):
        raise InputError(f"{where} must be null or a list of [low, high] fractions, got {bands!r}") from None


def _auto_number(auto: Mapping, key: str, default, kind: type, src: str):
    from .io import InputError, number

    try:
        return number(auto.get(key, default), kind)
    except (TypeError, ValueError):
        raise InputError(f"{src}: partition.auto.{key} must be {'an integer' if kind is int else 'a number'}, "
                         f"got {auto.get(key)!r}") from None


def partition_from_params(params: Mapping, source: str, src: str = "params.yaml") -> tuple[list[SubSpace], dict]:
    """The sub-spaces that params' ``partition`` section asks for, and the partition/subspaces.json document that
    describes them, for the teacher at ``source`` (its config only). The section's values are checked before the
    teacher's config is read (an :class:`InputError` names the key), and so is that the sub-spaces produced are
    ``partition.names``, which DVC iterates over."""
    from .io import InputError, param

    def get(key, default=...):
        return param(params, f"partition.{key}", source=src) if default is ... else \
            param(params, f"partition.{key}", default, source=src)

    p = param(params, "partition", source=src)
    if not isinstance(p, dict):
        raise InputError(f"{src}: 'partition' must be a mapping")
    mode = get("mode")
    names = get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise InputError(f"{src}: partition.names must be a non-empty list of sub-space names, got {names!r}")
    convention = get("convention", "stock")
    seq_len = get("seq_len", 128)
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise InputError(f"{src}: partition.seq_len must be a positive integer, got {seq_len!r}")
    k = get("k", None)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InputError(f"{src}: partition.k must be a positive integer, got {k!r}")
    teacher, vocab = teacher_shape(source)
    settings: dict = {"k": k}
    try:
        if mode == "explicit":
            grids = get("grids")
            if not isinstance(grids, dict) or not grids:
                raise InputError(f"{src}: partition.grids must map each sub-space name to its grid "
                                 f"({', '.join(DIMS)}), got {grids!r}")
            if k is not None and k != len(grids):
                raise InputError(f"{src}: partition.k={k} but partition.grids has {len(grids)} sub-spaces "
                                 f"{list(grids)}")
            subs = explicit_partition(grids, convention, teacher)
        elif mode == "auto":
            if k is None:
                raise InputError(f"{src}: missing key 'partition.k' (the number of sub-spaces, auto mode)")
            auto = get("auto", {}) or {}
            if not isinstance(auto, dict):
                raise InputError(f"{src}: partition.auto must be a mapping, got {auto!r}")
            unknown = sorted(set(auto) - {"measure", "bands", "values", "floors", "min_candidates", "tolerance",
                                          "prefer"})
            if unknown:
                raise InputError(f"{src}: unknown keys under partition.auto: {unknown}")
            for key in ("values", "floors"):
                if auto.get(key) is not None and not isinstance(auto[key], dict):
                    raise InputError(f"{src}: partition.auto.{key} must map {', '.join(DIMS)} to numbers")
                bad = sorted(set(auto.get(key) or {}) - set(DIMS))
                if bad:
                    raise InputError(f"{src}: partition.auto.{key} has unknown dimensions {bad}; expected {DIMS}")
            bands = _bands(auto.get("bands"), f"{src}: partition.auto.bands")
            measure = auto.get("measure", "nonembed_params")
            prefer = auto.get("prefer", "depth")
            if prefer not in PREFER:
                raise InputError(f"{src}: partition.auto.prefer must be one of {list(PREFER)}, got {prefer!r}")
            if measure not in MEASURES:
                raise InputError(f"{src}: partition.auto.measure must be one of {list(MEASURES)}, got {measure!r}")
            settings.update({
                "measure": measure,
                "bands": bands if bands is not None else [list(b) for b in default_bands(k, measure)],
                "values": {**DEFAULT_VALUES, **(auto.get("values") or {})},
                "floors": {**DEFAULT_FLOORS, **(auto.get("floors") or {})},
                "min_candidates": auto.get("min_candidates", 8),
                "prefer": prefer,
            })
            subs = auto_partition(
                teacher, k, names=default_names(k) if len(names) != k else names,
                bands=bands, measure=measure, values=auto.get("values"), convention=convention,
                floors=auto.get("floors"), min_candidates=_auto_number(auto, "min_candidates", 8, int, src),
                tolerance=_auto_number(auto, "tolerance", 0.15, float, src), vocab=vocab, seq_len=seq_len,
                prefer=prefer)
        elif mode == "band":
            if k is None:
                raise InputError(f"{src}: missing key 'partition.k' (the number of sub-spaces, band mode)")
            band = get("band", {}) or {}
            if not isinstance(band, dict) or sorted(set(band) - {"bands", "floors"}):
                raise InputError(f"{src}: partition.band must be a mapping with bands and floors, got {band!r}")
            bands = _bands(band.get("bands"), f"{src}: partition.band.bands")
            floors = band.get("floors") or {}
            if not isinstance(floors, dict) or sorted(set(floors) - set(DIMS)):
                raise InputError(f"{src}: partition.band.floors must map some of {', '.join(DIMS)} to fractions")
            settings.update({"bands": bands if bands is not None else [list(b) for b in BAND_BANDS],
                             "floors": {**DEFAULT_FLOORS, **floors}})
            subs = band_partition(teacher, k, names=names if len(names) == k else None, bands=bands,
                                       convention=convention, floors=floors, seq_len=seq_len)
        else:
            raise InputError(f"{src}: partition.mode must be 'band', 'auto' or 'explicit', got {mode!r}")
        produced = [s.name for s in subs]
        if produced != names:
            raise InputError(f"{src}: partition.names {names} does not match the sub-spaces produced {produced}; "
                             f"set partition.names: {produced} (DVC iterates over that list)")
        doc = subspaces_document(subs, teacher, source, convention, seq_len, vocab, mode, settings)
    except SearchSpaceError as e:
        raise InputError(f"{src}: partition ({mode}): {e}") from None
    return subs, doc


def partition_metrics(doc: Mapping, seconds: float) -> dict:
    """metrics/partition.json: per sub-space, its candidates and cost ranges (also as fractions of the teacher)."""
    ranges = ("params_paper", "gflops_paper", "params_frac", "nonembed_params_frac", "gflops_exact", "gflops_exact_frac")
    return {
        "mode": doc["mode"],
        "convention": doc["convention"],
        "k": len(doc["subspaces"]),
        "teacher_params_paper": doc["teacher"]["params_paper"],
        "teacher_gflops_paper": doc["teacher"]["gflops_paper"],
        "subspaces": {
            name: {"candidates": d["candidates"], "skipped": d["skipped"],
                   **{f"{r}_{end}": d[r][i] for r in ranges for i, end in enumerate(("min", "max"))}}
            for name, d in doc["subspaces"].items()
        },
        "candidates_total": sum(d["candidates"] for d in doc["subspaces"].values()),
        "seconds": seconds,
    }
