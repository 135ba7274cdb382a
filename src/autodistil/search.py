"""Search a trained SuperLM for the best student per budget, without re-training.

Every candidate of a sub-space (or, above ``max_candidates``, a seeded sample of it) is scored by its
relation-distillation loss on held-out corpus blocks, in eval mode, against teacher projections computed
once (:class:`autodistil.distill.HeldOut`). A budget is any combination of

- ``max_params``: parameters, in the cost convention of the search (``paper`` by default, see
  :mod:`autodistil.cost`; ``exact`` = what the exported module holds);
- ``max_gflops``: 1e9 multiply-accumulates per sequence of ``seq_len`` tokens, same convention;
- ``max_latency_ms``: wall time of one forward pass of the student (a stock transformers model built
  from the SuperLM slice) on this machine, ``latency.batch_size`` x ``latency.seq_len`` tokens, median of
  ``latency.repeats`` timed runs after ``latency.warmup`` untimed ones.

A budget's student is the candidate with the lowest held-out loss among those that fit (ties: fewer
GFLOPs). Latency is measured only where a budget needs it, lazily and in order of loss (the first candidate
that fits is the answer), and always for the chosen students (on the exported folder).

Sampling above the size limit (:func:`sample_candidates`): the sub-space's largest and smallest candidates
are always kept (the sandwich ends, which every budget range is anchored on), the rest is a uniform random
sample without replacement drawn with ``random.Random(seed)`` from the sorted candidate list; the result is
sorted. The same seed and grid always give the same sample.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .cost import Vocab, costs
from .config import BudgetLimits, LatencyConfig, Params, SearchParams
from .io import InputError
from .space import Arch, size_key

CONVENTIONS = ("paper", "exact")
LIMITS = ("max_params", "max_gflops", "max_latency_ms", "max_params_frac", "max_gflops_frac")
FRACTIONS = {"max_params_frac": "max_params", "max_gflops_frac": "max_gflops"}


class NoFitError(InputError):
    """No candidate of the sub-space fits a budget (a params problem: one line, names the budget)."""


# ------------------------------------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    """One named budget; ``None`` means no limit on that dimension.

    ``max_params_frac`` / ``max_gflops_frac`` are fractions of the teacher's own cost (same convention), so
    that a budget follows the teacher; :meth:`resolve` turns them into absolute limits (the tighter one
    wins where both are given).
    """

    name: str
    max_params: float | None = None
    max_gflops: float | None = None
    max_latency_ms: float | None = None
    max_params_frac: float | None = None
    max_gflops_frac: float | None = None
    arch: str | None = None  # a pinned architecture (its name, e.g. L4-A12-H384-F768): no ranking, limits still hold

    @classmethod
    def from_limits(cls, name: str, limits: BudgetLimits) -> "Budget":
        """A budget of params.yaml's checked ``search.budgets``."""
        return cls(name=name, **{**dataclasses.asdict(limits), "arch": limits.arch.strip() if limits.arch else None})

    @property
    def needs_latency(self) -> bool:
        return self.max_latency_ms is not None

    def resolve(self, teacher_row: Mapping, convention: str = "paper") -> "Budget":
        """Absolute limits: each fraction times the teacher's cost in ``convention`` (``teacher_row`` holds
        ``params_<convention>`` and ``gflops_<convention>``, as a :func:`cost_row`)."""
        limits = {"max_params": self.max_params, "max_gflops": self.max_gflops}
        for frac_key, key in FRACTIONS.items():
            frac = getattr(self, frac_key)
            if frac is not None:
                value = frac * teacher_row[f"{key.removeprefix('max_')}_{convention}"]
                limits[key] = value if limits[key] is None else min(limits[key], value)
        return Budget(self.name, limits["max_params"], limits["max_gflops"], self.max_latency_ms,
                      self.max_params_frac, self.max_gflops_frac, self.arch)

    def fits_static(self, row: Mapping, convention: str = "paper") -> bool:
        """Params and GFLOPs limits (latency is checked separately, it has to be measured)."""
        if self.max_params is not None and row[f"params_{convention}"] > self.max_params:
            return False
        if self.max_gflops is not None and row[f"gflops_{convention}"] > self.max_gflops:
            return False
        return True

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (*LIMITS, "arch") if getattr(self, k) is not None}

    def describe(self) -> str:
        return ", ".join(f"{k} {v}" if k == "arch" else f"{k} {v:g}" for k, v in self.to_dict().items())

    def admits(self, row: Mapping) -> bool:
        """The pinned architecture, if any (every candidate otherwise)."""
        return self.arch is None or row["arch"] == self.arch


