"""Model families behind one seam: every supported teacher's full-size SuperLM is the teacher, its importance
order keeps its function, and its students export as its own stock type."""

from __future__ import annotations

import json

import pytest
import torch

from autodistil.export import export_student, read_info, superlm_hidden
from autodistil.importance import Order, apply_order, measure_importance
from autodistil.space import Arch, TeacherDims
from autodistil.targets import teacher_qkv
from tiny import padded_batch, tiny_family_teacher, tiny_subspace, tiny_superlm, tiny_teacher, training_blocks

TOL = 1e-5

# (model type, ELECTRA embedding size): ELECTRA both with its embedding projection (48 < 64) and without
FAMILIES = [("bert", None), ("roberta", None), ("xlm-roberta", None), ("camembert", None), ("electra", 48),
            ("electra", None)]


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
    params["teacher"]["source"] = str(tmp_path / "roberta")
    from autodistil.config import from_mapping

    with pytest.raises(InputError, match="fixed_head students are BERT models only; the teacher .* 'roberta' model"):
        partition_from_params(from_mapping(params))


def test_a_bert_superlm_config_is_written_and_read_as_before_families(tmp_path):
    """BERT's superlm.json (and so its checkpoints' identity) carries none of the family fields, and a file
    written before they existed loads as BERT."""
    import json

    from autodistil.superlm import SuperLMConfig

    superlm = tiny_superlm(tiny_teacher(), tiny_subspace())
    d = superlm.config.to_dict()
    assert not {"model_type", "position_offset", "embedding_size", "pooler"} & set(d)
    assert SuperLMConfig.from_dict(json.loads(json.dumps(d))) == superlm.config
    assert SuperLMConfig.from_dict(d).model_type == "bert" and SuperLMConfig.from_dict(d).pooler


def test_an_electra_superlm_round_trips_with_its_projection(tmp_path):
    from autodistil.superlm import SuperLM

    superlm = tiny_superlm(tiny_family_teacher("electra", embedding_size=48), tiny_subspace())
    superlm.save(tmp_path / "s")
    again = SuperLM.load(tmp_path / "s")
    assert again.config == superlm.config and again.config.embedding_size == 48 and not again.config.pooler
    assert set(again.state_dict()) == set(superlm.state_dict()) and "embeddings_project.weight" in again.state_dict()


def test_electra_students_as_wide_as_the_projected_embeddings_are_no_candidates(tmp_path):
    """transformers' ElectraModel has no projection when embedding_size == hidden_size: such a student could not
    hold its SuperLM slice, so the width is left out of the grid, and export refuses it."""
    teacher = tiny_family_teacher("electra", embedding_size=48)
    dims = TeacherDims.from_config(teacher.config)
    assert dims.embedding_size == 48
    cands = tiny_subspace().candidates(dims)
    assert cands and all(a.hidden != 48 for a in cands) and any(a.hidden == 32 for a in cands)
    assert TeacherDims.from_config(tiny_family_teacher("electra").config).embedding_size is None
    superlm = tiny_superlm(teacher, tiny_subspace())
    with pytest.raises(ValueError, match="as wide as the teacher's projected embeddings"):
        export_student(superlm, Arch(3, 3, 48, 96, 16), tmp_path / "student")


@pytest.mark.parametrize("model_type, embedding_size", [("electra", 48), ("roberta", None), ("bert", None)])
def test_the_search_counts_costs_as_the_export_does(model_type, embedding_size, tmp_path):
    """The partition's record of the teacher (what the search budgets and ranks with) gives the same embedding
    width and pooler as the SuperLM (what the export counts with)."""
    from autodistil.cost import Vocab, costs, count_params
    from autodistil.export import build_student
    from autodistil.partition import load_teacher_shape, subspaces_document

    teacher = _teacher(model_type, embedding_size)
    superlm = tiny_superlm(teacher, tiny_subspace())
    dims, vocab = TeacherDims.from_config(teacher.config), Vocab.from_config(teacher.config)
    doc = subspaces_document([tiny_subspace()], dims, "teacher", "stock", 16, vocab)
    (tmp_path / "subspaces.json").write_text(json.dumps(doc))
    assert load_teacher_shape(tmp_path / "subspaces.json") == (dims, vocab)
    assert vocab == Vocab.from_config(superlm.config)
    arch = Arch(2, 2, 32, 48, 16)
    assert costs(arch, 16, 4, vocab)["params_exact"] == count_params(build_student(superlm, arch))
    # cost bands and probes count GFLOPs as the export records them (pooler, projection)
    assert dims.gflops(arch, 16) == costs(arch, 16, 4, vocab)["gflops_exact"]
    assert dims.pooler == (model_type != "electra")
    assert doc["teacher"]["params_paper"] > 0 and ("embedding_size" in doc["teacher"]) == (embedding_size is not None)
