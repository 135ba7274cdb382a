"""Segment pairs: corpus blocks cut into two token-typed segments for SuperLM training (superlm.segments)."""

import numpy as np
import pytest

from autodistil.io import InputError
from autodistil.segments import as_pairs, pair_splits
from autodistil.train import TrainConfig, train_superlm
from tiny import superlm_params, training_blocks, training_setup


def test_a_pair_is_the_block_cut_in_two_at_its_split_with_the_blocks_own_separator():
    blocks = training_blocks(3, seq_len=12, seed=4)  # [CLS]=2 ... [SEP]=3
    splits = np.array([3, 6, 9])
    ids, types = as_pairs(blocks, splits)
    assert ids.shape == types.shape == blocks.shape
    for b, i, t, s in zip(blocks, ids, types, splits):
        assert list(i[:s]) == list(b[:s])  # [CLS] and the first span in place
        assert i[s] == 3 and i[-1] == 3 and (i == 3).sum() == 2  # two separators, the block's own
        assert list(i[s + 1:-1]) == list(b[s:-2])  # the second span: the text that followed, its last token dropped
        assert list(t) == [0] * (s + 1) + [1] * (len(b) - s - 1)  # segment A through its [SEP], then B


def test_a_roberta_pair_has_two_separators_between_its_segments_and_one_token_type():
    blocks = training_blocks(3, seq_len=12, seed=4)  # <s>=2 ... </s>=3
    splits = pair_splits(range(3), seed=0, step=0, seq_len=12, separators=2)
    assert splits.max() <= 12 - 4  # room for </s></s>, a second span and the closing </s>
    ids, types = as_pairs(blocks, splits, separators=2, segment_types=False)
    for b, i, s in zip(blocks, ids, splits):
        assert list(i[:s]) == list(b[:s]) and list(i[s:s + 2]) == [3, 3] and i[-1] == 3 and (i == 3).sum() == 3
        assert list(i[s + 2:-1]) == list(b[s:-3])  # the text that followed, its last two tokens dropped
    assert not types.any()


def test_splits_depend_on_seed_step_and_block_row_only():
    rows = np.arange(200)
    s = pair_splits(rows, seed=0, step=5, seq_len=128)
    assert s.min() >= 32 and s.max() <= 96 and len(set(s)) > 20  # a quarter to three quarters, spread
    # the same block gets the same split whatever batch, shard or micro-batch it is read in
    assert list(pair_splits(rows[::-1], 0, 5, 128)) == list(s[::-1])
    assert list(pair_splits(rows[50:60], 0, 5, 128)) == list(s[50:60])
    assert list(pair_splits(rows, 0, 6, 128)) != list(s) and list(pair_splits(rows, 1, 5, 128)) != list(s)
    with pytest.raises(ValueError, match="at least 5 tokens"):
        pair_splits([0], 0, 0, 4)


def test_training_on_pairs_shows_segment_b_to_the_teacher_and_the_students(tmp_path, monkeypatch):
    import autodistil.train as train

    seen = []
    real = train.teacher_targets

    def spy(teacher, input_ids, mask, layer, token_type_ids=None, hidden=False):
        seen.append(token_type_ids)
        return real(teacher, input_ids, mask, layer, token_type_ids=token_type_ids, hidden=hidden)

    monkeypatch.setattr(train, "teacher_targets", spy)
    runs = {}
    for segments in ("single", "pairs"):
        teacher, superlm, sampler, cfg = training_setup(segments=segments, max_steps=3, weight_decay=0.0)
        b_row = superlm.embeddings.token_type_embeddings.weight[1].detach().clone()
        train_superlm(superlm, teacher, training_blocks(), sampler, cfg, tmp_path / segments, progress=False)
        moved = (superlm.embeddings.token_type_embeddings.weight[1] - b_row).abs().max().item()
        runs[segments] = (moved, seen[-3:])
    moved, types = runs["single"]
    assert moved == 0 and all(t is None for t in types)  # segment B's embedding is never used
    moved, types = runs["pairs"]
    assert moved > 0 and all(t is not None and (t == 1).any(dim=1).all() for t in types)


def test_pairs_are_the_same_whatever_the_micro_batch(tmp_path):
    teacher, whole, sampler, cfg = training_setup(segments="pairs")
    train_superlm(whole, teacher, training_blocks(), sampler, cfg, tmp_path / "a", progress=False)
    _, split, _, _ = training_setup(segments="pairs", micro_batch_size=1)
    train_superlm(split, teacher, training_blocks(), sampler, TrainConfig(**{**cfg.__dict__, "micro_batch_size": 1}),
                  tmp_path / "b", progress=False)
    worst = max((a - b).abs().max().item() for a, b in zip(whole.state_dict().values(), split.state_dict().values()))
    assert worst < 1e-5, worst


def test_an_unknown_segments_value_is_named():
    with pytest.raises(InputError, match="superlm.segments: expected one of single, pairs, got 'triples'"):
        superlm_params({"max_steps": 1, "segments": "triples"})


def test_pairs_are_refused_before_training_for_short_blocks_or_a_teacher_with_one_token_type(tmp_path):
    from autodistil.superlm_job import SuperLMJob
    from tiny import tiny_subspace, tiny_teacher

    teacher = tiny_teacher()
    teacher.save_pretrained(tmp_path / "teacher")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    np.save(corpus / "train.npy", training_blocks(8, seq_len=4))
    np.save(corpus / "heldout.npy", training_blocks(4, seq_len=4, seed=9))
    cfg = TrainConfig(max_steps=1, segments="pairs", calibration_blocks=4)
    with pytest.raises(InputError, match=r"superlm.segments: pairs need corpus blocks of at least 5 tokens, .* has 4"):
        SuperLMJob.build(cfg, str(tmp_path / "teacher"), tiny_subspace(), corpus, {})
    np.save(corpus / "train.npy", training_blocks(8))
    from transformers import BertModel

    one_type = teacher.config
    one_type.type_vocab_size = 1
    BertModel(one_type).save_pretrained(tmp_path / "one-type")
    with pytest.raises(InputError, match=r"superlm.segments: pairs need a teacher with two token types, .* has 1"):
        SuperLMJob.build(cfg, str(tmp_path / "one-type"), tiny_subspace(), corpus, {})