def budgets_of(search: SearchParams, subspaces: Iterable[str], where: str = "params.yaml: search"
               ) -> dict[str, dict[str, Budget]]:
    """``search.budgets`` as :class:`Budget` objects, ``{subspace: {student: budget}}``; every budget's sub-space
    must be one of ``subspaces`` (the partition's)."""
    known = list(subspaces)
    for sub in search.budgets:
        if sub not in known:
            raise InputError(f"{where}.budgets.{sub}: no such sub-space (have {', '.join(known)})")
    return {sub: {name: Budget.from_limits(name, limits) for name, limits in group.items()}
            for sub, group in search.budgets.items()}


# ------------------------------------------------------------------------------------------ candidates
def sample_candidates(candidates: Sequence[Arch], max_candidates: int | None, seed: int = 0
                      ) -> tuple[list[Arch], bool]:
    """All candidates (sorted) if there are at most ``max_candidates`` (or no limit); else a seeded sample.

    The sample keeps the largest and smallest candidates (by layers, hidden, attention width, FFN, heads)
    and fills up with ``random.Random(seed).sample`` of the others; returns ``(archs, sampled)``.
    """
    archs = sorted(set(candidates))
    if max_candidates is None or len(archs) <= max_candidates:
        return archs, False
    if max_candidates < 2:
        raise InputError(f"search.max_candidates must be >= 2 (the largest and smallest are always kept), "
                         f"got {max_candidates}")
    ends = {max(archs, key=size_key), min(archs, key=size_key)}
    rest = [a for a in archs if a not in ends]
    picked = random.Random(seed).sample(rest, max_candidates - len(ends))
    return sorted(ends | set(picked)), True


def cost_row(arch: Arch, seq_len: int, teacher_heads: int, vocab: Vocab) -> dict:
    """The CSV columns that describe a candidate: its shape and its costs in both conventions."""
    c = costs(arch, seq_len, teacher_heads, vocab)
    return {
        "arch": arch.name, "layers": arch.layers, "heads": arch.heads, "hidden": arch.hidden, "ffn": arch.ffn,
        "head_size": arch.head_size, "mlp_ratio": round(arch.mlp_ratio, 4),
        "params_paper": c["params_paper"], "gflops_paper": c["gflops_paper"],
        "params_exact": c["params_exact"], "gflops_exact": c["gflops_exact"],
    }


def score_candidates(superlm, heldout, archs: Sequence[Arch], seq_len: int = 128,
                     progress: bool = True, log: Callable[[dict, int], None] | None = None,
                     criterion: str = "relation") -> list[dict]:
    """One row per candidate: :func:`cost_row`, every held-out criterion (``loss_relation``, ``loss_hidden``,
    ``loss_distill``), the ranking ``loss`` (= ``loss_<criterion>``) and the ``seconds`` it took.

    ``heldout`` is a :class:`autodistil.distill.HeldOut` (teacher targets computed once); every candidate
    is scored in eval mode. Rows are in the order of ``archs``.
    """
    cfg = superlm.config
    vocab = Vocab.from_config(cfg)
    rows = []
    it = archs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(archs, desc="candidates", unit="arch")
    for i, arch in enumerate(it):
        t0 = time.perf_counter()
        losses = heldout.losses(superlm, arch)
        loss = losses[criterion]
        row = {**cost_row(arch, seq_len, cfg.relation_heads, vocab), "loss": loss,
               **{f"loss_{k}": v for k, v in losses.items()}, "seconds": time.perf_counter() - t0}
        rows.append(row)
        if log is not None:
            log({"candidate_loss": loss, "candidate_seconds": row["seconds"]}, i)
    return rows


