"""The ablation study as a feature: arms of params overrides, queued as DVC experiments at equal SuperLM compute.

    python -m autodistil.ablations plan   [--arms A ..] [--scales default large] [--seeds 0 1]   # what would run
    python -m autodistil.ablations queue  [same options]     # dvc exp run --queue, one experiment per run
    dvc queue start -j 1                                     # runs them (one at a time: both cores each)
    python -m autodistil.ablations report                    # docs/ablations.md and its pictures

An arm (configs/ablations.yaml) is a partial params file applied on top of params.yaml. Every arm is trained with
the SuperLM compute of the reference arm times the scale: the expected FLOPs of the sampled sub-networks
(:mod:`autodistil.compute`), summed over the arm's sub-spaces, set through ``superlm.max_steps``; an arm marked
``compute: none`` is not trained at all (one run per seed, at the first scale only). Runs differ in
``superlm.seed`` (data order, sampled sub-networks, dropout, and the blocks the importance order is measured on).
An arm marked ``glue: true`` also fine-tunes its students (``glue`` overrides of the config: seeds, tasks) and its
experiment runs the whole pipeline; the others stop at the ``probes`` stage. An arm marked ``students: reference``
takes the default run's students: they are pinned (``search.budgets.*.arch``) to the architectures the default
run chose (``metrics/search/<subspace>.json``; the reference arm must be params.yaml itself), so that only the
weights differ from the reference at params.yaml's seed (the reference at another seed may choose others). Experiments are named
``abl-<arm>-<scale>-s<seed>``; their MLflow runs carry that name in the tag ``dvc_exp_name``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from .ablation_report import experiment_name
from .io import InputError, number
from .overrides import REPLACED_WHOLE, flags

CONFIG = "configs/ablations.yaml"


@dataclass(frozen=True)
class Arm:
    name: str
    params: dict = field(default_factory=dict)
    compute: str = "match"  # match: the reference's SuperLM compute x scale | none: no SuperLM training
    glue: bool = False
    about: str = ""
    students: str = "search"  # search: its own search picks them | reference: the default run's, pinned


@dataclass(frozen=True)
class Study:
    reference: str
    seeds: tuple[int, ...]
    scales: dict[str, float]
    glue: dict
    arms: dict[str, Arm]

    @classmethod
    def load(cls, path: str | Path = CONFIG) -> "Study":
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise InputError(f"{path}: cannot read the ablation config ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("arms"), dict) or not raw["arms"]:
            raise InputError(f"{path}: expected a mapping with a non-empty 'arms' mapping")
        unknown = sorted(set(raw) - {"reference", "seeds", "scales", "glue", "arms"})
        if unknown:
            raise InputError(f"{path}: unknown key(s) {', '.join(unknown)}")
        arms = {}
        for name, a in raw["arms"].items():
            a = a or {}
            bad = sorted(set(a) - {"params", "compute", "glue", "about", "students"})
            compute, students = a.get("compute", "match"), a.get("students", "search")
            if (not re.fullmatch(r"[A-Za-z0-9_]+", str(name)) or bad or compute not in ("match", "none")
                    or students not in ("search", "reference")):
                raise InputError(f"{path}: arms.{name}: a name of letters, digits and _, with keys params, compute "
                                 f"(match | none), glue, about, students (search | reference)"
                                 + (f"; unknown {bad}" if bad else ""))
            arms[name] = Arm(name, a.get("params") or {}, compute, bool(a.get("glue", False)),
                             str(a.get("about", "")), students)
        try:
            seeds = tuple(number(x, int) for x in raw.get("seeds") or [0])
            scales = {str(k): float(number(v)) for k, v in (raw.get("scales") or {"default": 1}).items()}
        except (TypeError, ValueError, AttributeError):
            raise InputError(f"{path}: seeds must be a list of integers and scales a mapping of names to numbers, got "
                             f"{raw.get('seeds')!r} and {raw.get('scales')!r}") from None
        study = cls(raw.get("reference", next(iter(arms))), seeds, scales, raw.get("glue") or {}, arms)
        if study.reference not in arms or arms[study.reference].compute != "match":
            raise InputError(f"{path}: reference {study.reference!r} must be an arm with compute: match")
        if any(a.glue for a in arms.values()) and not study.glue:
            raise InputError(f"{path}: arms marked glue: true need the 'glue' overrides (fine-tuning seeds, tasks): "
                             f"they are what tells a fine-tuned run from one that stopped at the probes")
        pinned = [a.name for a in arms.values() if a.students == "reference"]
        if pinned and arms[study.reference].params:
            raise InputError(f"{path}: arms {', '.join(pinned)} take the default run's students (students: "
                             f"reference), so the reference arm {study.reference!r} must have no params")
        if not all(re.fullmatch(r"[A-Za-z0-9_]+", s) and v > 0 for s, v in study.scales.items()):
            raise InputError(f"{path}: scales must map names (letters, digits, _) to positive multiples")
        return study


def merge(base: Mapping, overrides: Mapping, prefix: str = "") -> dict:
    """``base`` with ``overrides`` applied as ``dvc exp run -S`` would apply :func:`flags`' output (mappings merged
    leaf by leaf, lists and the user-named mappings replaced whole)."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in REPLACED_WHOLE and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, f"{name}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def step_flops_of(params: Mapping, where: str) -> tuple[float, int]:
    """(expected training FLOPs of one SuperLM step summed over the sub-spaces ``params`` partitions, the steps its
    budget gives) for the teacher of ``params``: computed from the partition and the sampler, nothing trained."""
    from .compute import expected_step_flops
    from .config import from_mapping
    from .partition import partition_from_params, teacher_shape

    checked = from_mapping(params, where)
    subspaces, _ = partition_from_params(checked, where)
    dims, _ = teacher_shape(checked.teacher.source)
    cfg, seq_len = checked.superlm, checked.prepare_corpus.seq_len
    per_step = sum(expected_step_flops(s.candidates(dims), s.largest(dims), s.smallest(dims), cfg.sampling,
                                       cfg.num_random, cfg.batch_size, seq_len, cfg.hidden_weight > 0)
                   for s in subspaces)
    return per_step, cfg.total_steps(seq_len)


