from pathlib import Path

import pytest
from transformers import AutoConfig
import torch

from autodistil.targets import teacher_qkv
from autodistil.teacher import PACKAGED_MINILM, load_teacher, load_tokenizer, resolve_source
from tiny import padded_batch, tiny_teacher, tiny_tokenizer


def test_hooks_capture_the_projections_of_the_chosen_layer():
    teacher = tiny_teacher()
    ids, mask, types = padded_batch()
    projections = [getattr(layer.attention.self, n) for layer in teacher.encoder.layer for n in ("query", "key", "value")]
    hooks = lambda: sum(len(m._forward_hooks) for m in projections)  # noqa: E731
    before = hooks()
    for layer in (0, 2, -1):
        captured = teacher_qkv(teacher, ids, mask, layer=layer, token_type_ids=types)
        # recompute layer input by running the model with hidden states, then project by hand
        with torch.no_grad():
            states = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types,
                             output_hidden_states=True).hidden_states
        x = states[range(4)[layer]]
        sa = teacher.encoder.layer[layer].attention.self
        for got, proj in zip(captured, (sa.query, sa.key, sa.value)):
            assert torch.allclose(got, proj(x), atol=1e-6)
        assert hooks() == before  # the capture hooks are gone


def test_local_folder_teacher_is_frozen_and_in_eval_mode(tmp_path):
    tiny_teacher().save_pretrained(tmp_path)
    tiny_tokenizer(tmp_path)
    teacher = load_teacher(str(tmp_path))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert load_tokenizer(str(tmp_path))("hello world")["input_ids"] == [2, 5, 6, 3]


def test_sources_resolve_to_folders_or_hub_ids(tmp_path):
    assert resolve_source(str(tmp_path)) == str(tmp_path)
    assert resolve_source("bert-base-uncased") == "bert-base-uncased"  # a hub id, passed through
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file"):
        resolve_source(str(tmp_path / "weights.bin"))
    packaged = Path(resolve_source(PACKAGED_MINILM))
    assert (packaged / "config.json").is_file()
    assert AutoConfig.from_pretrained(packaged).num_hidden_layers == 6


def _save_tiny(folder: Path) -> Path:
    """A tiny random teacher of a family the seam does not know (DistilBERT: its own module names and config
    keys; built here, nothing downloaded)."""
    from transformers import DistilBertConfig, DistilBertModel

    DistilBertModel(DistilBertConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64)).save_pretrained(
        folder)
    return folder


def test_a_teacher_of_a_family_autodistil_cannot_slice_is_refused_in_one_line(tmp_path):
    """The family is checked, not module names: a model that reads as BERT-like could still be sliced wrongly."""
    from autodistil.io import InputError
    from autodistil.partition import teacher_shape

    folder = _save_tiny(tmp_path / "distilbert")
    for read in (teacher_shape, load_teacher, load_tokenizer):
        with pytest.raises(InputError) as e:
            read(str(folder))
        msg = str(e.value)
        assert "\n" not in msg and "is a 'distilbert' model" in msg
        assert "supports the model types: bert, roberta, xlm-roberta, camembert, electra" in msg
        assert str(folder) in msg


def test_the_first_stage_refuses_another_family_before_writing_anything(tmp_path, mlflow_root, monkeypatch, capsys):
    import yaml

    from stage_runner import run_stage_script

    folder = _save_tiny(tmp_path / "distilbert")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.txt").write_text("hello world\n\nthe world\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "teacher": {"source": str(folder)}, "mlflow": {"experiment": "test-family"},
        "prepare_corpus": {"source": "raw", "hub": {"dataset": None}, "seq_len": 16, "train_tokens": 160,
                           "heldout_blocks": 1, "heldout_fraction": 0.5, "seed": 0}}))
    code, err = run_stage_script("prepare_corpus.py", [], tmp_path, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "is a 'distilbert' model" in lines[0], lines
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


@pytest.mark.parametrize("model_type, positions, limit", [("bert", 512, 512), ("roberta", 514, 512)])
def test_inputs_longer_than_the_teachers_positions_are_refused_naming_the_setting(tmp_path, model_type, positions,
                                                                                  limit):
    from autodistil.io import InputError
    from autodistil.teacher import check_input_length

    AutoConfig.for_model(model_type, max_position_embeddings=positions, pad_token_id=1).save_pretrained(tmp_path)
    check_input_length("search.latency.seq_len", limit, str(tmp_path))  # RoBERTa's first two rows are padding's
    with pytest.raises(InputError, match=rf"search.latency.seq_len is {limit + 1} tokens, .* takes at most {limit}"):
        check_input_length("search.latency.seq_len", limit + 1, str(tmp_path))
