"""End to end with a RoBERTa teacher: the real DVC pipeline on the micro profile, in a temporary clone, with a tiny
random RoBERTa whose byte-level BPE tokenizer is trained here on the corpus (nothing downloaded).

Slow (a few minutes): ``python -m pytest -m slow``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from test_pipeline import MICRO, _merge, _run, clone_with_raw_data


def _roberta_teacher(corpus: Path, folder: Path) -> Path:
    """A 4-layer, 128-wide random RoBERTa with a 2,000-token BPE vocabulary learnt from the corpus's first lines."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    lines = corpus.read_text(encoding="utf-8").splitlines()[:3000]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=2000, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    folder.mkdir(parents=True)
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    torch.manual_seed(0)
    model = RobertaModel(RobertaConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=4,
                                       num_attention_heads=4, intermediate_size=512, max_position_embeddings=130,
                                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                       eos_token_id=tokenizer.eos_token_id, type_vocab_size=1))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_micro_pipeline_runs_end_to_end_with_a_roberta_teacher(tmp_path_factory):
    from transformers import AutoModel

    root = tmp_path_factory.mktemp("roberta")
    repo = root / "repo"
    clone_with_raw_data(repo)
    teacher = _roberta_teacher(next((repo / "data" / "raw" / "corpus").glob("*.txt")), root / "teacher")
    params = _merge(yaml.safe_load((repo / "params.yaml").read_text()), MICRO)
    params["teacher"]["source"] = str(teacher)
    params["mlflow"]["experiment"] = "autodistil-roberta"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    _run(["dvc", "repro"], repo)

    blocks = np.load(repo / "data" / "corpus" / "train.npy", mmap_mode="r")
    assert (blocks[:, 0] == 0).all() and (blocks[:, -1] == 2).all()  # <s> ... </s>, the teacher's own tokens
    for student in params["search"]["students"]:
        folder = repo / "models" / student
        assert json.loads((folder / "autodistil.json").read_text())["model_type"] == "roberta"
        model = AutoModel.from_pretrained(folder)  # stock transformers, no autodistil code
        assert type(model).__name__ == "RobertaModel" and model.config.pad_token_id == 1
        assert model.config.max_position_embeddings == 130
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert set(summary["models"]) == set(MICRO["finetune"]["models"])
    assert "up to date" in _run(["dvc", "status"], repo)
