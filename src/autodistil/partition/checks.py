"""Checks every partition passes: grids within the teacher, unique names, disjoint sub-spaces; K, names and bands."""

from __future__ import annotations

from fractions import Fraction
from typing import Mapping, Sequence

from ..space import CONVENTIONS, SearchSpaceError, SubSpace, TeacherDims, validate_disjoint
from .lattice import canonical_ratio, default_names, ratio_json



def make_subspace(name: str, grid: Mapping, convention: str) -> SubSpace:
    grid = dict(grid)
    if isinstance(grid.get("mlp_ratio"), (list, tuple)):
        try:
            grid["mlp_ratio"] = [canonical_ratio(r) for r in grid["mlp_ratio"]]
        except (ValueError, ZeroDivisionError):
            raise SearchSpaceError(f"sub-space {name!r}: mlp_ratio {grid['mlp_ratio']!r} must be numbers") from None
    return SubSpace.from_dict(name, grid, convention)


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
    out["mlp_ratio"] = [ratio_json(r) for r in sub.mlp_ratio if Fraction(r) not in used_ratios]
    return {k: v for k, v in out.items() if v}


def check_setup(k, names, convention: str, bands, default, low_min: float | None
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