def criterion_spec(params):
    """The objective the candidates are scored with: the SuperLM's, its hidden-state term weighted by
    ``search.hidden_weight`` when set (the training weight, 10, drowns the relation loss in the ranking: measured,
    bench/criterion_yardstick.py; 0.3 ranks as the relation loss does and breaks its ties)."""
    import dataclasses

    spec = params.superlm.spec(12)
    w = params.search.hidden_weight
    return spec if w is None else dataclasses.replace(spec, hidden_weight=w)


# ------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ProxyConfig:
    """The task-proxy re-rank (``search.proxy``): the top_k fitting candidates, fine-tuned briefly on a task."""

    task: str
    task_dir: Path
    top_k: int
    finetune: Any  # autodistil.finetune.FinetuneConfig


@dataclass(frozen=True)
class SearchConfig:
    """The ``search`` section of params.yaml for one sub-space, checked (bad values name their key)."""

    budgets: dict[str, Budget]  # this sub-space's, with fractions still unresolved
    eval_blocks: int
    batch_size: int
    max_candidates: int | None
    seed: int
    seq_len: int
    convention: str
    criterion: str
    device: str
    latency: LatencyConfig
    spec: Any  # autodistil.distill.DistillSpec: the SuperLM's objective (relation heads set from the SuperLM)
    proxy: ProxyConfig | None

    @classmethod
    def build(cls, params: Params, subspace: str, subspaces: Iterable[str], glue_dir: Path,
              src: str = "params.yaml") -> "SearchConfig":
        """The search of ``subspace`` as params.yaml's checked sections ask for it (``search``, and ``superlm``
        for the objective the candidates are scored by)."""
        from .finetune import FinetuneConfig

        p = params.search
        budgets = budgets_of(p, subspaces, f"{src}: search")
        if subspace not in budgets:
            raise InputError(f"{src}: search.budgets has no budget for sub-space {subspace!r} "
                             f"(has {', '.join(budgets)})")
        proxy = None
        if p.proxy.enabled:
            if p.proxy.task not in params.prepare_glue.tasks:  # the stage depends on data/glue: DVC prepares those
                raise InputError(f"{src}: search.proxy.task {p.proxy.task!r} is not one of prepare_glue.tasks "
                                 f"{params.prepare_glue.tasks}; add it there")
            task_dir = Path(glue_dir) / p.proxy.task
            if not (task_dir / "task.json").is_file():
                raise InputError(f"{task_dir}: not a prepared GLUE task (search.proxy.task; run prepare_glue)")
            finetune = FinetuneConfig(lr=p.proxy.lr, epochs=p.proxy.epochs, batch_size=p.proxy.batch_size,
                                      max_steps=p.proxy.max_steps, seed=p.proxy.seed, device=p.device)
            proxy = ProxyConfig(p.proxy.task, task_dir, p.proxy.top_k, finetune)
        return cls(budgets=budgets[subspace], eval_blocks=p.eval_blocks, batch_size=p.batch_size,
                   max_candidates=p.max_candidates, seed=p.seed, seq_len=p.seq_len, convention=p.convention,
                   criterion=p.criterion, device=p.device, latency=p.latency, spec=criterion_spec(params),
                   proxy=proxy)


# ----------------------------------------------------------------------------------------- selection
def check_feasible(rows: list[dict], budget: Budget, convention: str = "paper", subspace: str = "") -> None:
    """Fail early (before any scoring) when no candidate meets a budget's params / GFLOPs limits, or its pinned
    architecture is not a candidate."""
    if budget.arch is not None and not any(budget.admits(r) for r in rows):
        raise NoFitError(_not_a_candidate(budget, subspace))
    admitted = [r for r in rows if budget.admits(r)]
    if not any(budget.fits_static(r, convention) for r in admitted):
        static = Budget(budget.name, budget.max_params, budget.max_gflops, arch=budget.arch)
        raise NoFitError(_no_fit_message(admitted, static, convention, subspace, None))


