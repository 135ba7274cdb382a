"""Probe architectures: a fixed, task-agnostic yardstick of what SuperLM training gave its sub-networks.

The probe set is a function of the teacher and the ``probes`` params alone (never of K or the partition), so
that arms of an ablation with different partitions (K=1 against K=3) are scored on the same architectures.
It takes ``per_band`` points of the teacher-anchored lattice in each cost band (by default the three default
bands), evenly spread by exact GFLOPs. Each probe is scored with the SuperLM of the arm whose sub-space holds it
(else the smallest SuperLM it fits), on the same held-out blocks, by two measures:

- ``relation``: the paper's self-attention relation loss (KL, last layers) against the teacher, whatever loss
  the arm trained with, so that arms stay comparable;
- ``cka``: linear CKA between the student's and the teacher's final hidden states over every held-out token, a
  function-level similarity that needs no projection between widths (it is invariant to the teacher's importance
  permutation and to any rotation of either space). 1 is the teacher's own function up to an orthogonal map and a
  scale. No measure is neutral to every objective: an arm with the hidden-state term trains that very state.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .config import Params
from .space import Arch, Envelope, TeacherDims
from .yardstick import StreamingCKA


@dataclasses.dataclass(frozen=True)
class Probe:
    name: str  # <band name>-<index>, e.g. small-2
    band: str
    arch: Arch
    gflops_frac: float  # of the teacher's exact GFLOPs


def probe_set(teacher: TeacherDims, bands: Sequence[Sequence[float]] | None = None, per_band: int = 4,
              floors: Mapping[str, float] | None = None, convention: str = "stock", seq_len: int = 128,
              names: Sequence[str] | None = None) -> list[Probe]:
    """``per_band`` lattice points of each band (evenly spaced in the band's list sorted by exact GFLOPs, both
    ends included), for the teacher ``teacher``; bands default to the band partition's K=3 bands."""
    from .partition import BAND_BANDS, band_partition, default_names

    bands = [tuple(b) for b in (bands or BAND_BANDS)]
    names = list(names or (default_names(len(bands)) if len(bands) == 3 else [f"band{i}" for i in range(len(bands))]))
    if per_band < 1:
        raise ValueError(f"probes.per_band must be >= 1, got {per_band}")
    full = teacher.gflops(teacher.as_arch(), seq_len)
    probes = []
    for sub in band_partition(teacher, len(bands), names, bands, convention, floors, seq_len):
        archs = sorted(sub.candidates(teacher), key=lambda a: (teacher.gflops(a, seq_len), a))
        picks = sorted({round(i * (len(archs) - 1) / max(per_band - 1, 1)) for i in range(per_band)})
        for i, j in enumerate(picks):
            probes.append(Probe(f"{sub.name}-{i}", sub.name, archs[j], teacher.gflops(archs[j], seq_len) / full))
    return probes


def home_subspace(arch: Arch, candidates: Mapping[str, Sequence[Arch]]) -> str | None:
    """The sub-space that trains ``arch`` (one of its ``candidates``), else the one with the smallest SuperLM
    envelope (the envelope of its candidates) that holds it, else None (the arm's partition does not reach it)."""
    for name, archs in candidates.items():
        if arch in archs:
            return name
    envelopes = {n: Envelope.of(archs) for n, archs in candidates.items()}
    fitting = [n for n, env in envelopes.items() if env.contains(arch)]
    return min(fitting, key=lambda n: (envelopes[n].hidden, envelopes[n].layers, n)) if fitting else None


@torch.no_grad()
def cka_to_teacher(superlm, arch: Arch, heldout) -> float:
    """Linear CKA between ``arch``'s final hidden states and the teacher's (the targets ``heldout`` holds,
    captured at the teacher's last layer) over every held-out token."""
    from .device import mixed_precision

    was_training = superlm.training
    superlm.eval()
    cka = StreamingCKA()
    try:
        with mixed_precision(heldout.device):
            for batch, target in zip(heldout.batches, heldout.targets):
                out = superlm(batch["input_ids"], batch["attention_mask"], arch=arch, distill_layer=None)
                cka.add(out.last_hidden_state, target.hidden)
    finally:
        superlm.train(was_training)
    return cka.value()


def score_probes(probes: Sequence[Probe], scorers: Mapping[str, tuple], homes: Mapping[str, str | None],
                 yardstick=None) -> list[dict]:
    """One row per probe: its arch and cost, the sub-space whose SuperLM scored it and both measures, and with a
    :class:`autodistil.yardstick.Yardstick` its ``pairs`` and ``agreement`` scores.
    ``scorers`` maps a sub-space to ``(superlm, heldout)``; ``homes`` a probe name to its sub-space (None: not
    reached, recorded with empty measures)."""
    from .yardstick import subnet_encoder

    rows = []
    for p in probes:
        home = homes[p.name]
        row = {"probe": p.name, "band": p.band, "arch": p.arch.name, "gflops_frac": round(p.gflops_frac, 5),
               "subspace": home, "relation": None, "cka": None}
        if yardstick is not None:
            row.update(pairs=None, agreement=None)
        if home is not None:
            superlm, heldout = scorers[home]
            row["relation"] = heldout.loss(superlm, p.arch, "relation")
            row["cka"] = cka_to_teacher(superlm, p.arch, heldout)
            if yardstick is not None:
                record, _ = yardstick.score(subnet_encoder(superlm, p.arch))
                row.update(pairs=record["pairs"], agreement=record.get("agreement"))
        rows.append(row)
    return rows


