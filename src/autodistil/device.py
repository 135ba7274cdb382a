"""Where a computation runs: the ``device`` settings of params.yaml (``auto`` = CUDA when present, else CPU)."""

from __future__ import annotations

import contextlib

import torch

from .config import DEVICES
from .io import InputError


def resolve_device(setting: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cpu`` and ``cuda`` as given."""
    if setting not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {setting!r}")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise InputError("a device setting of params.yaml is 'cuda' but no CUDA device is available")
    return setting


def mixed_precision(device) -> contextlib.AbstractContextManager:
    """The precision every GPU stage runs in: bf16 autocast on CUDA, with TF32 for the matmuls that autocast
    leaves in fp32 (losses, softmaxes and metrics are computed in fp32 by their callers). On the CPU nothing
    changes, so CPU results stay bit-identical."""
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    torch.set_float32_matmul_precision("high")  # TF32 for fp32 matmuls
    torch.backends.cudnn.allow_tf32 = True
    return torch.autocast("cuda", dtype=torch.bfloat16)