def select(rows: list[dict], budget: Budget, convention: str = "paper", subspace: str = "",
           latency: Callable[[dict], float] | None = None, rank_key: str = "loss") -> dict:
    """The best row (lowest ``rank_key``, then fewest GFLOPs) that fits ``budget``.

    ``latency(row) -> ms`` is called only for budgets with ``max_latency_ms``, lazily in rank order, and
    its result is cached in ``row["latency_ms"]`` (so the CSV shows every latency that was measured).
    Raises :class:`NoFitError` naming the budget and the cheapest candidate's cost when nothing fits.
    """
    if convention not in CONVENTIONS:
        raise InputError(f"search.convention: expected one of {CONVENTIONS}, got {convention!r}")
    if not rows:
        raise NoFitError(f"budget {budget.name!r}: no candidates were scored")
    if budget.needs_latency and latency is None:
        raise ValueError(f"budget {budget.name!r} has max_latency_ms but no latency function was given")
    if budget.arch is not None:  # pinned: the ranking has no say, the limits still do
        rows = [r for r in rows if budget.admits(r)]
        if not rows:
            raise NoFitError(_not_a_candidate(budget, subspace))
    ranked = sorted(rows, key=lambda r: (r[rank_key], r[f"gflops_{convention}"], r["arch"]))
    for row in ranked:
        if not budget.fits_static(row, convention):
            continue
        if budget.needs_latency:
            if row.get("latency_ms") is None:
                row["latency_ms"] = float(latency(row))
            if row["latency_ms"] > budget.max_latency_ms:
                continue
        return row
    raise NoFitError(_no_fit_message(rows, budget, convention, subspace, latency))


def _not_a_candidate(budget: Budget, subspace: str) -> str:
    where = f" of sub-space {subspace!r}" if subspace else ""
    key = f"search.budgets.{subspace or '<sub-space>'}.{budget.name}.arch"
    return (f"budget {budget.name!r}: the pinned arch {budget.arch} is not a candidate{where}; set {key} to one of "
            f"the sub-space's candidates (partition/subspaces.json lists its grid) or remove it")


def _no_fit_message(rows, budget: Budget, convention: str, subspace: str, latency) -> str:
    where = f" of sub-space {subspace!r}" if subspace else ""
    parts = []
    if budget.max_params is not None:
        r = min(rows, key=lambda r: r[f"params_{convention}"])
        parts.append(f"max_params {budget.max_params:.4g} but the smallest candidate {r['arch']} has "
                     f"{r[f'params_{convention}']:.4g} params")
    if budget.max_gflops is not None:
        r = min(rows, key=lambda r: r[f"gflops_{convention}"])
        parts.append(f"max_gflops {budget.max_gflops:.4g} but the cheapest candidate {r['arch']} has "
                     f"{r[f'gflops_{convention}']:.4g} GFLOPs")
    if budget.max_latency_ms is not None:
        static = [r for r in rows if budget.fits_static(r, convention)]
        pool = static or rows
        for r in pool:  # the cheapest in latency among those that meet the other limits
            if r.get("latency_ms") is None:
                r["latency_ms"] = float(latency(r))
        r = min(pool, key=lambda r: r["latency_ms"])
        parts.append(f"max_latency_ms {budget.max_latency_ms:.4g} but the fastest candidate"
                     f"{' within the other limits' if static and (budget.max_params or budget.max_gflops) else ''} {r['arch']} takes {r['latency_ms']:.4g} ms")
    pinned = f" (pinned to {budget.arch}: raise the limit or pin another)" if budget.arch else ""
    return (f"budget {budget.name!r}{where}: no candidate fits ({convention} convention){pinned}: " + "; ".join(parts)
            + "; raise the budget in params.yaml: search.budgets")


