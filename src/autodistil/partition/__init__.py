"""Step 1 of AutoDistil: partition the student search space into K compact, non-overlapping sub-spaces.

Three ways to get the K grids (each an explicit list of integers per dimension, see :class:`SubSpace`), each in
its own module, all drawing on one teacher-anchored lattice (:mod:`.lattice`) and checked alike (:mod:`.checks`):

- :func:`band_partition` (the default, :mod:`.band`): every lattice point whose exact GFLOPs fall in a sub-space's
  cost band, so that shallow-and-wide and deep-and-narrow students of one cost share a sub-space.
- :func:`explicit_partition` (:mod:`.explicit`): grids written by hand (``configs/paper.yaml`` carries the
  paper's base / small / tiny grids for BERT-base), validated: non-empty, within the teacher, pairwise disjoint.
- :func:`auto_partition` (:mod:`.auto`): grids derived from the teacher's shape, K and K target bands, following
  the heuristics visible in the paper's grids (METHOD.md):

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

:mod:`.document` writes and reads ``partition/subspaces.json``; :mod:`.from_params` turns params.yaml's
``partition`` section into sub-spaces.
"""

from .auto import DEFAULT_VALUES, PREFER, auto_partition
from .band import BAND_BANDS, band_partition
from .checks import check_grid_bounds, make_subspace, skipped_pairs, unused_values, validate
from .document import (describe, load_subspace, load_subspaces, load_teacher_shape, partition_metrics,
                       partition_record, subspaces_document, teacher_summary)
from .explicit import explicit_partition
from .from_params import partition_from_params, teacher_shape
from .lattice import (DEFAULT_FLOORS, DEFAULT_NAMES, DIMS, MEASURES, PAPER_BANDS, Lattice, canonical_ratio,
                      default_bands, default_names, measure_of, teacher_lattice)

__all__ = [
    "BAND_BANDS", "DEFAULT_FLOORS", "DEFAULT_NAMES", "DEFAULT_VALUES", "DIMS", "MEASURES", "PAPER_BANDS", "PREFER",
    "Lattice", "auto_partition", "band_partition", "canonical_ratio", "check_grid_bounds", "default_bands",
    "default_names", "describe", "explicit_partition", "load_subspace", "load_subspaces", "load_teacher_shape",
    "make_subspace", "measure_of", "partition_from_params", "partition_metrics", "partition_record", "skipped_pairs",
    "subspaces_document", "teacher_lattice", "teacher_shape", "teacher_summary", "unused_values", "validate",
]
