"""SuperLM training: sandwich-sampled sub-networks distilled from a frozen teacher, resumable, DDP-ready.

One step = one global batch of corpus blocks. The teacher runs once on it; each sampled sub-network
runs and back-propagates its relation loss; gradients accumulate; the global grad norm is clipped; one
AdamW step. Under DDP every rank draws the same sub-networks (the draw is seeded by the step), takes
its shard of the global batch, and gradients are all-reduced only on the last backward of the step.

Everything a step depends on is a function of the step number (data order, sub-network draw) or is in
the checkpoint (weights, optimiser, scheduler, RNG), so a resumed run ends where an uninterrupted one
would.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .cost import exact_gflops
from .device import DEVICES, resolve_device
from .distill import DistillSpec, HeldOut, blocks_to_batch, student_loss
from .io import InputError, atomic_path
from .space import DEPTH_RULES, Arch, TeacherDims
from .superlm import SuperLM
from .teacher import teacher_targets

SAMPLING = ("sandwich", "uniform")
INIT_ORDERS = ("importance", "leading")


@dataclass(frozen=True)
class TrainConfig:
    """The ``superlm`` section of params.yaml."""

    loss: str = "kl"
    teacher_layer: int = -1
    student_layer: int = -1
    hidden_weight: float = 0.0  # weight of the hidden-state term (0: the paper's relation loss alone)
    init_order: str = "importance"  # importance (permute the teacher before slicing) | leading (the paper)
    calibration_blocks: int = 64  # corpus blocks the importance is measured on
    sampling: str = "sandwich"  # sandwich: largest + smallest + n random | uniform: n random
    num_random: int = 2
    batch_size: int = 32  # global sequences per step (all ranks together)
    micro_batch_size: int | None = None  # per-rank sequences per forward (gradient accumulation); None: all
    max_steps: int | None = None  # budget: max_steps, or else max_tokens
    max_tokens: int | None = None
    lr: float = 4e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 0
    grad_clip: float = 1.0
    dropout: float = 0.1
    depth_rule: str = "strided"  # strided | first_k | importance (block importance of the teacher's layers)
    seed: int = 0
    checkpoint_every: int = 50
    log_every: int = 5
    eval_blocks: int = 128
    eval_batch_size: int = 32
    device: str = "auto"  # auto: CUDA with bf16 autocast when present, else CPU
    peak_tflops: float | None = None  # for the MFU estimate; None: a table for known GPUs, else no MFU

    @classmethod
    def from_params(cls, p: dict, where: str = "params.yaml: superlm") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(p) - known)
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}")
        try:  # DVC's `-S` writes small floats as 4e-05, which YAML 1.1 reads back as a string
            cfg = cls(**{k: _coerce(k, v, cls.__dataclass_fields__[k].type) for k, v in p.items()})
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: {e}") from None
        if cfg.sampling not in SAMPLING:
            raise InputError(f"{where}.sampling: expected one of {SAMPLING}, got {cfg.sampling!r}")
        if cfg.loss not in ("kl", "mse"):
            raise InputError(f"{where}.loss: expected 'kl' or 'mse', got {cfg.loss!r}")
        if (cfg.max_steps is None) == (cfg.max_tokens is None):
            raise InputError(f"{where}: set exactly one of max_steps and max_tokens")
        if cfg.init_order not in INIT_ORDERS:
            raise InputError(f"{where}.init_order: expected one of {INIT_ORDERS}, got {cfg.init_order!r}")
        if cfg.hidden_weight < 0:
            raise InputError(f"{where}.hidden_weight: expected a number >= 0, got {cfg.hidden_weight}")
        if cfg.depth_rule not in DEPTH_RULES:
            raise InputError(f"{where}.depth_rule: expected one of {DEPTH_RULES}, got {cfg.depth_rule!r}")
        if cfg.device not in DEVICES:
            raise InputError(f"{where}.device: expected 'auto', 'cpu' or 'cuda', got {cfg.device!r}")
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise InputError(f"{where}.device is 'cuda' but no CUDA device is available")
        for key in ("checkpoint_every", "log_every", "eval_blocks", "eval_batch_size", "calibration_blocks"):
            if getattr(cfg, key) < 1:
                raise InputError(f"{where}.{key}: expected a positive integer, got {getattr(cfg, key)}")
        if cfg.micro_batch_size is not None and cfg.micro_batch_size < 1:
            raise InputError(f"{where}.micro_batch_size: expected a positive integer or null")
        if cfg.batch_size < 1 or cfg.num_random < 0 or (cfg.sampling == "uniform" and cfg.num_random < 1):
            raise InputError(f"{where}: batch_size must be >= 1 and num_random >= 0 (>= 1 for uniform sampling)")
        return cfg

    def total_steps(self, seq_len: int) -> int:
        steps = self.max_steps if self.max_steps is not None else self.max_tokens // (self.batch_size * seq_len)
        if steps < 1:
            raise InputError(f"superlm budget gives {steps} steps (max_tokens {self.max_tokens}, batch "
                             f"{self.batch_size} x {seq_len} tokens)")
        return int(steps)

    def spec(self, relation_heads: int) -> DistillSpec:
        return DistillSpec(self.loss, self.teacher_layer, self.student_layer, relation_heads, self.hidden_weight)


def _coerce(key: str, value, annotation: str):
    if value is None or annotation == "str":
        return value
    if key == "betas":
        return tuple(float(b) for b in value)
    if annotation.startswith("int"):
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(float(value))
    if annotation.startswith("float"):
        return float(value)
    return value


# -- what each step sees: a pure function of the step number ----------------------------------------------
class SubnetSampler:
    """Sub-networks of a step, drawn from ``random.Random(seed, step)`` so that every rank agrees."""

    def __init__(self, candidates: Sequence[Arch], largest: Arch, smallest: Arch, mode: str, num_random: int,
                 seed: int):
        self.candidates, self.largest, self.smallest = list(candidates), largest, smallest
        self.mode, self.num_random, self.seed = mode, num_random, seed

    def __call__(self, step: int) -> list[Arch]:
        rng = random.Random(self.seed * 1_000_003 + step)
        if self.mode == "uniform":
            return rng.sample(self.candidates, min(self.num_random, len(self.candidates)))
        others = [a for a in self.candidates if a not in (self.largest, self.smallest)]
        middle = rng.sample(others, min(self.num_random, len(others)))
        ends = [self.largest] if self.largest == self.smallest else [self.largest, self.smallest]
        return [ends[0], *middle, *ends[1:]]


def global_batch_rows(step: int, batch_size: int, n_blocks: int, seed: int) -> np.ndarray:
    """Block indices of step ``step``: epochs of seeded permutations, read in order."""
    start = step * batch_size
    rows = []
    while len(rows) < batch_size:
        epoch, offset = divmod(start + len(rows), n_blocks)
        perm = np.random.default_rng([seed, epoch]).permutation(n_blocks)
        rows.extend(perm[offset: offset + batch_size - len(rows)].tolist())
    return np.asarray(rows)


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


GPU_PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0}


def peak_tflops(cfg: TrainConfig, device: torch.device) -> float | None:
    if cfg.peak_tflops is not None:
        return cfg.peak_tflops
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v for k, v in GPU_PEAK_BF16_TFLOPS.items() if k in name), None)
    return None


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

    return get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, total_steps)


# -- checkpoints --------------------------------------------------------------------------------------------
CHECKPOINT = "last.pt"
PREVIOUS = "previous.pt"  # the one before: what a resume falls back on when the last is unreadable
# settings that do not change the trained weights: a checkpoint stays valid when only they change
LOGGING_ONLY = ("checkpoint_every", "log_every", "eval_blocks", "eval_batch_size", "peak_tflops", "device")


def save_checkpoint(directory: Path, step: int, model, optimizer, scheduler, history: list, config: dict) -> None:
    """Write ``last.pt`` atomically; the checkpoint it replaces becomes ``previous.pt``."""
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "history": history,
        "config": config,
    }
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / CHECKPOINT) as tmp:
        torch.save(state, tmp)
        if (directory / CHECKPOINT).is_file():
            os.replace(directory / CHECKPOINT, directory / PREVIOUS)


def load_checkpoint(directory: Path, config: dict) -> dict | None:
    """The newest readable checkpoint of a run with the same configuration, else None (starting afresh).

    A checkpoint that cannot be read (truncated, corrupt) or holds no complete state is skipped with a
    warning for the previous one; one of another configuration is ignored, noisily.
    """
    for name in (CHECKPOINT, PREVIOUS):
        path = directory / name
        if not path.is_file():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            missing = [k for k in ("step", "model", "optimizer", "scheduler", "rng", "history") if k not in state]
            if missing:
                raise ValueError(f"no {', '.join(missing)}")
        except Exception as e:  # noqa: BLE001 - any unreadable file is skipped, never trusted
            print(f"superlm: warning: {path} is unreadable ({type(e).__name__}: {str(e)[:200]}); "
                  f"{'trying ' + PREVIOUS if name == CHECKPOINT else 'starting afresh'}", file=sys.stderr)
            continue
        if state.get("config") != config:
            old = state.get("config") or {}
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            print(f"superlm: ignoring {path} (a run with other settings: {', '.join(changed)}); starting afresh",
                  file=sys.stderr)
            return None
        if name == PREVIOUS:
            print(f"superlm: resuming from {path} (step {state['step']})", file=sys.stderr)
        return state
    return None


def clear_checkpoints(directory: Path) -> None:
    """A finished run's checkpoints go: the trained model is the output now."""
    for name in (CHECKPOINT, PREVIOUS):
        (directory / name).unlink(missing_ok=True)