def choose_students(rows: list[dict], budgets: Mapping[str, Budget], convention: str, subspace: str,
                    latency: Callable[[dict], float] | None = None, proxy: "ProxyConfig | None" = None,
                    student: Callable[[dict], nn.Module] | None = None) -> tuple[dict[str, dict], float]:
    """One row per budget and the seconds spent on the task proxy.

    Without ``proxy``: :func:`select` (the lowest held-out loss that fits). With it (the authors' released
    variant): the ``proxy.top_k`` fitting rows of lowest loss are each fine-tuned briefly on ``proxy.task_dir``
    (``student(row)`` builds the model) and the best dev score wins (ties: the lower loss); every row that was
    fine-tuned keeps ``proxy_score`` and ``proxy_seconds`` (shown in the CSV), and is fine-tuned only once.
    """
    chosen: dict[str, dict] = {}
    proxy_seconds = 0.0
    for name, budget in budgets.items():
        if proxy is None:
            chosen[name] = select(rows, budget, convention, subspace, latency)
            continue
        from .finetune import finetune

        fitting, pool = [], list(rows)
        while len(fitting) < proxy.top_k:
            try:
                row = select(pool, budget, convention, subspace, latency)
            except NoFitError:
                if fitting:
                    break
                raise
            fitting.append(row)
            pool = [r for r in pool if r is not row]
        for row in fitting:
            if row.get("proxy_score") is None:
                t0 = time.perf_counter()
                row["proxy_score"] = finetune(student(row), proxy.task_dir, proxy.finetune)["score"]
                row["proxy_seconds"] = time.perf_counter() - t0
                proxy_seconds += row["proxy_seconds"]
        chosen[name] = max(fitting, key=lambda r: (r["proxy_score"], -r["loss"]))
    return chosen, proxy_seconds


def student_record(row: Mapping, arch: Arch, budget: Budget, seq_len: int, teacher_heads: int, vocab: Vocab,
                   latency_ms: float | None = None, proxy_task: str | None = None) -> dict:
    """What metrics/search/<subspace>.json says of a chosen student (export@<student> reads it)."""
    from .distill import CRITERIA

    return {
        "arch": arch.to_dict(), "arch_name": arch.name, "budget": budget.to_dict(),
        "loss": row["loss"], "losses": {k: row[f"loss_{k}"] for k in CRITERIA},
        "costs": costs(arch, seq_len, teacher_heads, vocab),
        **({"latency_ms": latency_ms} if latency_ms is not None else {}),
        **({"proxy": {"task": proxy_task, "score": row["proxy_score"]}} if proxy_task is not None else {}),
    }


def mark_chosen(rows: list[dict], chosen: Mapping[str, dict]) -> None:
    """Add ``chosen`` (the student names that picked this row, ``;``-joined; empty if none) to every row."""
    by_arch: dict[str, list[str]] = {}
    for student, row in chosen.items():
        by_arch.setdefault(row["arch"], []).append(student)
    for row in rows:
        row["chosen"] = ";".join(by_arch.get(row["arch"], []))


CSV_COLUMNS = ["subspace", "arch", "layers", "heads", "hidden", "ffn", "head_size", "mlp_ratio", "params_paper",
               "gflops_paper", "params_exact", "gflops_exact", "loss", "loss_relation", "loss_hidden", "loss_distill",
               "latency_ms", "proxy_score", "chosen", "seconds"]


def write_csv(path, rows: Sequence[Mapping], subspace: str) -> None:
    """Every scored candidate, sorted by GFLOPs (atomic write); latency/proxy empty where not measured."""
    import csv

    from .io import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in sorted(rows, key=lambda r: (r["gflops_paper"], r["arch"])):
            w.writerow({**{k: "" for k in CSV_COLUMNS}, "subspace": subspace,
                        **{k: ("" if v is None else v) for k, v in row.items() if k in CSV_COLUMNS}})


