import json
import random

import pytest
import torch

from autodistil.export import build_student, superlm_hidden
from autodistil.space import Arch, Envelope, SearchSpaceError, TeacherDims
from autodistil.superlm import SuperLM, SuperLMConfig
from autodistil.targets import teacher_qkv
from tiny import padded_batch, tiny_subspace, tiny_superlm, tiny_teacher

TOL = 1e-5


@pytest.fixture(scope="module")
def teacher():
    return tiny_teacher()


@pytest.mark.parametrize("convention", ["stock", "fixed_head"])
def test_full_size_slice_reproduces_the_teacher(teacher, convention):
    sub = tiny_subspace(convention)
    superlm = tiny_superlm(teacher, sub)
    ids, mask, types = padded_batch()
    full = TeacherDims.from_config(teacher.config).as_arch()
    with torch.no_grad():
        ref = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    got = superlm_hidden(superlm, full, ids, mask, types)
    real = mask.bool()
    assert (got - ref)[real].abs().max().item() <= TOL
    # the Q/K/V the SuperLM hands to distillation are the teacher's too
    qkv = superlm.eval()(ids, mask, types, arch=full, stop_at_distill_layer=True).qkv
    for mine, theirs in zip(qkv, teacher_qkv(teacher, ids, mask, token_type_ids=types)):
        assert (mine - theirs).abs().max().item() <= TOL


def test_hidden_state_target_of_the_full_slice_is_the_teachers(teacher):
    """The hidden-state term compares the distilled layer's output with the teacher's: zero for the full slice,
    positive for a narrower sub-network, and the forward stops after that layer."""
    from autodistil.distill import DistillSpec, hidden_loss, student_losses
    from autodistil.targets import teacher_targets

    superlm = tiny_superlm(teacher, tiny_subspace()).eval()
    ids, mask, types = padded_batch()
    full = TeacherDims.from_config(teacher.config).as_arch()
    for layer in (-1, 1):
        target = teacher_targets(teacher, ids, mask, layer, token_type_ids=types, hidden=True)
        with torch.no_grad():
            ref = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        output = ref.hidden_states[range(4)[layer] + 1]  # hidden_states[0] is the embeddings' output
        assert (target.hidden - output).abs().max().item() <= TOL
        out = superlm(ids, mask, types, arch=full, distill_layer=layer, stop_at_distill_layer=True,
                      distill_hidden=True)
        assert out.last_hidden_state is None and (out.hidden - target.hidden)[mask.bool()].abs().max() <= TOL
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    spec = DistillSpec(relation_heads=4, hidden_weight=2.0)
    target = teacher_targets(teacher, ids, mask, -1, token_type_ids=types, hidden=True)
    with torch.no_grad():
        terms = student_losses(superlm, full, batch, target, spec)
        narrow = student_losses(superlm, Arch(2, 2, 32, 48, 16), batch, target, spec)
    assert terms["hidden"].item() <= 1e-9 and narrow["hidden"].item() > 1e-3
    # padding does not count: changing padded positions leaves the term unchanged
    noisy = target.hidden.clone()
    noisy[~mask.bool()] += 5.0
    assert hidden_loss(target.hidden[..., :32] + 0.1, noisy, mask).item() == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize("convention", ["stock", "fixed_head"])
