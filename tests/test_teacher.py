from pathlib import Path

import pytest
from transformers import AutoConfig
import torch

from autodistil.teacher import PACKAGED_MINILM, load_teacher, load_tokenizer, resolve_source, teacher_qkv
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