# ------------------------------------------------------------------------------------ one sub-space
@dataclass
class SearchOutcome:
    """What searching one sub-space found: every scored candidate, the chosen students and the timings."""

    rows: list[dict]  # one per candidate: costs, losses, ``chosen``; latency / proxy score where measured
    students: dict[str, dict]  # student name -> :func:`student_record`
    spec: Any  # the DistillSpec the candidates were scored with (relation heads of the SuperLM)
    timing: dict


def load_superlm_and_teacher(superlm_dir: Path, source: str, dims, archs: Sequence[Arch], device="cpu",
                             partition: str = "partition/subspaces.json") -> tuple:
    """The trained SuperLM of ``superlm_dir`` and the teacher it distils against (permuted by the SuperLM's
    importance order when it has one, so that both see the same channels), both checked: the teacher against
    the shape ``dims`` the partition was made for, every candidate of ``archs`` against the SuperLM."""
    import torch

    from .importance import ORDER_FILE, Order, apply_order
    from .space import TeacherDims
    from .superlm import SuperLM
    from .teacher import load_teacher

    superlm = SuperLM.load(superlm_dir).eval().to(device)
    teacher = load_teacher(source, device)
    if TeacherDims.from_config(teacher.config) != dims:
        raise InputError(f"{partition}: partitioned for another teacher than teacher.source {source!r}")
    if (Path(superlm_dir) / ORDER_FILE).is_file():
        apply_order(teacher, Order.from_dict(torch.load(Path(superlm_dir) / ORDER_FILE, weights_only=False)))
    for a in archs:
        if not superlm.config.envelope.contains(a):
            raise InputError(f"{superlm_dir}: candidate {a.name} does not fit the SuperLM (was it trained on "
                             f"another partition? re-run superlm@{Path(superlm_dir).name})")
    return superlm, teacher


def search_subspace(superlm, teacher, blocks, archs: Sequence[Arch], budgets: Mapping[str, Budget],
                    cfg: SearchConfig, subspace: str, teacher_heads: int, vocab: Vocab, device="cpu",
                    log: Callable[[dict, int], None] | None = None, progress: bool = False) -> SearchOutcome:
    """Score ``archs`` (slices of ``superlm``) against ``teacher`` on the held-out ``blocks`` and choose one
    student per budget (resolved limits): the lowest held-out loss that fits, or the task proxy's pick.

    Latency is measured only where a budget needs it, once per architecture, on the model that would be
    exported; it is recorded on the rows it was measured for.
    """
    import dataclasses

    import torch

    from .distill import HeldOut
    from .export import build_student
    from .latency import measure_latency

    by_name = {a.name: a for a in archs}
    latencies: dict[str, dict] = {}

    def latency(row) -> float:
        if row["arch"] not in latencies:
            latencies[row["arch"]] = measure_latency(build_student(superlm, by_name[row["arch"]]), cfg.latency)
        return latencies[row["arch"]]["latency_ms"]

    spec = dataclasses.replace(cfg.spec, relation_heads=superlm.config.relation_heads)
    t0 = time.perf_counter()
    heldout = HeldOut(teacher, blocks, spec, cfg.batch_size, device)
    teacher_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = score_candidates(superlm, heldout, archs, cfg.seq_len, progress=progress, log=log,
                            criterion=cfg.criterion)
    score_seconds = time.perf_counter() - t0
    chosen, proxy_seconds = choose_students(rows, budgets, cfg.convention, subspace, latency, cfg.proxy,
                                            lambda row: build_student(superlm, by_name[row["arch"]]))
    mark_chosen(rows, chosen)
    students = {name: student_record(row, by_name[row["arch"]], budgets[name], cfg.seq_len, teacher_heads, vocab,
                                     latencies.get(row["arch"], {}).get("latency_ms"),
                                     cfg.proxy.task if cfg.proxy else None)
                for name, row in chosen.items()}
    for row in rows:
        if row["arch"] in latencies:
            row["latency_ms"] = latencies[row["arch"]]["latency_ms"]
    timing = {"teacher_seconds": round(teacher_seconds, 3), "score_seconds": round(score_seconds, 3),
              "seconds_per_candidate": round(score_seconds / len(rows), 4), "latency_measurements": len(latencies),
              "proxy_seconds": round(proxy_seconds, 2), "heldout_blocks": len(blocks),
              "threads": torch.get_num_threads()}
    return SearchOutcome(rows, students, spec, timing)


