"""Properties that hold for every valid architecture, drawn at random by hypothesis: a student exported from a
SuperLM computes what its slice computes, and the exact cost formulas count what torch counts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertModel

from autodistil.cost import Vocab, count_gflops, count_params, exact_gflops, exact_params
from autodistil.export import build_student, superlm_hidden
from autodistil.space import Arch, Envelope
from autodistil.superlm import SuperLM, SuperLMConfig

VOCAB, POSITIONS = 50, 32


@st.composite
def teacher_and_student(draw):
    """A random BERT-like teacher shape and a student inside it: stock (hidden = heads x head size) or
    fixed_head (attention width decoupled from hidden), any depth, any FFN width up to the teacher's."""
    head_size = draw(st.sampled_from([4, 8, 16]))
    t_heads = draw(st.integers(1, 4))
    t_layers = draw(st.integers(1, 4))
    t_hidden = t_heads * head_size
    t_ffn = t_hidden * draw(st.integers(1, 4))
    heads = draw(st.integers(1, t_heads))
    stock = draw(st.booleans())
    hidden = heads * head_size if stock else draw(st.integers(max(2, head_size // 2), t_hidden))
    student = Arch(layers=draw(st.integers(1, t_layers)), heads=heads, hidden=hidden,
                   ffn=draw(st.integers(1, t_ffn)), head_size=head_size)
    return (t_layers, t_heads, t_hidden, t_ffn), student, draw(st.integers(0, 2 ** 16))


def _teacher(shape, seed: int) -> BertModel:
    layers, heads, hidden, ffn = shape
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, intermediate_size=ffn,
                                 max_position_embeddings=POSITIONS, attn_implementation="sdpa")).eval()
    with torch.no_grad():  # non-trivial LayerNorms, so that a wrong slice of them shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(teacher_and_student())
def test_exported_student_equals_its_slice_and_costs_match_torch(case):
    shape, arch, seed = case
    teacher = _teacher(shape, seed)
    superlm = SuperLM.from_teacher(teacher, SuperLMConfig.from_teacher_config(teacher.config, Envelope.of([arch])))
    student = build_student(superlm, arch)

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    with torch.no_grad():
        out = student(input_ids=ids, attention_mask=mask).last_hidden_state
    ref = superlm_hidden(superlm, arch, ids, mask)
    assert (out - ref)[mask.bool()].abs().max().item() <= 1e-5

    vocab = Vocab(VOCAB, POSITIONS, 2)
    assert count_params(student) == exact_params(arch, vocab)
    assert count_gflops(student, seq_len=16) == pytest.approx(exact_gflops(arch, seq_len=16), rel=1e-9)
