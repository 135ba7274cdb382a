"""The band partition (the default): every lattice point whose exact GFLOPs fall in a sub-space's cost band."""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

from ..space import Arch, SearchSpaceError, SubSpace, TeacherDims
from .checks import check_setup, make_subspace, validate
from .lattice import default_bands, teacher_lattice


#: Default cost bands of the band partition, K=3, largest first: (low, high] fractions of the teacher's exact
#: GFLOPs. Their tops are the default budgets (50 %, 15 %, 4 %), so every candidate is one a budget can pick.
BAND_BANDS = ((0.30, 0.50), (0.075, 0.15), (0.02, 0.04))


def band_bands(k: int) -> Sequence[Sequence[float]]:
    """The band partition's default bands for ``k`` sub-spaces: :data:`BAND_BANDS` for three, else ``k`` bands
    spread over the same range."""
    return BAND_BANDS if k == 3 else default_bands(k, "gflops_exact")


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

    The lattice is the auto partition's (:func:`teacher_lattice`). Cutting it by cost rather
    than by dimension puts shallow-and-wide and deep-and-narrow students of about the same cost into one
    sub-space, so the search compares them (a product grid that spans depth and width at once spans a
    factor of ten in cost). The sub-spaces are disjoint because the (low, high] bands are; each lists only
    the values some candidate uses.
    """
    k, names, bands = check_setup(k, names, convention, bands, band_bands, low_min=None)
    stock = convention == "stock"
    lattice = teacher_lattice(teacher, convention, floors)
    layers, hidden, heads, ratios = lattice.layers, lattice.hidden, lattice.heads, lattice.mlp_ratio
    full = teacher.gflops(teacher.as_arch(), seq_len)
    subspaces = []
    for name, (lo, hi) in zip(names, bands):
        points = []
        for L, H, R in itertools.product(layers, hidden, ratios):
            for A in ([H // teacher.head_size] if stock else heads):
                arch = Arch(L, A, H, int(R * H), teacher.head_size)
                if lo < teacher.gflops(arch, seq_len) / full <= hi:
                    points.append((arch, R))
        if not points:
            raise SearchSpaceError(f"band partition: no candidate of the lattice in band {[lo, hi]} for sub-space "
                                   f"{name!r} (the floors may be too high: lower partition.band.floors)")
        grid = {"layers": sorted({a.layers for a, _ in points}), "heads": sorted({a.heads for a, _ in points}),
                "hidden": sorted({a.hidden for a, _ in points}), "mlp_ratio": sorted({r for _, r in points}),
                "band": [lo, hi], "band_seq_len": seq_len}
        subspaces.append(make_subspace(name, grid, convention))
    validate(subspaces, teacher)
    return subspaces
