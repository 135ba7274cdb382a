"""Every GPU stage runs in bf16 autocast with TF32 for what stays fp32 (``autodistil.device.mixed_precision``),
and nothing changes on the CPU. Checked here without a GPU: the helper's contexts, and that each path goes
through it with its device (the gpu-marked tests in test_gpu.py compare the numbers on a real GPU)."""

from __future__ import annotations

import contextlib
import warnings

import torch

from autodistil import device as device_module
from autodistil.device import mixed_precision


def test_cuda_gets_bf16_autocast_and_tf32_and_the_cpu_nothing():
    before = torch.get_float32_matmul_precision()
    assert isinstance(mixed_precision("cpu"), contextlib.nullcontext)
    assert torch.get_float32_matmul_precision() == before == "highest"  # CPU results stay bit-identical
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "CUDA is not available": the context is only inspected here
            ctx = mixed_precision(torch.device("cuda", 0))
        assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16
        assert torch.get_float32_matmul_precision() == "high"  # TF32 for fp32 matmuls
    finally:
        torch.set_float32_matmul_precision(before)


class Recorder:
    """Stands in for mixed_precision in one module and records the devices it was asked for."""

    def __init__(self, monkeypatch, module):
        self.devices: list[str] = []
        monkeypatch.setattr(module, "mixed_precision", self)

    def __call__(self, device):
        self.devices.append(torch.device(device).type)
        return contextlib.nullcontext()


def test_training_probes_search_and_latency_request_mixed_precision(monkeypatch, tmp_path):
    from autodistil import distill, latency, train
    from autodistil.distill import HeldOut
    from tiny import training_blocks, training_setup

    teacher, superlm, sampler, cfg = training_setup()
    calls = {m.__name__: Recorder(monkeypatch, m) for m in (train, distill, latency)}
    train.train_superlm(superlm, teacher, training_blocks(), sampler, cfg, tmp_path, progress=False)
    assert calls["autodistil.train"].devices and set(calls["autodistil.train"].devices) == {"cpu"}

    heldout = HeldOut(teacher, training_blocks(8, seed=1), cfg.spec(4), batch_size=4)  # probes and search
    n = len(calls["autodistil.distill"].devices)
    heldout.losses(superlm, sampler.smallest)
    assert n >= 1 and len(calls["autodistil.distill"].devices) == n + 1

    latency.measure_latency(teacher, latency.LatencyConfig(warmup=1, repeats=2, seq_len=8))  # teacher snapshot
    assert calls["autodistil.latency"].devices == ["cpu"]
    assert device_module.mixed_precision is mixed_precision  # only the modules' references were replaced
