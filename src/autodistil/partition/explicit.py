"""Hand-written grids (``partition.mode: explicit``; ``configs/paper.yaml`` carries the paper's BERT-base grids)."""

from __future__ import annotations

from typing import Mapping

from ..space import CONVENTIONS, SearchSpaceError, SubSpace, TeacherDims
from .checks import make_subspace, validate
from .lattice import DIMS



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
        subs.append(make_subspace(str(name), grid, convention))
    if teacher is not None:
        validate(subs, teacher)
    return subs
