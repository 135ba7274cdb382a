"""The ablation study as a feature: arms of params overrides, queued as DVC experiments at equal SuperLM compute.

    python -m autodistil.ablations plan   [--arms A ..] [--scales default large] [--seeds 0 1]   # what would run
    python -m autodistil.ablations queue  [same options]     # dvc exp run --queue, one experiment per run
    dvc queue start -j 1                                     # runs them (one at a time: both cores each)
    python -m autodistil.ablations report                    # docs/ablations.md and its pictures

An arm (configs/ablations.yaml) is a partial params file applied on top of params.yaml. Every arm is trained with
the SuperLM compute of the reference arm times the scale: the expected FLOPs of the sampled sub-networks
(:mod:`autodistil.compute`), summed over the arm's sub-spaces, set through ``superlm.max_steps``; an arm marked
``compute: none`` is not trained at all. Runs differ in ``superlm.seed``; an arm marked ``glue: true`` also
fine-tunes its students (``glue`` overrides of the config: seeds, tasks) and its experiment runs the whole
pipeline, the others stop at the ``probes`` stage. Experiments are named ``abl-<arm>-<scale>-s<seed>``; their
MLflow runs carry that name in the tag ``dvc_exp_name``.
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

from .io import InputError
from .overrides import REPLACED_WHOLE, flags

CONFIG = "configs/ablations.yaml"
NAME = re.compile(r"^abl-(?P<arm>[A-Za-z0-9_]+)-(?P<scale>[A-Za-z0-9_]+)-s(?P<seed>\d+)$")


@dataclass(frozen=True)
class Arm:
    name: str
    params: dict = field(default_factory=dict)
    compute: str = "match"  # match: the reference's SuperLM compute x scale | none: no SuperLM training
    glue: bool = False
    about: str = ""


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
            bad = sorted(set(a) - {"params", "compute", "glue", "about"})
            if not re.fullmatch(r"[A-Za-z0-9_]+", str(name)) or bad or a.get("compute", "match") not in ("match", "none"):
                raise InputError(f"{path}: arms.{name}: a name of letters, digits and _, with keys params, compute "
                                 f"(match | none), glue, about" + (f"; unknown {bad}" if bad else ""))
            arms[name] = Arm(name, a.get("params") or {}, a.get("compute", "match"), bool(a.get("glue", False)),
                             str(a.get("about", "")))
        scales = raw.get("scales") or {"default": 1}
        study = cls(raw.get("reference", next(iter(arms))), tuple(int(s) for s in raw.get("seeds") or [0]),
                    {str(k): float(v) for k, v in scales.items()}, raw.get("glue") or {}, arms)
        if study.reference not in arms or arms[study.reference].compute != "match":
            raise InputError(f"{path}: reference {study.reference!r} must be an arm with compute: match")
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
    from .partition import partition_from_params, teacher_shape
    from .train import TrainConfig

    source = params["teacher"]["source"]
    subspaces, _ = partition_from_params(params, source, where)
    dims, _ = teacher_shape(source)
    cfg = TrainConfig.from_params(dict(params["superlm"]), f"{where}: superlm")
    seq_len = int(params["prepare_corpus"]["seq_len"])
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


def plan(study: Study, base: Mapping, arms: Sequence[str] | None = None, scales: Sequence[str] | None = None,
         seeds: Sequence[int] | None = None, where: str = CONFIG) -> list[Run]:
    """Every run of the study (or of the chosen arms, scales and seeds), each with the overrides that give it the
    reference arm's compute times its scale."""
    for kind, chosen, known in (("arm", arms, study.arms), ("scale", scales, study.scales)):
        bad = [x for x in chosen or [] if x not in known]
        if bad:
            raise InputError(f"{where}: unknown {kind}(s) {', '.join(bad)}; the config has {', '.join(known)}")
    ref = study.arms[study.reference]
    ref_step, ref_steps = step_flops_of(merge(base, ref.params), f"{where}: arms.{ref.name}")
    runs = []
    for arm in (study.arms[a] for a in (arms or study.arms)):
        params = merge(base, arm.params)
        per_step, steps = step_flops_of(params, f"{where}: arms.{arm.name}")
        for scale in scales or study.scales:
            overrides = copy.deepcopy(arm.params)
            if arm.compute == "match":
                want = round(study.scales[scale] * ref_step * ref_steps / per_step)
                if want != steps:  # an arm that already has the compute keeps its params (and DVC's cache)
                    overrides = merge(overrides, {"superlm": {"max_steps": want, "max_tokens": None}})
                    steps = want
            if arm.glue:
                overrides = merge(overrides, study.glue)
            for seed in seeds if seeds is not None else study.seeds:
                run_overrides = overrides
                if seed != params["superlm"].get("seed", 0):
                    run_overrides = merge(overrides, {"superlm": {"seed": seed}})
                flops = 0.0 if arm.compute == "none" else per_step * steps
                runs.append(Run(f"abl-{arm.name}-{scale}-s{seed}", arm.name, scale, seed, run_overrides, flops,
                                None if arm.glue else "probes"))
                if arm.compute == "none":
                    break  # nothing is trained: every seed would give the same SuperLMs
            if arm.compute == "none":
                break  # no compute, so no scale either
    return runs


def queue_commands(runs: Sequence[Run], base: Mapping) -> list[list[str]]:
    """The ``dvc exp run --queue`` command of each run."""
    commands = []
    for r in runs:
        cmd = ["dvc", "exp", "run", "--queue", "-n", r.name]
        cmd += flags(r.overrides, dict(base))[0]
        commands.append(cmd + ([r.target] if r.target else []))
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
    ap.add_argument("--exp-show", help="a saved `dvc exp show --json` (default: run it, over --commits commits)")
    ap.add_argument("--commits", type=int, default=30, help="how many of HEAD's last commits to read experiments of")
    ap.add_argument("--out", default="docs/ablations.md")
    args = ap.parse_args(argv)
    try:
        study = Study.load(args.config)
        if args.command == "report":
            from .ablation_report import write_report

            shown = (json.loads(Path(args.exp_show).read_text()) if args.exp_show else json.loads(subprocess.run(
                ["dvc", "exp", "show", "--json", "-n", str(args.commits)], check=True, capture_output=True, text=True).stdout))
            write_report(study, shown, Path(args.out))
            print(f"wrote {args.out}")
            return
        base = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        runs = plan(study, base, args.arms, args.scales, args.seeds, args.config)
    except InputError as e:
        fail(str(e))
    ref = max(r.planned_flops for r in runs if r.arm == study.reference) if any(
        r.arm == study.reference for r in runs) else None
    for r, cmd in zip(runs, queue_commands(runs, base)):
        ratio = f"{r.planned_flops / ref:.3f}" if ref and r.scale == runs[0].scale else "-"
        print(f"{r.name}: {r.planned_flops / 1e12:.2f} TFLOPs planned (x{ratio} of the reference)", file=sys.stderr)
        if args.command == "queue":
            subprocess.run(cmd, check=True)
        else:
            print(" ".join(cmd))


if __name__ == "__main__":
    main()