def restore_rng(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


# -- the loop -----------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    steps: int
    resumed_from: int
    history: list  # one dict per logged step
    seconds: float
    tokens_per_second: float


def _macs_to_distilled_layer(arch: Arch, seq_len: int, whole_layer: bool = False) -> float:
    """Multiply-accumulates per sequence of a training forward that stops at the last layer's Q/K/V (or,
    with ``whole_layer``, after that layer: the hidden-state term needs its output)."""
    full = exact_gflops(arch, seq_len) * 1e9 - arch.hidden ** 2  # no pooler
    if whole_layer:
        return full
    last_layer_rest = full / arch.layers - 3 * seq_len * arch.hidden * arch.attention_width
    return full - last_layer_rest


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
) -> TrainResult:
    """Train ``superlm`` in place, resuming from ``checkpoint_dir`` when it holds a run of the same config.

    ``log(record, step)`` receives the logged metrics every ``cfg.log_every`` steps (rank 0 only).
    """
    from tqdm.auto import tqdm

    seq_len = blocks.shape[1]
    total = cfg.total_steps(seq_len)
    spec = cfg.spec(superlm.config.relation_heads)
    run_config = {**{k: v for k, v in asdict(cfg).items() if k not in LOGGING_ONLY}, "world": d.world,
                  "superlm": superlm.config.to_dict(), "candidates": sorted(a.name for a in sampler.candidates)}
    run_config = json.loads(json.dumps(run_config))  # the checkpoint compares plain JSON values

    superlm.to(device).train()
    teacher.to(device).eval()
    optimizer = make_optimizer(superlm, cfg)
    scheduler = make_scheduler(optimizer, cfg, total)
    start, history = 0, []
    state = load_checkpoint(checkpoint_dir, run_config)
    if state is not None:
        superlm.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
        start, history = state["step"], state["history"]
    model: nn.Module = superlm
    if d.world > 1:
        model = nn.parallel.DistributedDataParallel(
            superlm, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    peak = peak_tflops(cfg, device)
    teacher_macs = _macs_to_distilled_layer(TeacherDims.from_config(teacher.config).as_arch(), seq_len,
                                            spec.uses_hidden)


    bar = tqdm(range(start, total), initial=start, total=total, desc="superlm", disable=not (progress and d.master))
    t0, tokens_done = time.perf_counter(), 0
    window_t, window_tokens, window_flops = t0, 0, 0.0
    for step in bar:
        # dropout masks are a function of (seed, step, rank): a resumed run, on any number of ranks, draws
        # what the uninterrupted one drew; ranks differ, as in any data parallelism
        torch.manual_seed(hash((cfg.seed, step, d.rank)))
        rows = np.sort(d.shard(global_batch_rows(step, cfg.batch_size, len(blocks), cfg.seed)))
        micro = [rows[i:i + (cfg.micro_batch_size or len(rows))]
                 for i in range(0, len(rows), cfg.micro_batch_size or len(rows))]
        archs = sampler(step)
        losses = torch.zeros(len(archs), device=device)
        for m, micro_rows in enumerate(micro):
            batch = blocks_to_batch(blocks[micro_rows], device)
            with autocast:  # the teacher runs once per (micro-)batch, for every sampled sub-network
                target = teacher_targets(teacher, batch["input_ids"], batch["attention_mask"], spec.teacher_layer,
                                         hidden=spec.uses_hidden)
            for i, arch in enumerate(archs):
                last = m == len(micro) - 1 and i == len(archs) - 1
                # all but the last backward of the step skip DDP's all-reduce; gradients accumulate locally
                ctx = model.no_sync() if (d.world > 1 and not last) else contextlib.nullcontext()
                with ctx:
                    with autocast:
                        loss = student_loss(model, arch, batch, target, spec) * (len(micro_rows) / len(rows))
                    loss.backward()
                losses[i] += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(superlm.parameters(), cfg.grad_clip)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        n_tokens = cfg.batch_size * seq_len
        tokens_done += n_tokens
        window_tokens += n_tokens
        window_flops += 2 * n_tokens / seq_len * (teacher_macs + 3 * sum(
            _macs_to_distilled_layer(a, seq_len, spec.uses_hidden) for a in archs))
        if (step + 1) % cfg.log_every == 0 or step + 1 == total:
            if d.world > 1:
                dist.all_reduce(losses)
                losses /= d.world
            now = time.perf_counter()
            record = {"step": step + 1, "lr": lr, "grad_norm": float(grad_norm),
                      "loss_mean": float(losses.mean()),
                      "loss_largest": float(losses[0]) if cfg.sampling == "sandwich" else None,
                      "loss_smallest": float(losses[-1]) if cfg.sampling == "sandwich" else None,
                      "tokens_per_second": window_tokens / (now - window_t)}
            if peak:
                record["mfu"] = window_flops / d.world / (now - window_t) / (peak * 1e12)  # per device
            record = {k: v for k, v in record.items() if v is not None}
            history.append(record)
            window_t, window_tokens, window_flops = now, 0, 0.0
            bar.set_postfix(loss=f"{record['loss_mean']:.4f}", tok_s=f"{record['tokens_per_second']:.0f}")
            if log and d.master:
                log(record, step + 1)
        if d.master and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == total):
            save_checkpoint(checkpoint_dir, step + 1, superlm, optimizer, scheduler, history, run_config)
        if d.world > 1:
            dist.barrier()
    bar.close()
    seconds = time.perf_counter() - t0
    return TrainResult(total, start, history, seconds, tokens_done / max(seconds, 1e-9))


def probe_candidates(candidates: Sequence[Arch], largest: Arch, smallest: Arch) -> dict[str, Arch]:
    """The sub-networks whose held-out loss is reported before and after training."""
    by_size = sorted(candidates, key=lambda a: (exact_gflops(a), a))
    return {"largest": largest, "middle": by_size[len(by_size) // 2], "smallest": smallest}


def heldout_report(superlm: SuperLM, heldout: HeldOut, probes: dict[str, Arch]) -> dict[str, float]:
    """The held-out relation loss of each probe (the paper's figure, comparable across objectives)."""
    return {name: heldout.loss(superlm, arch, "relation") for name, arch in probes.items()}
