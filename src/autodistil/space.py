"""The student search space: architectures as integers, sub-space grids, validation.

An architecture is homogeneous (every layer has the same shape) and fully described by integers:
layers L, heads A, hidden size H, FFN size F and the attention head size. A student always keeps the
teacher's head size d, so that its heads are whole teacher heads (the paper, section 3.1: "retains the
dimension of each head"; DynaBERT, Minitron and Sheared-LLaMA do the same). The attention width is A * d.
Two conventions tie the width to H or not:

- ``stock``: the attention width equals H, i.e. H = A * d: the head count follows from the hidden size and
  every student is a stock model of the teacher's type (``BertModel``, ``RobertaModel``, ``ElectraModel``);
- ``fixed_head``: the width A * d is decoupled from H (the authors' code; a custom BERT model type).

MLP ratios such as 3.5 appear in grids for readability, but are turned into integer FFN sizes at once
with exact rational arithmetic: float multipliers produced H=543 instead of 544 in the authors' code.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Iterable, Sequence

from .family import family_of_config

CONVENTIONS = ("stock", "fixed_head")


class SearchSpaceError(ValueError):
    """An architecture or a sub-space that cannot be built."""


@dataclass(frozen=True, order=True)
class Arch:
    """One student architecture (all integers)."""

    layers: int
    heads: int
    hidden: int
    ffn: int
    head_size: int

    @property
    def attention_width(self) -> int:
        return self.heads * self.head_size

    @property
    def mlp_ratio(self) -> float:
        return self.ffn / self.hidden

    @property
    def convention(self) -> str:
        return "stock" if self.attention_width == self.hidden else "fixed_head"

    @property
    def name(self) -> str:
        """Short, file-name safe label, e.g. ``L7-A10-H160-F560`` (``-D64`` added for fixed_head)."""
        label = f"L{self.layers}-A{self.heads}-H{self.hidden}-F{self.ffn}"
        return label if self.convention == "stock" else f"{label}-D{self.head_size}"

    def to_dict(self) -> dict:
        return {**asdict(self), "attention_width": self.attention_width, "mlp_ratio": self.mlp_ratio}

    @classmethod
    def from_dict(cls, d: dict) -> "Arch":
        try:
            return cls(**{k: int(d[k]) for k in ("layers", "heads", "hidden", "ffn", "head_size")})
        except KeyError as e:
            raise SearchSpaceError(f"architecture {d!r} lacks the key {e.args[0]!r}") from None


@dataclass(frozen=True)
class TeacherDims:
    """The teacher's shape, which bounds every student."""

    layers: int
    heads: int
    hidden: int
    ffn: int
    # ELECTRA's embedding width where it is projected to the hidden size: a student as wide as its embeddings
    # would have no projection in transformers' ElectraModel, so that width is no candidate
    embedding_size: int | None = None
    pooler: bool = True  # the family's (ELECTRA has none)

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads

    @classmethod
    def from_config(cls, config) -> "TeacherDims":
        family = family_of_config(config)
        return cls(
            layers=config.num_hidden_layers,
            heads=config.num_attention_heads,
            hidden=config.hidden_size,
            ffn=config.intermediate_size,
            embedding_size=family.embedding_size(config),
            pooler=family.pooler,
        )

    def gflops(self, arch: "Arch", seq_len: int = 128) -> float:
        """Exact GFLOPs of ``arch`` as a student of this teacher (its family's pooler and embedding projection)."""
        return exact_macs(arch, seq_len, self.pooler, self.embedding_size) / 1e9

    def as_arch(self) -> Arch:
        return Arch(self.layers, self.heads, self.hidden, self.ffn, self.head_size)


def exact_macs(arch: Arch, seq_len: int = 128, pooler: bool = True, embedding_size: int | None = None) -> int:
    """Matrix-product multiply-accumulates per sequence of the network that runs ``arch``: its layers, the pooler on
    one token, and an embedding projection (ELECTRA) on every token. Here rather than in :mod:`autodistil.cost`
    (whose ``exact_gflops`` it is) because a sub-space's cost band filters its candidates by it."""
    H, w, F, n = arch.hidden, arch.attention_width, arch.ffn, seq_len
    per_layer = 3 * n * H * w + 2 * n * n * w + n * w * H + 2 * n * H * F
    return arch.layers * per_layer + (H * H if pooler else 0) + (n * embedding_size * H if embedding_size else 0)


def ffn_size(hidden: int, mlp_ratio) -> int:
    """Integer FFN size R * H, computed exactly; a ratio that gives a fractional size is an error."""
    ratio = Fraction(str(mlp_ratio))
    size = ratio * hidden
    if size.denominator != 1 or size <= 0:
        raise SearchSpaceError(f"MLP ratio {mlp_ratio} times hidden {hidden} is not a positive integer")
    return int(size)


