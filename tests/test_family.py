"""Model families behind one seam: every supported teacher's full-size SuperLM is the teacher, its importance
order keeps its function, and its students export as its own stock type."""

from __future__ import annotations

import pytest
import torch

from autodistil.export import export_student, read_info, superlm_hidden
from autodistil.importance import Order, apply_order, measure_importance
from autodistil.space import Arch, TeacherDims
from autodistil.teacher import teacher_qkv
from tiny import padded_batch, tiny_family_teacher, tiny_subspace, tiny_superlm, tiny_teacher, training_blocks

TOL = 1e-5

# (model type, ELECTRA embedding size): ELECTRA both with its embedding projection (48 < 64) and without
FAMILIES = [("bert", None), ("roberta", None), ("xlm-roberta", None), ("electra", 48), ("electra", None)]


def _teacher(model_type: str, embedding_size: int | None):
    return tiny_teacher() if model_type == "bert" else tiny_family_teacher(model_type, embedding_size=embedding_size)


def _batch(teacher, seed: int = 1):
    ids, mask, types = padded_batch(seed=seed, pad=teacher.config.pad_token_id)
    return ids, mask, (types if teacher.config.type_vocab_size > 1 else torch.zeros_like(types))


@pytest.mark.parametrize("model_type, embedding_size", FAMILIES)
def test_full_size_superlm_is_the_teacher(model_type, embedding_size):
    teacher = _teacher(model_type, embedding_size)
    superlm = tiny_superlm(teacher, tiny_subspace())
    assert superlm.config.model_type == model_type
    assert hasattr(superlm, "pooler") == (model_type != "electra")
    assert hasattr(superlm, "embeddings_project") == (embedding_size is not None)
    ids, mask, types = _batch(teacher)
    full = TeacherDims.from_config(teacher.config).as_arch()
    with torch.no_grad():
        ref = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    got = superlm_hidden(superlm, full, ids, mask, types)
    assert (got - ref)[mask.bool()].abs().max().item() <= TOL  # ragged mask: real tokens only
    qkv = superlm.eval()(ids, mask, types, arch=full, stop_at_distill_layer=True).qkv
    for mine, theirs in zip(qkv, teacher_qkv(teacher, ids, mask, token_type_ids=types)):
        assert (mine - theirs)[mask.bool()].abs().max().item() <= TOL


def test_roberta_positions_start_after_padding():
    """Without the offset the SuperLM would read RoBERTa's position table two rows early: what a BERT-only
    slicer did (max |diff| of order 1 on the last hidden state)."""
    from dataclasses import replace

    from autodistil.superlm import SuperLM

    teacher = tiny_family_teacher("roberta")
    superlm = tiny_superlm(teacher, tiny_subspace())
    assert superlm.config.position_offset == teacher.config.pad_token_id + 1 == 2
    wrong = SuperLM.from_teacher(teacher, replace(superlm.config, position_offset=0))
    ids, mask, types = _batch(teacher)
    full = TeacherDims.from_config(teacher.config).as_arch()
    with torch.no_grad():
        ref = teacher(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (superlm_hidden(wrong, full, ids, mask) - ref)[mask.bool()].abs().max().item() > 0.1


@pytest.mark.parametrize("model_type, embedding_size", FAMILIES)
def test_importance_order_keeps_the_function(model_type, embedding_size):
    teacher = _teacher(model_type, embedding_size)
    ids, mask, types = _batch(teacher)
    with torch.no_grad():
        before = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    imp = measure_importance(teacher, training_blocks(n=8, seq_len=12), batch_size=4)
    assert imp.channels.shape == (64,)  # the hidden channels, after ELECTRA's projection
    order = Order.of(imp)
    assert not torch.equal(order.channels, torch.arange(64))  # a real permutation is tested
    apply_order(teacher, order)
    with torch.no_grad():
        after = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert (after - before[..., order.channels])[mask.bool()].abs().max().item() <= TOL


@pytest.mark.parametrize("model_type, embedding_size", FAMILIES[1:])
def test_students_export_as_the_teachers_type_and_match_their_slice(tmp_path, model_type, embedding_size):
    from transformers import AutoModel, AutoModelForSequenceClassification

    teacher = _teacher(model_type, embedding_size)
    superlm = tiny_superlm(teacher, tiny_subspace())
    arch = Arch(3, 2, 32, 48, 16)
    folder = export_student(superlm, arch, tmp_path / "student")
    model = AutoModel.from_pretrained(folder).eval()
    assert model.config.model_type == model_type and type(model).__name__ == type(teacher).__name__
    if model_type == "electra":
        assert model.config.embedding_size == (embedding_size or arch.hidden)
    ids, mask, types = _batch(teacher, seed=7)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    ref = superlm_hidden(superlm, arch, ids, mask, types)
    assert (out - ref)[mask.bool()].abs().max().item() <= TOL
    AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)  # fine-tunable as its own type
    record = read_info(folder)
    assert record["model_type"] == model_type
    assert record["params_module"] == record["costs"]["params_exact"]  # the cost formula knows the family


def test_fixed_head_students_of_other_families_are_refused_in_one_line(tmp_path):
    teacher = tiny_family_teacher("roberta")
    superlm = tiny_superlm(teacher, tiny_subspace("fixed_head"))
    with pytest.raises(ValueError, match="fixed_head convention exports BERT students only; a roberta teacher"):
        export_student(superlm, Arch(3, 2, 48, 96, 16), tmp_path / "student")
    assert not (tmp_path / "student").exists()


def test_a_fixed_head_partition_of_another_family_is_refused_before_anything_trains(tmp_path):
    import yaml

    from autodistil.io import InputError
    from autodistil.partition import partition_from_params

    tiny_family_teacher("roberta").save_pretrained(tmp_path / "roberta")
    from pathlib import Path

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["partition"]["convention"] = "fixed_head"
    with pytest.raises(InputError, match="fixed_head students are BERT models only; the teacher .* 'roberta' model"):
        partition_from_params(params, str(tmp_path / "roberta"))