# ------------------------------------------------------------------------------------------ the stage
def file_hash(*paths: Path) -> str:
    """The first 16 hex digits of the SHA-256 of the files' bytes, one after the other."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        with Path(p).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


@dataclass
class SearchPlan:
    """One sub-space's search as params.yaml asks for it, every input checked and no weights loaded yet."""

    params: Params
    subspace: str
    cfg: SearchConfig
    dims: Any  # autodistil.space.TeacherDims: the teacher the partition was made for
    vocab: Vocab
    candidates: int  # the sub-space's candidates, before any sampling
    archs: list[Arch]  # the candidates scored: the sample, and the pinned students
    sampled: bool
    budgets: dict[str, Budget]  # fractions resolved into limits
    teacher_row: dict  # the teacher's :func:`cost_row`
    superlm_dir: Path
    corpus: Path
    blocks: Any  # the held-out blocks scored (search.eval_blocks of them)
    relation_heads: int  # the SuperLM's, as its superlm.json states them
    partition: str = "partition/subspaces.json"

    @property
    def logged(self) -> dict:
        """The MLflow params of the search run."""
        from .config import plain

        return {"teacher": {"source": self.params.teacher.source}, "search": plain(self.params.search),
                "superlm_loss": vars(self.cfg.spec) | {"relation_heads": self.relation_heads}}


def plan_search(params: Params, subspace: str, subspaces: str, superlm: str | Path, corpus: str | Path,
                glue: str | Path, src: str = "params.yaml") -> SearchPlan:
    """The search of ``subspace`` (a sub-space of the partition file ``subspaces``), checked before anything heavy
    runs or anything is written: its budgets against the candidates' costs, the trained SuperLM in ``superlm``
    (its candidates fit its envelope) and the held-out blocks of ``corpus``; a problem is an :class:`InputError`."""
    import json

    from .corpus import load_blocks
    from .partition import load_subspace, load_subspaces, load_teacher_shape
    from .space import SearchSpaceError
    from .superlm import SuperLMConfig

    sub = load_subspace(subspaces, subspace)
    cfg = SearchConfig.build(params, subspace, load_subspaces(subspaces), Path(glue), src)
    # budgets on params / GFLOPs are checked against the grid before anything heavy runs
    dims, vocab = load_teacher_shape(subspaces)
    try:
        all_candidates = sub.candidates(dims)
    except SearchSpaceError as e:
        raise InputError(f"{subspaces}: {e}") from None
    archs, sampled = sample_candidates(all_candidates, cfg.max_candidates, cfg.seed)
    pinned = {b.arch for b in cfg.budgets.values() if b.arch} - {a.name for a in archs}
    archs += [a for a in all_candidates if a.name in pinned]  # a pinned student is scored even outside the sample
    cost_rows = [cost_row(a, cfg.seq_len, dims.heads, vocab) for a in archs]
    teacher_row = cost_row(dims.as_arch(), cfg.seq_len, dims.heads, vocab)
    budgets = {name: b.resolve(teacher_row, cfg.convention) for name, b in cfg.budgets.items()}  # fractions -> limits
    for budget in budgets.values():
        check_feasible(cost_rows, budget, cfg.convention, subspace)

    superlm_dir = Path(superlm) / subspace
    if not (superlm_dir / "superlm.pt").is_file():
        raise InputError(f"{superlm_dir}: no trained SuperLM (run `dvc repro superlm@{subspace}`)")
    corpus = Path(corpus)
    if not (corpus / "heldout.npy").is_file():
        raise InputError(f"{corpus}/heldout.npy: not found (run the prepare_corpus stage)")
    blocks = load_blocks(corpus, "heldout")
    if len(blocks) < cfg.eval_blocks:
        raise InputError(f"{corpus}/heldout.npy has {len(blocks)} blocks, search.eval_blocks asks for "
                         f"{cfg.eval_blocks}")
    trained = SuperLMConfig.from_dict(json.loads((superlm_dir / "superlm.json").read_text()))  # no weights
    for a in archs:  # as load_superlm_and_teacher checks them, before the run opens
        if not trained.envelope.contains(a):
            raise InputError(f"{superlm_dir}: candidate {a.name} does not fit the SuperLM (was it trained on "
                             f"another partition? re-run superlm@{superlm_dir.name})")
    return SearchPlan(params, subspace, cfg, dims, vocab, len(all_candidates), archs, sampled, budgets, teacher_row,
                      superlm_dir, corpus, blocks[:cfg.eval_blocks], trained.relation_heads, str(subspaces))


