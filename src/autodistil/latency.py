"""Latency of a model on this machine: the figure ``max_latency_ms`` budgets, the search and the model folders
report. One forward pass of ``batch_size`` x ``seq_len`` random tokens, median of timed runs after warm-up ones,
on the configured device (the CPU by default: the usual deployment target)."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from .device import mixed_precision, resolve_device
from .config import LatencyConfig


@torch.no_grad()
def measure_latency(model: nn.Module, cfg: LatencyConfig = LatencyConfig(), vocab_size: int | None = None) -> dict:
    """Wall time of one forward pass of ``model`` in ms: median (the figure budgets use), mean, min, stdev.

    Inputs: ``cfg.batch_size`` x ``cfg.seq_len`` random token ids (fixed seed), full attention mask, eval
    mode, no autograd; ``cfg.warmup`` untimed passes, then ``cfg.repeats`` timed ones (``perf_counter``,
    synchronising CUDA when the model lives there).
    """
    was_training = model.training
    home = next(model.parameters()).device
    device = torch.device(resolve_device(cfg.device))
    model.to(device).eval()
    vocab_size = vocab_size or getattr(getattr(model, "config", None), "vocab_size", 100)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab_size, (cfg.batch_size, cfg.seq_len), generator=g).to(device)
    mask = torch.ones_like(ids)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    try:
        with mixed_precision(device):  # bf16 on CUDA, as the stages run the model there
            for _ in range(cfg.warmup):
                model(input_ids=ids, attention_mask=mask)
            sync()
            times = []
            for _ in range(cfg.repeats):
                t0 = time.perf_counter()
                model(input_ids=ids, attention_mask=mask)
                sync()
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.to(home).train(was_training)
    return {
        "latency_ms": statistics.median(times),
        "latency_mean_ms": statistics.fmean(times),
        "latency_min_ms": min(times),
        "latency_std_ms": statistics.stdev(times) if len(times) > 1 else 0.0,
        "batch_size": cfg.batch_size, "seq_len": cfg.seq_len, "warmup": cfg.warmup, "repeats": cfg.repeats,
        "threads": torch.get_num_threads(), "device": str(device),
    }
