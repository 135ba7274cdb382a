"""Throughput and model-FLOPs utilisation (MFU) of SuperLM training.

FLOPs are counted for what a step actually computes: the teacher's forward up to the distilled layer, and for
each sampled sub-network its forward to the distilled layer's Q/K/V (its whole last layer with the hidden-state
term) and the backward (twice the forward). MFU divides by the device's peak, known for common GPUs or set
with ``superlm.peak_tflops``.
"""

from __future__ import annotations

import re
import time
from typing import Sequence

import torch

from .space import Arch, exact_macs

# dense bf16 peaks (fp16 for the V100), by model name as a word of the device name ("NVIDIA A100-SXM4-80GB")
GPU_PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L40": 181.0, "L4": 121.0,
                        "A10": 125.0, "V100": 125.0}


def peak_tflops(override: float | None, device: torch.device) -> float | None:
    """The device's peak TFLOP/s: ``override`` when set, else the bf16 peak of a known GPU, else None."""
    if override is not None:
        return override
    if device.type == "cuda":
        words = set(re.split(r"[\s\-_]+", torch.cuda.get_device_name(device).upper()))
        return next((v for k, v in GPU_PEAK_BF16_TFLOPS.items() if k in words), None)  # "L4" is no "L40S"
    return None


def training_macs(arch: Arch, seq_len: int, whole_layer: bool = False) -> float:
    """Multiply-accumulates per sequence of a training forward that stops at the last layer's Q/K/V (or,
    with ``whole_layer``, after that layer: the hidden-state term needs its output)."""
    full = exact_macs(arch, seq_len, pooler=False)
    if whole_layer:
        return full
    last_layer_rest = full / arch.layers - 3 * seq_len * arch.hidden * arch.attention_width
    return full - last_layer_rest


class Throughput:
    """Tokens per second and MFU over the window since the last :meth:`window` call."""

    def __init__(self, teacher: Arch, seq_len: int, whole_layer: bool, peak: float | None, world: int = 1):
        self.seq_len, self.whole_layer, self.peak, self.world = seq_len, whole_layer, peak, world
        self.teacher_macs = training_macs(teacher, seq_len, whole_layer)
        self.start, self.tokens, self.flops = time.perf_counter(), 0, 0.0

    def add(self, archs: Sequence[Arch], n_tokens: int) -> None:
        """One step of ``n_tokens`` tokens (all ranks) that trained ``archs``."""
        self.tokens += n_tokens
        self.flops += 2 * n_tokens / self.seq_len * (self.teacher_macs + 3 * sum(
            training_macs(a, self.seq_len, self.whole_layer) for a in archs))

    def window(self) -> dict[str, float]:
        """``tokens_per_second`` (and ``mfu`` per device, where the peak is known) since the last call."""
        now = time.perf_counter()
        out = {"tokens_per_second": self.tokens / (now - self.start)}
        if self.peak:
            out["mfu"] = self.flops / self.world / (now - self.start) / (self.peak * 1e12)
        self.start, self.tokens, self.flops = now, 0, 0.0
        return out