def search_job(plan: SearchPlan, metrics_dir: str | Path, log: Callable[[dict, int], None] | None = None,
               progress: bool = True):
    """The search stage's work: the SuperLM of ``plan`` and its teacher loaded, every candidate scored and one
    student chosen per budget (:func:`search_subspace`, ``log`` gets each candidate's loss), ``<subspace>.csv``
    written to ``metrics_dir``; ``<subspace>.json`` (the chosen students, read by export@<student>, their
    provenance and the timings), the CSV and the loss-vs-GFLOPs scatter as a :class:`autodistil.record.Record`."""
    from .device import resolve_device
    from .plots import pareto_png
    from .record import Record

    t_start = time.perf_counter()
    cfg, sub, source = plan.cfg, plan.subspace, plan.params.teacher.source
    device = resolve_device(cfg.device)
    superlm, teacher = load_superlm_and_teacher(plan.superlm_dir, source, plan.dims, plan.archs, device,
                                                plan.partition)
    hashes = {"superlm_sha256": file_hash(plan.superlm_dir / "superlm.pt"),
              "heldout_sha256": file_hash(plan.corpus / "heldout.npy", plan.corpus / "meta.json"),
              "train_data": superlm.config.provenance.get("data")}
    found = search_subspace(superlm, teacher, plan.blocks, plan.archs, plan.budgets, cfg, sub, plan.dims.heads,
                            plan.vocab, device, log=log, progress=progress)
    csv_path = Path(metrics_dir) / f"{sub}.csv"
    write_csv(csv_path, found.rows, sub)
    metrics = {
        "subspace": sub,
        "candidates": plan.candidates,
        "candidates_scored": len(found.rows),
        "sampled": plan.sampled,
        "convention": cfg.convention,
        "criterion": cfg.criterion,
        "teacher_costs": {k: plan.teacher_row[k] for k in ("params_paper", "gflops_paper", "params_exact",
                                                           "gflops_exact")},
        "seq_len": cfg.seq_len,
        "students": found.students,  # read by export@<student>, with the provenance below
        "provenance": {"teacher": source, "distill": vars(found.spec), "heldout_blocks": cfg.eval_blocks,
                       "sampled": plan.sampled, **hashes},
        "best_loss": min(r["loss"] for r in found.rows),
        "timing": {"wall_seconds": round(time.perf_counter() - t_start, 2), **found.timing},
    }
    logged = {"": {k: v for k, v in metrics.items() if k != "students"},
              **{f"{name}.": {"loss": st["loss"], **st["costs"]} for name, st in found.students.items()}}
    summary = {"subspace": sub, "wall_seconds": metrics["timing"]["wall_seconds"],
               "seconds_per_candidate": metrics["timing"]["seconds_per_candidate"],
               "students": {n: {"arch": s["arch_name"], "loss": round(s["loss"], 4),
                                "gflops_paper": round(s["costs"]["gflops_paper"], 4)}
                            for n, s in found.students.items()}}
    draw = {f"search_{sub}.png": lambda png: pareto_png({sub: found.rows}, png, cfg.convention,
                                                        f"held-out {cfg.criterion} loss")}
    return Record(metrics, Path(metrics_dir) / f"{sub}.json", logged=logged, artifacts=[csv_path], figures=draw,
                  summary=summary)
