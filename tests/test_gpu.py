"""GPU smoke tests (``python -m pytest -m gpu``; skipped without CUDA): a SuperLM training step, the held-out scoring
of the probes and the search, and fine-tuning, each under the stages' bf16 autocast against the same in fp32; an
exported student on CUDA against its slice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autodistil.distill import DistillSpec, blocks_to_batch, student_loss
from autodistil.export import build_student, superlm_hidden
from autodistil.space import Arch
from autodistil.targets import teacher_targets
from tiny import VOCAB, padded_batch, tiny_subspace, tiny_superlm, tiny_teacher

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

# bf16 keeps 8 bits of mantissa: the projections feeding the relations round to about 0.4 %, the relation
# loss itself is computed in fp32 (autodistil.relations), so the loss moves by well under 2 %
AUTOCAST_RTOL = 2e-2


def test_superlm_step_under_bf16_autocast_matches_fp32():
    torch.set_float32_matmul_precision("highest")  # the fp32 reference in full fp32, whatever ran before
    teacher = tiny_teacher().cuda()
    # no dropout: bf16 and fp32 kernels draw their masks differently, and the test compares precision only
    superlm = tiny_superlm(teacher, tiny_subspace(), hidden_dropout=0.0, attention_dropout=0.0).cuda().train()
    spec = DistillSpec(relation_heads=teacher.config.num_attention_heads)
    batch = blocks_to_batch(np.random.default_rng(0).integers(1, VOCAB, (8, 16)), "cuda")
    arch = Arch(2, 2, 32, 48, 16)

    def loss_and_grad(autocast: bool):
        superlm.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            target = teacher_targets(teacher, batch["input_ids"], batch["attention_mask"])
            loss = student_loss(superlm, arch, batch, target, spec)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in superlm.parameters() if p.grad is not None])
        return loss.detach(), grad

    loss32, grad32 = loss_and_grad(False)
    loss16, grad16 = loss_and_grad(True)
    assert loss16.dtype == torch.float32  # the relation loss leaves autocast in fp32
    assert loss16.item() == pytest.approx(loss32.item(), rel=AUTOCAST_RTOL)
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0).item() > 0.99


def test_exported_student_on_cuda_equals_its_slice():
    superlm = tiny_superlm(tiny_teacher(), tiny_subspace()).cuda()
    arch = Arch(3, 4, 64, 96, 16)
    student = build_student(superlm, arch).cuda()
    ids, mask, types = (t.cuda() for t in padded_batch(seed=3))
    with torch.no_grad():
        out = student(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    ref = superlm_hidden(superlm, arch, ids, mask, types)
    assert out.device.type == "cuda"
    # TF32 is on for CUDA matmuls once any stage code set up its mixed precision: a looser bound than the CPU's 1e-5
    assert (out - ref)[mask.bool()].abs().max().item() <= 1e-3


# the search ranks candidates by held-out loss: bf16 projections move each candidate's loss by well under 5 %
SCORING_RTOL = 5e-2


def test_heldout_scoring_under_bf16_matches_fp32(monkeypatch):
    """The probes' held-out loss and the search's scores (HeldOut) in the stages' bf16 against fp32 on CUDA."""
    import contextlib

    from autodistil import distill
    from autodistil.distill import HeldOut

    teacher = tiny_teacher().cuda()
    superlm = tiny_superlm(teacher, tiny_subspace()).cuda()
    spec = DistillSpec(relation_heads=teacher.config.num_attention_heads)
    blocks = np.random.default_rng(1).integers(1, VOCAB, (32, 16))
    archs = [Arch(2, 2, 32, 48, 16), Arch(1, 2, 32, 48, 16), Arch(3, 4, 64, 96, 16)]
    previous = torch.get_float32_matmul_precision()  # before the mixed run, which turns TF32 on
    mixed = [HeldOut(teacher, blocks, spec, 8, "cuda").losses(superlm, a) for a in archs]
    torch.set_float32_matmul_precision("highest")
    monkeypatch.setattr(distill, "mixed_precision", lambda device: contextlib.nullcontext())
    try:
        exact = [HeldOut(teacher, blocks, spec, 8, "cuda").losses(superlm, a) for a in archs]
    finally:
        torch.set_float32_matmul_precision(previous)
    for m, e in zip(mixed, exact):
        assert m["relation"] == pytest.approx(e["relation"], rel=SCORING_RTOL, abs=1e-4)
        assert m["hidden"] == pytest.approx(e["hidden"], rel=SCORING_RTOL, abs=1e-4)


def test_training_steps_do_not_sync_with_the_host_outside_logging_steps(tmp_path):
    """A non-logging SuperLM step on CUDA never waits for the GPU: data order, batch copy (pinned, asynchronous),
    teacher, students, backward, clipping and AdamW run with CUDA's sync debug mode set to error; the last step,
    which logs and checkpoints, reads its figures as usual."""
    from autodistil.sampling import SubnetSampler
    from autodistil.train import train_superlm
    from tiny import training_blocks, training_setup

    teacher, superlm, sampler, cfg = training_setup(max_steps=4, log_every=100, checkpoint_every=100)
    total = cfg.max_steps

    class StrictSampler(SubnetSampler):  # called first in every step: the strict mode covers steps 0 .. total-2
        def __call__(self, step):
            torch.cuda.set_sync_debug_mode("default")
            torch.cuda.synchronize()  # the previous step's work done: what follows is this step's alone
            torch.cuda.set_sync_debug_mode("error" if step < total - 1 else "default")
            return super().__call__(step)

    strict = StrictSampler(sampler.candidates, sampler.largest, sampler.smallest, "sandwich", 2, seed=0)
    try:
        result = train_superlm(superlm, teacher.cuda(), training_blocks(), strict, cfg, tmp_path,
                               device=torch.device("cuda"), progress=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.steps == total and len(result.history) == 1