def summarise(rows: Sequence[dict]) -> dict:
    """Mean of each measure over all probes and per band (probes the arm did not reach are left out and counted)."""
    def means(subset):
        scored = [r for r in subset if r["relation"] is not None]
        keys = [k for k in ("relation", "cka", "pairs", "agreement") if any(k in r for r in subset)]
        return {**{k: float(np.mean([r[k] for r in scored])) if scored else None for k in keys},
                "probes": len(scored), "unreached": len(subset) - len(scored)}

    bands = list(dict.fromkeys(r["band"] for r in rows))
    return {"all": means(rows), "by_band": {b: means([r for r in rows if r["band"] == b]) for b in bands}}


# ------------------------------------------------------------------------------------------ the stage
@dataclasses.dataclass
class ProbesPlan:
    """The probes stage as params.yaml asks for it, every input checked and no weights loaded yet."""

    params: Params
    subspaces: dict  # name -> autodistil.space.SubSpace: the partition, one trained SuperLM each
    dims: TeacherDims  # the teacher the partition was made for
    probes: list[Probe]
    blocks: object  # the held-out blocks scored (probes.eval_blocks of them)
    superlm: Path  # models/superlm: <subspace>/superlm.pt each
    partition: str = "partition/subspaces.json"

    @property
    def logged(self) -> dict:
        """The MLflow params of the probes run."""
        from .config import plain

        return {"teacher": {"source": self.params.teacher.source}, "probes": plain(self.params.probes)}


def plan_probes(params: Params, subspaces: str, superlm: str | Path, corpus: str | Path,
                src: str = "params.yaml") -> ProbesPlan:
    """The probe set of params' ``probes`` section for the teacher of the partition file ``subspaces`` (the teacher
    and the section only, whatever the partition), every sub-space's trained SuperLM in ``superlm`` and enough
    held-out blocks in ``corpus``, checked before anything heavy runs; a problem is an :class:`InputError`."""
    from .corpus import load_blocks
    from .io import InputError
    from .partition import load_subspaces, load_teacher_shape
    from .space import SearchSpaceError

    p = params.probes
    subs = load_subspaces(subspaces)
    dims, _ = load_teacher_shape(subspaces)
    try:  # the probe set: the teacher and this section only, whatever the partition
        probes = probe_set(dims, p.bands, p.per_band, p.floors, p.convention, p.seq_len)
    except (SearchSpaceError, ValueError, TypeError) as e:
        raise InputError(f"{src}: probes: {e}") from None
    missing = [n for n in subs if not (Path(superlm) / n / "superlm.pt").is_file()]
    if missing:
        raise InputError(f"{superlm}: no trained SuperLM for {', '.join(missing)} (run `dvc repro superlm`)")
    blocks = load_blocks(corpus, "heldout")
    if len(blocks) < p.eval_blocks:
        raise InputError(f"{corpus}/heldout.npy has {len(blocks)} blocks, probes.eval_blocks asks for "
                         f"{p.eval_blocks}")
    return ProbesPlan(params, subs, dims, probes, blocks[:p.eval_blocks], Path(superlm), str(subspaces))


def probes_job(plan: ProbesPlan, metrics_path: str | Path):
    """The probes stage's work: each probe scored with the SuperLM of its home sub-space (:func:`home_subspace`)
    by its held-out relation loss (KL, the same yardstick for every arm) and its CKA to the teacher; every probe
    and the means over all probes and per band as a :class:`autodistil.record.Record`."""
    import time

    from .device import resolve_device
    from .distill import DistillSpec, HeldOut
    from .record import Record
    from .search import load_superlm_and_teacher

    t0 = time.perf_counter()
    p, source = plan.params.probes, plan.params.teacher.source
    device = resolve_device(p.device)
    candidates = {n: set(sub.candidates(plan.dims)) for n, sub in plan.subspaces.items()}  # each SuperLM's envelope
    homes = {pr.name: home_subspace(pr.arch, candidates) for pr in plan.probes}
    scorers = {}
    for name in sorted({h for h in homes.values() if h is not None}):
        superlm, teacher = load_superlm_and_teacher(plan.superlm / name, source, plan.dims, [], device, plan.partition)
        spec = DistillSpec(loss="kl", relation_heads=superlm.config.relation_heads)  # the same yardstick for all
        scorers[name] = (superlm, HeldOut(teacher, plan.blocks, spec, p.batch_size, device))
    rows = score_probes(plan.probes, scorers, homes, probe_yardstick(plan.params, plan.blocks, device))
    summary = summarise(rows)
    metrics = {"probes": rows, **summary, "heldout_blocks": len(plan.blocks),
               "seconds": round(time.perf_counter() - t0, 1)}
    measures = ("relation", "cka", "pairs", "agreement")
    logged = {"": {k: summary["all"][k] for k in measures},
              **{f"{band}.": {k: m[k] for k in measures} for band, m in summary["by_band"].items()}}
    by_band = {b: {k: m[k] for k in measures} for b, m in summary["by_band"].items()}
    return Record(metrics, metrics_path, logged=logged, summary={**{k: summary["all"][k] for k in measures},
                                                                 "by_band": by_band})


def probe_yardstick(params: Params, blocks, device):
    """The yardstick of params.yaml around the unpermuted teacher (its measures ignore the importance order)."""
    from transformers import AutoTokenizer

    from .pooling import resolve_pooling
    from .teacher import load_teacher, tokenizer_source
    from .yardstick import Yardstick, hf_encoder, load_pair_sets

    y, source = params.yardstick, params.teacher.source
    sets = load_pair_sets(params.prepare_glue.source, y.tasks, y.splits, y.max_pairs, y.seed, params.prepare_glue.hub)
    return Yardstick(sets, AutoTokenizer.from_pretrained(tokenizer_source(source)),
                     resolve_pooling(params.finetune.pooling, source), y.max_length, y.batch_size, 0, y.seed,
                     None, hf_encoder(load_teacher(source, device)), device)