def test_random_sub_networks_equal_their_standalone_models(teacher, convention):
    sub = tiny_subspace(convention)
    superlm = tiny_superlm(teacher, sub)
    ids, mask, types = padded_batch(seed=3)
    real = mask.bool()
    for arch in random.Random(0).sample(sub.candidates(TeacherDims.from_config(teacher.config)), 8):
        student = build_student(superlm, arch)
        with torch.no_grad():
            out = student(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        ref = superlm_hidden(superlm, arch, ids, mask, types)
        assert out.shape == (*ids.shape, arch.hidden)
        assert (out - ref)[real].abs().max().item() <= TOL, arch.name


def test_importance_depth_slices_the_ranked_teacher_layers(teacher):
    cfg = SuperLMConfig.from_teacher_config(teacher.config, Envelope(3, 64, 128, 64), depth_rule="importance")
    superlm = SuperLM.from_teacher(teacher, cfg, teacher_ranking=[3, 1, 0, 2])
    assert superlm.config.layer_ranking == [2, 1, 0]  # SuperLM layers = teacher layers 0, 1, 3
    arch = Arch(2, 4, 64, 128, 16)
    assert superlm.layer_indices(arch) == [1, 2]  # teacher layers 1 and 3
    sd = superlm.state_dict()
    for j, t in enumerate([0, 1, 3]):
        key = "attention.self.query.weight"
        assert torch.equal(sd[f"encoder.layer.{j}.{key}"], teacher.state_dict()[f"encoder.layer.{t}.{key}"])
    reloaded = SuperLMConfig.from_dict(json.loads(json.dumps(superlm.config.to_dict())))
    assert reloaded == superlm.config
    student = build_student(superlm, arch)
    ids, mask, types = padded_batch()
    with torch.no_grad():
        out = student(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert (out - superlm_hidden(superlm, arch, ids, mask, types))[mask.bool()].abs().max() <= TOL


def test_strided_and_first_k_depth_pick_different_layers(teacher):
    sub = tiny_subspace()
    strided = tiny_superlm(teacher, sub)
    first_k = tiny_superlm(teacher, sub, depth_rule="first_k")
    arch = Arch(2, 4, 64, 128, 16)
    assert strided.layer_indices(arch) == [0, 2] and first_k.layer_indices(arch) == [0, 1]
    ids, mask, types = padded_batch()
    a = superlm_hidden(strided, arch, ids, mask, types)
    b = superlm_hidden(first_k, arch, ids, mask, types)
    assert (a - b).abs().max() > 1e-3


def test_stopping_at_the_distilled_layer_gives_the_same_projections(teacher):
    superlm = tiny_superlm(teacher, tiny_subspace()).eval()
    ids, mask, types = padded_batch()
    arch = Arch(3, 2, 48, 72, 24)
    full = superlm(ids, mask, types, arch=arch)
    early = superlm(ids, mask, types, arch=arch, stop_at_distill_layer=True)
    assert early.last_hidden_state is None and full.last_hidden_state.shape[-1] == 48
    for x, y in zip(full.qkv, early.qkv):
        assert torch.equal(x, y) and x.shape == (*ids.shape, 48)
    middle = superlm(ids, mask, types, arch=arch, distill_layer=0, stop_at_distill_layer=True).qkv
    assert not torch.equal(middle.q, early.qkv.q)


def test_active_arch_and_bad_archs(teacher):
    superlm = tiny_superlm(teacher, tiny_subspace())
    ids, mask, _ = padded_batch()
    with pytest.raises(RuntimeError, match="no sub-network selected"):
        superlm(ids, mask)
    with pytest.raises(SearchSpaceError, match="does not fit"):
        superlm.set_active(Arch(5, 4, 64, 128, 16))
    superlm.set_active(Arch(1, 2, 32, 48, 16))
    assert superlm.eval()(ids, mask).last_hidden_state.shape[-1] == 32


def test_dropout_is_configurable_and_off_in_eval(teacher):
    superlm = tiny_superlm(teacher, tiny_subspace(), hidden_dropout=0.5, attention_dropout=0.5)
    ids, mask, types = padded_batch()
    arch = Arch(2, 2, 32, 48, 16)
    superlm.train()
    torch.manual_seed(0)
    a = superlm(ids, mask, types, arch=arch).last_hidden_state
    b = superlm(ids, mask, types, arch=arch).last_hidden_state
    assert (a - b).abs().max() > 1e-3
    assert torch.equal(superlm_hidden(superlm, arch, ids, mask, types), superlm_hidden(superlm, arch, ids, mask, types))


def test_save_and_load_round_trip(teacher, tmp_path):
    superlm = tiny_superlm(teacher, tiny_subspace("fixed_head"), depth_rule="first_k")
    superlm.save(tmp_path)
    again = type(superlm).load(tmp_path)
    assert again.config == superlm.config
    for (k, v), (k2, v2) in zip(superlm.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_a_teacher_that_is_not_bert_like_is_rejected(teacher):
    from autodistil.superlm import SuperLM

    sub = tiny_subspace()
    superlm = tiny_superlm(teacher, sub)
    broken = tiny_teacher()
    del broken.encoder.layer[3].attention.self.query
    with pytest.raises(ValueError, match="not a bert encoder.*query"):
        SuperLM.from_teacher(broken, superlm.config)


def test_an_unpadded_batch_runs_without_a_mask_and_equals_the_masked_path(teacher):
    """Students run SDPA with no mask on corpus blocks (its fused kernels): the same projections and outputs
    as with a mask of ones."""
    superlm = tiny_superlm(teacher, tiny_subspace()).eval()
    ids = torch.randint(5, 100, (3, 12), generator=torch.Generator().manual_seed(2))
    for arch in (Arch(3, 4, 64, 96, 16), Arch(1, 2, 32, 48, 16)):
        masked = superlm(ids, torch.ones_like(ids), arch=arch, distill_layer=-1, distill_hidden=True)
        unmasked = superlm(ids, None, arch=arch, distill_layer=-1, distill_hidden=True)
        assert (masked.last_hidden_state - unmasked.last_hidden_state).abs().max().item() <= TOL
        assert (masked.hidden - unmasked.hidden).abs().max().item() <= TOL
        for a, b in zip(masked.qkv, unmasked.qkv):
            assert (a - b).abs().max().item() <= TOL
