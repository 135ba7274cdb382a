"""Shared test set-up: offline environment and small fixtures (no downloads, no real teacher)."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest

# A hub call that cannot connect can hang for minutes before it fails: never try.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO = Path(__file__).resolve().parents[1]

# A tiny uncased WordPiece vocabulary: specials, a few whole words, then single characters and their
# continuation pieces, so ASCII text tokenises without [UNK]. 105 entries (fits tests/tiny.py's VOCAB=120).
TINY_WORDS = ["the", "cat", "dog", "sat", "on", "mat", "is", "good", "bad", "movie", "not", "and"]
TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + TINY_WORDS
    + list(string.ascii_lowercase)
    + [f"##{c}" for c in string.ascii_lowercase]
    + list(string.digits)
    + [f"##{d}" for d in string.digits]
    + list(".,!?'\"-:;()#$*")
    + ["##ed", "##ing"]
)
assert len(TINY_VOCAB) == len(set(TINY_VOCAB)), "duplicate tokens"


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A saved tiny BERT WordPiece tokenizer folder with a BERT config.json beside it (no weights): it stands in
    as ``teacher.source`` in a test params.yaml wherever only the tokenizer and the teacher's family are read."""
    from transformers import BertConfig, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab=str(vocab), do_lower_case=True)
    assert len(tok) == len(TINY_VOCAB) and tok.convert_tokens_to_ids("cat") == TINY_VOCAB.index("cat")
    tok.save_pretrained(folder)
    BertConfig(vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from autodistil.teacher import load_tokenizer

    return load_tokenizer(str(tiny_tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_vocab() -> dict[str, int]:
    """token -> id of the tiny tokenizer."""
    return {t: i for i, t in enumerate(TINY_VOCAB)}


@pytest.fixture(scope="session")
def _mlflow_session_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow_root")


@pytest.fixture
def mlflow_root(_mlflow_session_root, monkeypatch) -> Path:
    """Points ``$DVC_ROOT`` (hence the MLflow store ``<root>/mlflow.db``) at a temporary folder shared by the
    session (the SQLite schema is created once), so tests never write into the repository's mlflow.db."""
    monkeypatch.setenv("DVC_ROOT", str(_mlflow_session_root))
    return _mlflow_session_root