def make_arch(
    layers: int, heads: int, hidden: int, mlp_ratio, teacher: TeacherDims, convention: str = "stock"
) -> Arch:
    """Build and validate one architecture under ``convention``."""
    for key, value in (("layers", layers), ("heads", heads), ("hidden", hidden)):
        if int(value) != value or value <= 0:
            raise SearchSpaceError(f"{key}={value!r} must be a positive integer")
    if convention not in CONVENTIONS:
        raise SearchSpaceError(f"unknown attention convention {convention!r}; expected one of {CONVENTIONS}")
    head_size = teacher.head_size
    if convention == "stock" and hidden != heads * head_size:
        raise SearchSpaceError(
            f"hidden {hidden} != heads {heads} x the teacher's head size {head_size} (the stock convention keeps "
            f"whole teacher heads and an attention width equal to the hidden size)"
        )
    arch = Arch(int(layers), int(heads), int(hidden), ffn_size(hidden, mlp_ratio), head_size)
    check_within_teacher(arch, teacher)
    return arch


def check_within_teacher(arch: Arch, teacher: TeacherDims) -> None:
    limits = {
        "layers": (arch.layers, teacher.layers),
        "heads": (arch.heads, teacher.heads),
        "hidden": (arch.hidden, teacher.hidden),
        "ffn": (arch.ffn, teacher.ffn),
        "attention width": (arch.attention_width, teacher.heads * teacher.head_size),
    }
    for key, (value, limit) in limits.items():
        if value > limit:
            raise SearchSpaceError(f"{arch.name}: {key} {value} exceeds the teacher's {limit}")


@dataclass(frozen=True)
class SubSpace:
    """A named grid: the Cartesian product of the listed values of each dimension, optionally restricted to
    a cost ``band``: (low, high] fractions of the teacher's exact GFLOPs (at ``band_seq_len`` tokens), so
    that one sub-space can hold shallow-and-wide and deep-and-narrow students of about the same cost."""

    name: str
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    hidden: tuple[int, ...]
    mlp_ratio: tuple[str, ...]
    convention: str = "stock"
    band: tuple[float, float] | None = None
    band_seq_len: int = 128

    @classmethod
    def from_dict(cls, name: str, d: dict, convention: str = "stock") -> "SubSpace":
        missing = [k for k in ("layers", "heads", "hidden", "mlp_ratio") if k not in d]
        if missing:
            raise SearchSpaceError(f"sub-space {name!r} lacks {', '.join(missing)}")
        values = {}
        for key in ("layers", "heads", "hidden", "mlp_ratio"):
            v = d[key]
            if not isinstance(v, (list, tuple)) or not v:
                raise SearchSpaceError(f"sub-space {name!r}: {key} must be a non-empty list, got {v!r}")
            values[key] = tuple(sorted(set(v), key=lambda x: Fraction(str(x))))
        band = d.get("band")
        if band is not None:
            try:
                band = tuple(float(x) for x in band)
                if len(band) != 2 or not 0 <= band[0] < band[1]:
                    raise ValueError
            except (TypeError, ValueError):
                raise SearchSpaceError(f"sub-space {name!r}: band must be [low, high] with 0 <= low < high, "
                                       f"got {d.get('band')!r}") from None
        return cls(
            name=name,
            layers=tuple(int(x) for x in values["layers"]),
            heads=tuple(int(x) for x in values["heads"]),
            hidden=tuple(int(x) for x in values["hidden"]),
            mlp_ratio=tuple(str(x) for x in values["mlp_ratio"]),
            convention=d.get("convention", convention),
            band=band,
            band_seq_len=int(d.get("band_seq_len", 128)),
        )

    def to_dict(self) -> dict:
        out = {
            "layers": list(self.layers),
            "heads": list(self.heads),
            "hidden": list(self.hidden),
            "mlp_ratio": [float(Fraction(r)) for r in self.mlp_ratio],
            "convention": self.convention,
        }
        if self.band is not None:
            out.update(band=list(self.band), band_seq_len=self.band_seq_len)
        return out

    def in_band(self, arch: "Arch", teacher: "TeacherDims") -> bool:
        if self.band is None:
            return True
        frac = teacher.gflops(arch, self.band_seq_len) / teacher.gflops(teacher.as_arch(), self.band_seq_len)
        return self.band[0] < frac <= self.band[1]

    def candidates(self, teacher: TeacherDims) -> list[Arch]:
        """Every valid architecture of the grid, sorted. Raises if the grid exceeds the teacher or is empty.

        In the stock convention a (H, A) pair with H != A * head size is skipped, not an error, as long
        as the grid keeps some candidates: grids are written per dimension and cannot exclude single pairs.
        """
        archs, skipped = [], []
        for L, A, H, R in itertools.product(self.layers, self.heads, self.hidden, self.mlp_ratio):
            if self.convention == "stock" and H != A * teacher.head_size:
                skipped.append((H, A))
                continue
            if H == teacher.embedding_size:  # no projection at this width in the family's stock model
                skipped.append((H, A))
                continue
            try:
                arch = make_arch(L, A, H, R, teacher, self.convention)
            except SearchSpaceError as e:
                raise SearchSpaceError(f"sub-space {self.name!r}: {e}") from None
            if self.in_band(arch, teacher):
                archs.append(arch)
        if not archs:
            why = (f" (no hidden size equals heads x the teacher's head size {teacher.head_size}, or every one equals "
                   f"the teacher's projected embedding size {teacher.embedding_size}: {sorted(set(skipped))[:4]}...)"
                   if skipped else "")
            raise SearchSpaceError(f"sub-space {self.name!r} has an empty grid{why}")
        return sorted(set(archs))

    def largest(self, teacher: TeacherDims) -> Arch:
        """The candidate with every dimension at its maximum (the sandwich rule's "largest")."""
        return max(self.candidates(teacher), key=size_key)

    def smallest(self, teacher: TeacherDims) -> Arch:
        return min(self.candidates(teacher), key=size_key)


