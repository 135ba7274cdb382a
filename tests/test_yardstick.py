import json

import numpy as np
import pytest
import torch

from autodistil.io import InputError
from autodistil.yardstick import (PairScores, PairSet, Yardstick, bootstrap_rows, load_pair_sets, paired_difference,
                                  pair_metric, retention)
from autodistil.pooling import pool
from tiny import VOCAB
from tiny import tiny_tokenizer as make_tokenizer


def test_pool_mean_counts_real_tokens_only_and_cls_takes_the_first():
    h = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(h, mask, "mean").tolist() == [[2.0, 1.0]]
    assert pool(h, mask, "cls").tolist() == [[1.0, 0.0]]


def test_average_precision_and_spearman_by_hand():
    sims, labels = np.array([0.9, 0.8, 0.3, 0.1]), np.array([1.0, 0.0, 1.0, 0.0])
    assert pair_metric(sims, labels, "average_precision") == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert pair_metric(sims, np.array([4.0, 3.0, 2.0, 1.0]), "spearman") == pytest.approx(100.0)
    assert pair_metric(np.ones(4), np.array([4.0, 3.0, 2.0, 1.0]), "spearman") == 0.0  # constant: no correlation


def _bag_of_words(input_ids, attention_mask):
    """A model whose hidden states are one-hot tokens: mean pooling gives the bag of words."""
    return torch.nn.functional.one_hot(input_ids, VOCAB).float()


def test_the_yardstick_on_a_hand_computed_example(tmp_path):
    # cosines of the bags of words ([CLS] and [SEP] included): 1, 3/sqrt(12), 2/3, 2/4
    pairs = PairSet("MRPC", ["hello world", "hello world", "hello", "the a"],
                    ["hello world", "hello", "world", "hello world"], np.array([1.0, 0.0, 1.0, 0.0]),
                    "average_precision")
    stick = Yardstick([pairs], make_tokenizer(tmp_path), "mean", bootstrap=50, teacher=_bag_of_words,
                      cka_blocks=np.array([[2, 5, 6, 3], [2, 7, 8, 3]]))
    record, scores = stick.score(_bag_of_words)
    assert scores.similarity[0] == pytest.approx([1.0, 3 / 12 ** 0.5, 2 / 3, 0.5])
    assert record["pairs"] == pytest.approx(100 * (1 + 2 / 3) / 2)  # ranks 1 and 3 are the positives
    assert record["agreement"] == pytest.approx(100.0)  # the teacher itself
    assert record["cka"] == pytest.approx(1.0)
    assert record["pairs_low"] <= record["pairs"] <= record["pairs_high"]


def test_paired_difference_of_a_model_with_itself_is_exactly_zero_and_retention_by_hand():
    s = PairSet("RTE", ["a"] * 50, ["b"] * 50, np.arange(50) % 2 * 1.0, "average_precision")
    rng = np.random.default_rng(0)
    a = PairScores([s], [rng.normal(size=50)])
    draws = bootstrap_rows([50], 100, 0)
    assert paired_difference(a, a, draws) == {"difference": 0.0, "low": 0.0, "high": 0.0}
    better = PairScores([s], [a.similarity[0] + 3 * s.labels])  # positives pushed up
    d = paired_difference(better, a, draws)
    assert d["low"] > 0 and d["difference"] > 0
    assert retention(70.0, 80.0, 60.0) == pytest.approx(0.5)
    assert retention(70.0, 60.0, 60.0) is None


def _write_task(root, name, header, rows):
    (root / name).mkdir(parents=True)
    for split in ("train", "dev"):
        (root / name / f"{split}.tsv").write_text("\n".join(["\t".join(header), *rows]) + "\n")


def test_pair_sets_from_a_glue_folder_mark_the_positive_class(tmp_path):
    _write_task(tmp_path, "RTE", ["index", "sentence1", "sentence2", "label"],
                ["0\ta b\tc\tentailment", "1\td\te\tnot_entailment"])
    _write_task(tmp_path, "MRPC", ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                ["1\t1\t2\tx\ty", "0\t3\t4\tz\tw"])
    rte, mrpc = load_pair_sets(tmp_path, ["RTE", "MRPC"], ["train", "dev"], None)
    assert rte.labels.tolist() == [1.0, 0.0, 1.0, 0.0] and rte.first[:2] == ["a b", "d"]
    assert mrpc.labels.tolist() == [1.0, 0.0, 1.0, 0.0] and mrpc.second[:2] == ["y", "w"]
    with pytest.raises(InputError, match="SST-2 is a single-sentence task"):
        load_pair_sets(tmp_path, ["SST-2"], ["dev"], None)
    with pytest.raises(InputError, match="RTE has no split 'test'"):
        load_pair_sets(tmp_path, ["RTE"], ["test"], None)


def test_the_config_refuses_an_empty_yardstick():
    from autodistil.config import from_mapping

    with pytest.raises(InputError, match="yardstick.tasks: expected a non-empty list"):
        from_mapping({"yardstick": {"tasks": []}})
    assert json.dumps(from_mapping({}).yardstick.tasks) == '["RTE"]'