@dataclass
class Run:
    name: str
    arm: str
    scale: str
    seed: int
    overrides: dict
    planned_flops: float  # expected SuperLM training FLOPs (sampled sub-networks, all sub-spaces)
    target: str | None  # the DVC stage the experiment reproduces (None: the whole pipeline)


def pinned_budgets(params: Mapping, search_dir: str | Path, arm: str) -> dict:
    """``search.budgets`` of ``params`` with every student pinned to the architecture the default run chose for it
    (``<search_dir>/<subspace>.json``)."""
    budgets = copy.deepcopy(dict((params.get("search") or {}).get("budgets") or {}))
    for sub, group in budgets.items():
        path = Path(search_dir) / f"{sub}.json"
        try:
            chosen = json.loads(path.read_text(encoding="utf-8"))["students"]
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{path}: no search result of the default run, which arms.{arm} (students: reference) "
                             f"takes its students from (run `dvc repro search@{sub}`; an arm that changes the "
                             f"partition cannot take the default run's students)") from None
        for student in group:
            record = (chosen.get(student) or {}) if isinstance(chosen, dict) else {}
            if not record.get("arch_name"):
                raise InputError(f"{path}: no student {student!r} with an arch_name, which arms.{arm} "
                                 f"(students: reference) pins")
            asked = {k: v for k, v in (group[student] or {}).items() if k != "arch"}
            searched = record.get("budget") or {}
            if any(k not in searched or number(searched[k]) != number(v) for k, v in asked.items()):
                raise InputError(f"{path}: {student!r} was searched under the budget {searched}, params.yaml asks "
                                 f"{asked} (run `dvc repro search@{sub}` before taking its students)")
            group[student] = {**(group[student] or {}), "arch": record["arch_name"]}
    return budgets


def plan(study: Study, base: Mapping, arms: Sequence[str] | None = None, scales: Sequence[str] | None = None,
         seeds: Sequence[int] | None = None, where: str = CONFIG, search_dir: str | Path = "metrics/search",
         probes_only: bool = False) -> list[Run]:
    """Every run of the study (or of the chosen arms, scales and seeds), each with the overrides that give it the
    reference arm's compute times its scale (and, for ``students: reference``, the default run's students).
    ``probes_only``: GLUE arms too stop at the probes (a second SuperLM seed for the probe table, say)."""
    for kind, chosen, known in (("arm", arms, study.arms), ("scale", scales, study.scales)):
        bad = [x for x in chosen or [] if x not in known]
        if bad:
            raise InputError(f"{where}: unknown {kind}(s) {', '.join(bad)}; the config has {', '.join(known)}")
    ref = study.arms[study.reference]
    ref_step, ref_steps = step_flops_of(merge(base, ref.params), f"{where}: arms.{ref.name}")
    no_training = {"superlm": {"max_steps": 0, "max_tokens": None}}
    runs = []
    for arm in (study.arms[a] for a in (arms or study.arms)):
        params = merge(base, arm.params)
        per_step, own_steps = step_flops_of(params, f"{where}: arms.{arm.name}")
        # an untrained arm is the same at every scale: one name for it, the config's first scale
        for scale in (scales or study.scales) if arm.compute == "match" else [next(iter(study.scales))]:
            if arm.compute == "none":  # nothing is trained: one scale stands for all (the seed still picks the
                overrides, steps = merge(arm.params, no_training), 0  # blocks the importance order is measured on)
            else:
                steps = round(study.scales[scale] * ref_step * ref_steps / per_step)
                if steps < 1:
                    raise InputError(f"{where}: arms.{arm.name} at scale {scale}: the reference's compute buys no "
                                     f"step of this arm (raise the scale or the reference's budget)")
                overrides = copy.deepcopy(arm.params)
                if steps != own_steps:  # an arm that already has the compute keeps its params (and DVC's cache)
                    overrides = merge(overrides, {"superlm": {"max_steps": steps, "max_tokens": None}})
            glue = arm.glue and not probes_only
            if glue:
                overrides = merge(overrides, study.glue)
            if arm.students == "reference" and glue:  # only a GLUE run searches; budgets are replaced whole
                overrides = merge(overrides, {"search": {"budgets": pinned_budgets(params, search_dir, arm.name)}})
            chosen_seeds = list(seeds if seeds is not None else study.seeds)
            for seed in chosen_seeds:
                run_overrides = overrides
                if seed != params["superlm"].get("seed", 0):
                    run_overrides = merge(overrides, {"superlm": {"seed": seed}})
                runs.append(Run(experiment_name(arm.name, scale, seed), arm.name, scale, seed, run_overrides,
                                per_step * steps, None if glue else "probes"))
    return runs


