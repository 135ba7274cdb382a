"""The auto partition: product grids derived from the teacher's shape, K and K target bands, following the
heuristics visible in the paper's grids (see the package docstring)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..cost import Vocab
from ..space import Arch, SearchSpaceError, SubSpace, TeacherDims
from .checks import check_setup, make_subspace, validate
from .lattice import DIMS, DEFAULT_FLOORS, default_bands, measure_of, teacher_lattice

PREFER = ("width", "depth")

#: Values per dimension of an auto grid (the paper's 4^4 = 256).
DEFAULT_VALUES = {"layers": 4, "heads": 4, "hidden": 4, "mlp_ratio": 4}


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
    k, names, bands = check_setup(k, names, convention, bands, lambda k: default_bands(k, measure), low_min=0.0)
    if prefer not in PREFER:
        raise SearchSpaceError(f"unknown preference {prefer!r}; expected one of {PREFER}")
    values = {**DEFAULT_VALUES, **(values or {})}
    floors = {**DEFAULT_FLOORS, **(floors or {})}
    for key in DIMS:
        if int(values[key]) != values[key] or values[key] < 1:
            raise SearchSpaceError(f"values.{key} must be a positive integer, got {values[key]!r}")

    # The lattice, shared with the band partition; stock: one head count per hidden size (whole teacher heads)
    stock = convention == "stock"
    lattice = teacher_lattice(teacher, convention, floors)
    axes = {"layers": lattice.layers,
            "heads": [h // teacher.head_size for h in lattice.hidden] if stock else lattice.heads,
            "hidden": lattice.hidden, "mlp_ratio": lattice.mlp_ratio}

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
        sub = make_subspace(name, grid, convention)
        subspaces.append(sub)
        ceiling = min(measure_of(a, measure, teacher, vocab, seq_len) / teacher_measure for a in sub.candidates(teacher))
    validate(subspaces, teacher)
    return subspaces


# -------------------------------------------------------------------------------------------------- band

#: Default cost bands of the band partition, K=3, largest first: (low, high] fractions of the teacher's exact
#: GFLOPs. Their tops are the default budgets (50 %, 15 %, 4 %), so every candidate is one a budget can pick.