def size_key(a: Arch) -> tuple:
    """The one size order of architectures: depth, then width, attention width, FFN, heads (the sandwich's
    largest and smallest, and the ends a candidate sample always keeps)."""
    return (a.layers, a.hidden, a.attention_width, a.ffn, a.heads)


@dataclass(frozen=True)
class Envelope:
    """The shape of a SuperLM: the maximum of each dimension over the architectures it must slice.

    Not an :class:`Arch`: the widest attention and the most heads may come from different candidates.
    """

    layers: int
    hidden: int
    ffn: int
    attention_width: int

    @classmethod
    def of(cls, archs: Iterable[Arch]) -> "Envelope":
        archs = list(archs)
        if not archs:
            raise SearchSpaceError("cannot take the envelope of no architectures")
        return cls(
            layers=max(a.layers for a in archs),
            hidden=max(a.hidden for a in archs),
            ffn=max(a.ffn for a in archs),
            attention_width=max(a.attention_width for a in archs),
        )

    def contains(self, arch: Arch) -> bool:
        return (arch.layers <= self.layers and arch.hidden <= self.hidden and arch.ffn <= self.ffn
                and arch.attention_width <= self.attention_width)


DEPTH_RULES = ("strided", "first_k", "ends", "importance")


def depth_indices(n_super: int, n_active: int, rule: str = "strided", ranking: Sequence[int] | None = None
                  ) -> list[int]:
    """Which of ``n_super`` layers a student of ``n_active`` layers keeps.

    ``strided`` (the method's default): floor(i * N / L) for i in 0..L-1, in integer arithmetic.
    ``first_k``: layers 0..L-1.
    ``ends``: the first and the last layer and the rest evenly between, round(i * (N-1) / (L-1)); one layer
    keeps the last. The first layer is the one made for the embeddings, the last the one whose output the
    pooler and a task head were trained on: a sliced student keeps both interfaces.
    ``importance``: the ``n_active`` first layers of ``ranking`` (every layer, most important first), in
    network order; nested, so every shallower student keeps a subset of a deeper one's layers.
    """
    if not 1 <= n_active <= n_super:
        raise SearchSpaceError(f"cannot keep {n_active} of {n_super} layers")
    if rule == "strided":
        return [i * n_super // n_active for i in range(n_active)]
    if rule == "first_k":
        return list(range(n_active))
    if rule == "ends":
        if n_active == 1:
            return [n_super - 1]
        gaps = n_active - 1
        return [(i * (n_super - 1) + gaps // 2) // gaps for i in range(n_active)]
    if rule == "importance":
        if ranking is None or sorted(ranking) != list(range(n_super)):
            raise SearchSpaceError(f"the importance depth rule needs a ranking of all {n_super} layers, got {ranking!r}")
        return sorted(ranking[:n_active])
    raise SearchSpaceError(f"unknown depth rule {rule!r}; expected one of {DEPTH_RULES}")


def rank_kept(ranking: Sequence[int], kept: Sequence[int]) -> list[int]:
    """The ranking of the layers ``kept`` (a sorted subset), as positions in ``kept``."""
    return [list(kept).index(i) for i in ranking if i in kept]


def validate_disjoint(subspaces: Sequence[SubSpace], teacher: TeacherDims) -> None:
    """Sub-spaces must not share a candidate (few-shot NAS partitions the space)."""
    seen: dict[Arch, str] = {}
    for sub in subspaces:
        for arch in sub.candidates(teacher):
            if arch in seen:
                raise SearchSpaceError(
                    f"sub-spaces {seen[arch]!r} and {sub.name!r} overlap (both contain {arch.name})"
                )
            seen[arch] = sub.name