def queue_commands(runs: Sequence[Run], base: Mapping) -> list[list[str]]:
    """The ``dvc exp run --queue`` command of each run."""
    commands = []
    for r in runs:
        overrides, unknown = flags(r.overrides, dict(base))
        if unknown:  # caught earlier by the config checker; kept for keys of a section it passes whole
            raise InputError(f"arms.{r.arm}: {', '.join(unknown)} not in params.yaml (no stage reads it)")
        commands.append(["dvc", "exp", "run", "--queue", "-n", r.name, *overrides, *([r.target] if r.target else [])])
    return commands


def main(argv: Sequence[str] | None = None) -> None:
    from .io import fail

    ap = argparse.ArgumentParser(prog="python -m autodistil.ablations", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("plan", "queue", "report"))
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--arms", nargs="+")
    ap.add_argument("--scales", nargs="+")
    ap.add_argument("--seeds", nargs="+", type=int)
    ap.add_argument("--probes-only", action="store_true", help="GLUE arms too stop at the probes stage")
    ap.add_argument("--search", default="metrics/search",
                    help="the default run's search results (the students of arms with students: reference)")
    ap.add_argument("--exp-show", help="a saved `dvc exp show --json` (default: run it)")
    ap.add_argument("--commits", type=int,
                    help="read experiments of HEAD's last N commits only (default: of every commit; a study's runs "
                         "outlive the commits they were queued from)")
    ap.add_argument("--out", default="docs/ablations.md")
    args = ap.parse_args(argv)
    try:
        study = Study.load(args.config)
        if args.command == "report":
            from .ablation_report import write_report

            write_report(study, _exp_show(args.exp_show, args.commits), Path(args.out))
            print(f"wrote {args.out}")
            return
        base = _params(args.params)
        runs = plan(study, base, args.arms, args.scales, args.seeds, args.config, args.search, args.probes_only)
        commands = queue_commands(runs, base)
        ref = {r.scale: r.planned_flops for r in plan(study, base, [study.reference], args.scales, args.seeds[:1]
                                                       if args.seeds else None, args.config, args.search)}
        for r, cmd in zip(runs, commands):
            ratio = f"x{r.planned_flops / ref[r.scale]:.3f} of the reference" if ref.get(r.scale) else "no reference"
            print(f"{r.name}: {r.planned_flops / 1e12:.2f} TFLOPs planned ({ratio})", file=sys.stderr)
            if args.command == "queue":
                _dvc(cmd)
            else:
                print(" ".join(cmd))
    except InputError as e:
        fail(str(e))


def _params(path: str) -> dict:
    try:
        params = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"{path}: cannot read ({str(e).splitlines()[0]})") from None
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return params


def _dvc(cmd: list[str]) -> str:
    """Run a DVC command; its failure is one line naming it (and, for a queue, what was queued before it stays)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1]
        raise InputError(f"`{' '.join(cmd[:5])} ...` failed: {last}")
    return proc.stdout


def _exp_show(saved: str | None, commits: int | None):
    where = saved or "`dvc exp show --json`"
    try:
        which = ["-n", str(commits)] if commits else ["--all-commits"]
        text = Path(saved).read_text(encoding="utf-8") if saved else _dvc(["dvc", "exp", "show", "--json", *which])
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{where}: not the JSON of dvc exp show ({str(e).splitlines()[0]})") from None

if __name__ == "__main__":
    main()
