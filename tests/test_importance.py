"""Importance-ordered initialisation: function-preserving, deterministic, and it changes what a slice keeps."""

from __future__ import annotations

import numpy as np
import torch

from autodistil.importance import (Order, apply_order, calibration_blocks, measure_importance,
                                   permute_state_dict)
from autodistil.space import Envelope
from autodistil.superlm import SuperLM, SuperLMConfig

from tiny import VOCAB, padded_batch, tiny_teacher


def _blocks(n=12, length=16, seed=3, vocab=VOCAB):
    return np.random.default_rng(seed).integers(1, vocab, (n, length))


def _outputs(teacher, ids, mask, types):
    with torch.no_grad():
        out = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types)
    return out.last_hidden_state, out.pooler_output


def _check_same_function(teacher, blocks, ids, mask, types):
    before = _outputs(teacher, ids, mask, types)
    order = Order.of(measure_importance(teacher, blocks))
    apply_order(teacher, order)
    after = _outputs(teacher, ids, mask, types)
    for b, a in zip(before, after):  # same function, hidden channels of the outputs permuted
        assert (b[..., order.channels] - a).abs().max().item() <= 1e-5
    return order


def test_permutation_preserves_a_tiny_teacher_with_non_trivial_layernorms():
    teacher = tiny_teacher(seed=5)
    order = _check_same_function(teacher, _blocks(), *padded_batch())
    # the order is a real permutation, not the identity
    assert sorted(order.channels.tolist()) == list(range(64))
    assert order.channels.tolist() != list(range(64))
    assert any(h.tolist() != list(range(4)) for h in order.heads)
    assert any(n.tolist() != list(range(128)) for n in order.neurons)


def test_permutation_preserves_the_packaged_minilm():
    from autodistil.teacher import load_teacher

    teacher = load_teacher()
    blocks = _blocks(n=8, length=32, vocab=30000)
    ids = torch.as_tensor(_blocks(n=2, length=24, seed=7, vocab=30000))
    mask = torch.ones_like(ids)
    mask[1, 16:] = 0
    _check_same_function(teacher, blocks, ids, mask, torch.zeros_like(ids))


def test_order_is_deterministic():
    blocks = _blocks()
    a = Order.of(measure_importance(tiny_teacher(seed=2), blocks))
    b = Order.of(measure_importance(tiny_teacher(seed=2), blocks))
    assert torch.equal(a.channels, b.channels)
    assert all(torch.equal(x, y) for x, y in zip(a.heads + a.neurons, b.heads + b.neurons))


def test_importance_ranks_a_silenced_head_and_neuron_last():
    teacher = tiny_teacher(seed=1)
    with torch.no_grad():  # head 1 of layer 0 outputs zeros; FFN neuron 7 of layer 2 never fires
        teacher.encoder.layer[0].attention.self.value.weight[16:32] = 0
        teacher.encoder.layer[0].attention.self.value.bias[16:32] = 0
        teacher.encoder.layer[2].intermediate.dense.weight[7] = 0
        teacher.encoder.layer[2].intermediate.dense.bias[7] = -50.0
    imp = measure_importance(teacher, _blocks())
    assert imp.heads[0][1] < 1e-6 < imp.heads[0].max()
    assert imp.neurons[2][7] < 1e-6 and Order.of(imp).neurons[2][-1].item() == 7
    assert Order.of(imp).heads[0][-1].item() == 1
    assert imp.blocks.shape == (4,) and (imp.blocks > 0).all()


def test_a_slice_of_the_ordered_teacher_keeps_the_important_parts():
    teacher = tiny_teacher(seed=4)
    original = {k: v.clone() for k, v in teacher.state_dict().items()}
    order = Order.of(measure_importance(teacher, _blocks()))
    apply_order(teacher, order)
    env = Envelope(layers=4, hidden=32, ffn=64, attention_width=32)
    superlm = SuperLM.from_teacher(teacher, SuperLMConfig.from_teacher_config(teacher.config, env))
    word = superlm.state_dict()["embeddings.word_embeddings.weight"]
    # the slice holds the teacher's most important channels, not its first 32
    assert torch.equal(word, original["embeddings.word_embeddings.weight"][:, order.channels[:32]])
    assert not torch.equal(word, original["embeddings.word_embeddings.weight"][:, :32])
    q = superlm.state_dict()["encoder.layer.0.attention.self.query.weight"]
    top_heads = order.heads[0][:2]
    rows = torch.cat([torch.arange(h * 16, (h + 1) * 16) for h in top_heads.tolist()])
    assert torch.equal(q, original["encoder.layer.0.attention.self.query.weight"][rows][:, order.channels[:32]])


def test_identity_order_changes_nothing():
    teacher = tiny_teacher()
    sd = teacher.state_dict()
    out = permute_state_dict(sd, Order.identity(64, 4, 128, 4), head_size=16)
    assert all(torch.equal(sd[k], out[k]) for k in sd)


def test_calibration_blocks_are_a_seeded_sample_in_corpus_order():
    blocks = np.arange(100)[:, None].repeat(4, 1)
    a, b = calibration_blocks(blocks, 10, seed=1), calibration_blocks(blocks, 10, seed=1)
    assert np.array_equal(a, b) and len(a) == 10 and (np.diff(a[:, 0]) > 0).all()
    assert not np.array_equal(a, calibration_blocks(blocks, 10, seed=2))
    assert len(calibration_blocks(blocks, 500)) == 100
