"""SuperLM training: sandwich-sampled sub-networks distilled from a frozen teacher, resumable, DDP-ready.

One step = one global batch of corpus blocks. The teacher runs once on it; each sampled sub-network
runs and back-propagates its relation loss; gradients accumulate; the global grad norm is clipped; one
AdamW step. Under DDP every rank draws the same sub-networks (the draw is seeded by the step), takes
its shard of the global batch, and gradients are all-reduced only on the last backward of the step.

Everything a step depends on is a function of the step number (data order, sub-network draw) or is in
the checkpoint (weights, optimiser, scheduler), so a resumed run ends where an uninterrupted one would, on
any number of ranks and nodes and with any micro-batch size: the checkpoint's configuration leaves them out.
(Dropout masks are drawn per rank and step, so with dropout on, a run on another rank count is an equally
valid draw rather than the same numbers.) Rank 0 reads the checkpoint and broadcasts it: the ranks of other
nodes need no shared filesystem.

At the paper's scale a step must not wait on the host: the data order costs O(batch) (:class:`DataOrder`),
corpus blocks need no mask, the teacher's relations are computed once per micro-batch for all sampled
students, losses accumulate on the device, and the only host syncs are on logging steps and the only
barrier at checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .config import DistillSpec, TrainConfig
from .cost import exact_gflops
from .device import mixed_precision, resolve_device
from .distill import HeldOut, blocks_to_batch, objective, student_losses
from .importance import Importance, Order, apply_order, calibration_blocks, measure_importance
from .io import InputError
from .space import Arch, Envelope, TeacherDims
from .checkpoint import load_checkpoint, run_folder, save_checkpoint
from .relations import teacher_relations
from .sampling import DataOrder, SubnetSampler
from .family import family_of_config
from .segments import pair_splits
from .superlm import SuperLM, SuperLMConfig
from .targets import teacher_targets
from .throughput import Throughput, peak_tflops

# settings that do not change the trained weights (logging, hardware): a checkpoint stays valid when only they
# change; the number of ranks and nodes is not part of the configuration either
NOT_WEIGHTS = ("checkpoint_every", "log_every", "eval_blocks", "eval_batch_size", "peak_tflops", "device",
               "micro_batch_size")
# -- distributed set-up -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def master(self) -> bool:
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) % self.world:
            raise InputError(f"superlm.batch_size {len(rows)} is not divisible by the {self.world} ranks")
        per = len(rows) // self.world
        return rows[self.rank * per:(self.rank + 1) * per]


def init_distributed(device_kind: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(setting: str, d: Dist) -> torch.device:
    setting = resolve_device(setting)
    if setting == "cuda":
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device(setting)


# -- optimiser ----------------------------------------------------------------------------------------------
def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm parameters."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def make_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, cfg.warmup(total_steps), total_steps)


# -- the loop -----------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    steps: int
    resumed_from: int
    history: list  # one dict per logged step
    seconds: float
    tokens_per_second: float
    checkpoint_dir: Path  # this configuration's checkpoint folder (the stage clears it once the model is saved)


def run_config(cfg: TrainConfig, superlm: SuperLM, sampler: SubnetSampler, extra: dict | None = None) -> dict:
    """What the trained weights depend on besides the data (and ``extra``, e.g. the teacher's importance order):
    a checkpoint resumes only under the same."""
    config = {**{k: v for k, v in asdict(cfg).items() if k not in NOT_WEIGHTS},
              "superlm": superlm.config.to_dict(), "candidates": sorted(a.name for a in sampler.candidates),
              **(extra or {})}
    return json.loads(json.dumps(config))  # the checkpoint compares plain JSON values


def resume_state(folder: Path, config: dict, d: Dist) -> dict | None:
    """Rank 0 reads the checkpoint and every other rank receives it: no rank but 0 touches the disk."""
    state = load_checkpoint(folder, config) if d.master else None
    if d.world > 1:
        box = [state]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    return state


def resume(folder: Path, config: dict, d: Dist, superlm: SuperLM, optimizer, scheduler) -> tuple[int, list]:
    """Load the checkpoint of ``config`` into the model, optimiser and scheduler, if there is one: ``(its step, its
    history)``, else ``(0, [])``."""
    state = resume_state(folder, config, d)
    if state is None:
        return 0, []
    superlm.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["step"], state["history"]


def micro_batches(rows: np.ndarray, size: int | None) -> list[np.ndarray]:
    size = size or len(rows)
    return [rows[i:i + size] for i in range(0, len(rows), size)]


@dataclass(frozen=True)
class StepInputs:
    """What every step of one training reads: the model (DDP-wrapped or not), the frozen teacher, the blocks and
    the objective."""

    model: nn.Module
    teacher: nn.Module
    blocks: np.ndarray
    spec: DistillSpec
    cfg: TrainConfig
    d: Dist
    device: torch.device
    family: Any  # the teacher's family: its pair format


def sandwich_step(inputs: StepInputs, step: int, rows: np.ndarray, archs: Sequence[Arch]) -> torch.Tensor:
    """The gradients of one optimiser step: per micro-batch, the teacher's targets once, then each sampled
    sub-network's loss (scaled to its share of the step's rows) back-propagated into the shared weights. Under DDP
    all but the last backward skip the all-reduce. Returns the sub-networks' losses, summed over micro-batches, on
    the device (read only on logging steps)."""
    cfg, spec, model, seq_len = inputs.cfg, inputs.spec, inputs.model, inputs.blocks.shape[1]
    losses = torch.zeros(len(archs), device=inputs.device)
    micro = micro_batches(rows, cfg.micro_batch_size)
    for m, micro_rows in enumerate(micro):
        splits = pair_splits(micro_rows, cfg.seed, step, seq_len, inputs.family.pair_separators) if (
            cfg.segments == "pairs") else None
        # unpadded blocks: no mask anywhere
        batch = blocks_to_batch(inputs.blocks[micro_rows], inputs.device, splits, inputs.family)
        with mixed_precision(inputs.device):  # the teacher's side once per (micro-)batch, for every sub-network
            target = teacher_targets(inputs.teacher, batch["input_ids"], None, spec.teacher_layer,
                                     token_type_ids=batch.get("token_type_ids"), hidden=spec.uses_hidden)
            teacher_rel = teacher_relations(target.qkv, None, spec.relation_heads, spec.loss)
        for i, arch in enumerate(archs):
            last = m == len(micro) - 1 and i == len(archs) - 1
            ctx = model.no_sync() if (inputs.d.world > 1 and not last) else contextlib.nullcontext()
            with ctx:
                with mixed_precision(inputs.device):
                    terms = student_losses(model, arch, batch, target, spec, teacher_rel=teacher_rel)
                    loss = objective(terms, spec) * (len(micro_rows) / len(rows))
                loss.backward()
            losses[i] += loss.detach()
    return losses


def step_record(step: int, lr: float, grad_norm: torch.Tensor, losses: torch.Tensor, cfg: TrainConfig,
                meter: Throughput, d: Dist) -> dict:
    """A logging step's record (the only host sync of a step): losses averaged over ranks, the sandwich's ends,
    throughput since the last record."""
    if d.world > 1:
        dist.all_reduce(losses)
        losses /= d.world
    record = {"step": step, "lr": lr, "grad_norm": float(grad_norm), "loss_mean": float(losses.mean()),
              "loss_largest": float(losses[0]) if cfg.sampling == "sandwich" else None,
              "loss_smallest": float(losses[-1]) if cfg.sampling == "sandwich" else None, **meter.window()}
    return {k: v for k, v in record.items() if v is not None}


def train_superlm(
    superlm: SuperLM,
    teacher: nn.Module,
    blocks: np.ndarray,
    sampler: SubnetSampler,
    cfg: TrainConfig,
    checkpoint_dir: Path,
    d: Dist = Dist(),
    device: torch.device = torch.device("cpu"),
    log: Callable[[dict, int], None] | None = None,
    progress: bool = True,
    extra_config: dict | None = None,
) -> TrainResult:
    """Train ``superlm`` in place, resuming from the checkpoint of the same configuration, which lives in its own
    folder under ``checkpoint_dir`` (a run of another configuration never overwrites it). ``extra_config``: what
    else the weights depend on (the teacher's importance order: measured again on a resume, on other hardware a
    near-tie could order it otherwise, and then the run starts afresh rather than resume against another teacher).

    ``log(record, step)`` receives the logged metrics every ``cfg.log_every`` steps (rank 0 only).
    """
    from tqdm.auto import tqdm

    seq_len = blocks.shape[1]
    total = cfg.total_steps(seq_len)
    spec = cfg.spec(superlm.config.relation_heads)
    config = run_config(cfg, superlm, sampler, extra_config)
    folder = run_folder(checkpoint_dir, config)

    superlm.to(device).train()
    teacher.to(device).eval()
    optimizer = make_optimizer(superlm, cfg)
    scheduler = make_scheduler(optimizer, cfg, total)
    start, history = resume(folder, config, d, superlm, optimizer, scheduler)
    model: nn.Module = superlm
    if d.world > 1:
        model = nn.parallel.DistributedDataParallel(
            superlm, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    inputs = StepInputs(model, teacher, blocks, spec, cfg, d, device, family_of_config(teacher.config))
    meter = Throughput(TeacherDims.from_config(teacher.config).as_arch(), seq_len, spec.uses_hidden,
                       peak_tflops(cfg.peak_tflops, device), d.world)
    order = DataOrder(len(blocks), cfg.batch_size, cfg.seed)

    bar = tqdm(range(start, total), initial=start, total=total, desc="superlm", disable=not (progress and d.master))
    t0, tokens_done = time.perf_counter(), 0
    for step in bar:
        # dropout masks are a function of (seed, step, rank): a resumed run draws what the uninterrupted one drew
        torch.manual_seed(hash((cfg.seed, step, d.rank)))
        rows = np.sort(d.shard(order.rows(step)))
        archs = sampler(step)
        losses = sandwich_step(inputs, step, rows, archs)
        grad_norm = torch.nn.utils.clip_grad_norm_(superlm.parameters(), cfg.grad_clip or math.inf)  # inf: norm only
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        tokens_done += cfg.batch_size * seq_len
        meter.add(archs, cfg.batch_size * seq_len)
        if (step + 1) % cfg.log_every == 0 or step + 1 == total:
            record = step_record(step + 1, lr, grad_norm, losses, cfg, meter, d)
            history.append(record)
            bar.set_postfix(loss=f"{record['loss_mean']:.4f}", tok_s=f"{record['tokens_per_second']:.0f}")
            if log and d.master:
                log(record, step + 1)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
            if d.master:
                save_checkpoint(folder, step + 1, superlm, optimizer, scheduler, history, config)
            if d.world > 1:  # the only barrier: no rank runs ahead of a checkpoint being written
                dist.barrier()
    bar.close()
    seconds = time.perf_counter() - t0
    return TrainResult(total, start, history, seconds, tokens_done / max(seconds, 1e-9), folder)


def superlm_from_teacher(teacher: nn.Module, candidates: Sequence[Arch], cfg: TrainConfig, blocks: np.ndarray,
                         d: Dist = Dist(), provenance: dict | None = None, where: str = "params.yaml: superlm",
                         subspace: str = "the sub-space") -> tuple[SuperLM, Order | None, Importance | None]:
    """The SuperLM of ``candidates``, sliced from the teacher: with ``init_order: importance`` the teacher is first
    permuted (in place: the distillation targets come from the same permuted teacher) so that leading slices keep
    its most important channels, heads and neurons, measured on calibration blocks of ``blocks``; the ``importance``
    depth rule ranks layers from the same measurement. Under DDP every rank slices as rank 0 measured. Returns the
    SuperLM (on the teacher's device), the permutation and the measurement (None when not used)."""
    dims = TeacherDims.from_config(teacher.config)
    shallowest = min(a.layers for a in candidates)
    if not -dims.layers <= cfg.teacher_layer < dims.layers:
        raise InputError(f"{where}.teacher_layer {cfg.teacher_layer} is outside the teacher's {dims.layers} layers")
    if not -shallowest <= cfg.student_layer < shallowest:
        raise InputError(f"{where}.student_layer {cfg.student_layer} is outside the {shallowest} layers of "
                         f"{subspace}'s shallowest candidate")
    superlm_cfg = SuperLMConfig.from_teacher_config(
        teacher.config, Envelope.of(candidates), depth_rule=cfg.depth_rule, hidden_dropout=cfg.dropout,
        attention_dropout=cfg.dropout, provenance=provenance or {})
    order = importance = ranking = None
    if cfg.init_order == "importance" or cfg.depth_rule == "importance":
        importance = measure_importance(teacher, calibration_blocks(blocks, cfg.calibration_blocks, cfg.seed))
        if d.world > 1:  # every rank slices the same way: rank 0's measurement wins (GPU sums may differ in ties)
            shared = [importance]
            dist.broadcast_object_list(shared, src=0)
            importance = shared[0]
        ranking = importance.layer_ranking()
    if cfg.init_order == "importance":
        order = Order.of(importance)
        apply_order(teacher, order)
    return SuperLM.from_teacher(teacher, superlm_cfg, ranking), order, importance


def probe_candidates(candidates: Sequence[Arch], largest: Arch, smallest: Arch) -> dict[str, Arch]:
    """The sub-networks whose held-out loss is reported before and after training."""
    by_size = sorted(candidates, key=lambda a: (exact_gflops(a), a))
    return {"largest": largest, "middle": by_size[len(by_size) // 2], "smallest": smallest}


def heldout_report(superlm: SuperLM, heldout: HeldOut, probes: dict[str, Arch]) -> dict[str, float]:
    """The held-out relation loss of each probe (the paper's figure, comparable across objectives)."""
    return {name: heldout.loss(superlm, arch, "relation") for name, arch in probes.items()}
