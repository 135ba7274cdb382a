"""One SuperLM training job, as the superlm@<subspace> stage runs it: the teacher, the SuperLM sliced from it
for one sub-space, the corpus blocks, the sub-network sampler and the probes whose held-out loss is reported
before and after training. Under torchrun every rank builds the same job (the teacher's importance order is
rank 0's) and trains its shard; only rank 0 evaluates and writes (:func:`train_and_report`, the stage's work)."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .family import family_of_config
from .importance import ORDER_FILE, Importance, Order
from .io import InputError, atomic_path
from .sampling import SubnetSampler
from .space import Arch, SearchSpaceError, SubSpace, TeacherDims
from .superlm import SuperLM
from .train import (Dist, TrainConfig, TrainResult, heldout_report, init_distributed, pick_device, probe_candidates,
                    superlm_from_teacher, train_superlm)


def data_fingerprint(corpus: Path) -> str:
    """Identifies the training data, so that a checkpoint is never resumed on other blocks."""
    h = hashlib.sha256((corpus / "meta.json").read_bytes())
    h.update(str((corpus / "train.npy").stat().st_size).encode())
    return h.hexdigest()[:16]


@dataclass
class SuperLMJob:
    cfg: TrainConfig
    superlm: SuperLM
    teacher: nn.Module  # frozen; permuted like the SuperLM when init_order is importance
    blocks: np.ndarray  # training blocks
    heldout_blocks: np.ndarray
    sampler: SubnetSampler
    probes: dict[str, Arch]
    candidates: list[Arch]
    order: Order | None
    importance: Importance | None
    dist: Dist
    device: torch.device
    result: TrainResult | None = None  # set by train(): its checkpoint folder is cleared once the run is recorded

    @classmethod
    def build(cls, cfg: TrainConfig, source: str, sub: SubSpace, corpus: Path, provenance: dict,
              where: str = "params.yaml: superlm", partition: str = "partition/subspaces.json") -> "SuperLMJob":
        """The job for sub-space ``sub`` of the teacher ``source`` on the blocks of ``corpus``; joins the
        process group first when launched by torchrun."""
        from .corpus import load_blocks
        from .teacher import load_teacher

        blocks, heldout_blocks = load_blocks(corpus, "train"), load_blocks(corpus, "heldout")
        d = init_distributed("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
        device = pick_device(cfg.device, d)
        teacher = load_teacher(source, device)
        dims = TeacherDims.from_config(teacher.config)
        family = family_of_config(teacher.config)
        positions = blocks.shape[1] + family.position_offset(teacher.config)  # RoBERTa's start after padding
        if positions > teacher.config.max_position_embeddings:
            raise InputError(f"{corpus}: blocks of {blocks.shape[1]} tokens need {positions} positions, the teacher "
                             f"{source!r} has {teacher.config.max_position_embeddings}")
        if cfg.segments == "pairs":  # checked before the importance pass, not at the first step
            if blocks.shape[1] < 4 + family.pair_separators:
                raise InputError(f"{where}.segments: pairs need corpus blocks of at least "
                                 f"{4 + family.pair_separators} tokens, {corpus} has {blocks.shape[1]}")
            if family.segment_types and getattr(teacher.config, "type_vocab_size", 0) < 2:
                raise InputError(f"{where}.segments: pairs need a teacher with two token types, {source!r} has "
                                 f"{getattr(teacher.config, 'type_vocab_size', 0)}")
        try:
            candidates = sub.candidates(dims)
        except SearchSpaceError as e:
            raise InputError(f"{partition}: {e}") from None
        largest, smallest = sub.largest(dims), sub.smallest(dims)
        superlm, order, importance = superlm_from_teacher(teacher, candidates, cfg, blocks, d, provenance, where,
                                                          f"sub-space {sub.name!r}")
        return cls(cfg, superlm.to(device), teacher, blocks, heldout_blocks,
                   SubnetSampler(candidates, largest, smallest, cfg.sampling, cfg.num_random, cfg.seed),
                   probe_candidates(candidates, largest, smallest), candidates, order, importance, d, device)

    def train(self, checkpoint_dir: Path, log: Callable[[dict, int], None] | None = None) -> TrainResult:
        order = {"teacher_order": self.order.digest()} if self.order is not None else None
        self.result = train_superlm(self.superlm, self.teacher, self.blocks, self.sampler, self.cfg, checkpoint_dir,
                                    self.dist, self.device, log, extra_config=order)
        return self.result

    def heldout_report(self) -> dict[str, float]:
        """The probes' held-out relation loss now. The teacher's targets are computed for each call, not kept: on
        a GPU they would hold ``eval_blocks`` x heads x T^2 relation maps in device memory all through training."""
        from .distill import HeldOut

        heldout = HeldOut(self.teacher, self.heldout_blocks[: self.cfg.eval_blocks],
                          self.cfg.spec(self.superlm.config.relation_heads), self.cfg.eval_batch_size, self.device)
        return heldout_report(self.superlm, heldout, self.probes)

    def save(self, folder: Path) -> None:
        """The trained SuperLM and, when it was sliced from the permuted teacher, the permutation (the search
        distils against the same permuted teacher)."""
        self.superlm.to("cpu").save(folder)
        if self.order is not None:
            torch.save({**self.order.to_dict(), "importance": vars(self.importance)}, Path(folder) / ORDER_FILE)


def write_curve(path: Path, history: list[dict]) -> None:
    """The loss curve (one row per logged step) as CSV, atomically."""
    keys = ["step", "loss_mean", "loss_largest", "loss_smallest", "lr", "grad_norm", "tokens_per_second", "mfu"]
    keys = [k for k in keys if any(k in r for r in history)]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def train_and_report(job: SuperLMJob, subspace: str, checkpoint_dir: Path, out_dir: Path, metrics_path: Path,
                     curve_path: Path):
    """Rank 0's part of the superlm@<subspace> stage, inside its MLflow run: the probes' held-out relation loss
    before training (logged as ``heldout_before_<probe>``), the training (each logged step to the run; checkpoints
    under ``checkpoint_dir``), the held-out loss after (``heldout_after_<probe>``), the SuperLM saved to
    ``out_dir`` and the loss curve to ``curve_path`` (CSV); the metrics, the curve and its picture as a
    :class:`autodistil.record.Record`. The checkpoints stay: the caller clears ``job.result.checkpoint_dir`` once
    the run is recorded."""
    import mlflow

    from .compute import sampled_flops
    from .plots import loss_curve_png
    from .record import Record
    from .tracking import log_step

    cfg = job.cfg
    before = job.heldout_report()
    mlflow.log_metrics({f"heldout_before_{k}": v for k, v in before.items()})
    result = job.train(checkpoint_dir, log_step)
    after = job.heldout_report()
    mlflow.log_metrics({f"heldout_after_{k}": v for k, v in after.items()})

    with atomic_path(out_dir, is_dir=True) as tmp:
        job.save(tmp)
    write_curve(curve_path, result.history)
    metrics = {
        "subspace": subspace,
        "candidates": len(job.candidates),
        "probes": {k: a.name for k, a in job.probes.items()},
        "heldout_loss_before": before,
        "heldout_loss_after": after,
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "tokens": result.steps * cfg.batch_size * job.blocks.shape[1],
        # what the sampled sub-networks cost to train (forward + backward): the unit ablations hold equal
        "train_flops": sampled_flops(job.sampler, result.steps, cfg.batch_size, job.blocks.shape[1],
                                     cfg.hidden_weight > 0),
        "train_seconds": round(result.seconds, 1),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "world_size": job.dist.world,
        "device": str(job.device),
    }
    return Record(metrics, metrics_path, logged={}, artifacts=[curve_path],
                  figures={f"superlm_{subspace}.png":  # the curve as a picture, titled with its sub-space
                           lambda png: loss_curve_png(result.history, png, subspace, f"relation {cfg.loss}")},
                  summary={"heldout_loss_before": before, "heldout_loss_after": after,
                           "tokens_per_second": metrics["tokens_per_second"]})
