import pytest
from transformers import BertConfig, BertModel

from autodistil.cost import Vocab, costs, count_gflops, count_params, exact_gflops, exact_params, paper_gflops, paper_params
from autodistil.modeling_autodistil_bert import AutoDistilBertConfig, AutoDistilBertModel
from autodistil.space import Arch


@pytest.mark.parametrize(
    "arch, params_m, gflops",
    [   # the interval each published figure stands for: 109 M and 66 M are truncated, the rest rounded
        (Arch(12, 12, 768, 3072, 64), (109, 110), (11.15, 11.25)),  # BERT-base: 109 M, 11.2 G
        (Arch(6, 12, 768, 3072, 64), (66, 67), (5.655, 5.665)),  # 6 layers of 768: 66 M, 5.66 G
        (Arch(7, 10, 160, 560, 16), (6.85, 6.95), (0.265, 0.275)),  # the authors' tiny: 6.9 M, 0.27 G
        (Arch(12, 9, 544, 1632, 64), (50.05, 50.15), (4.395, 4.405)),  # base: 50.1 M, 4.40 G
        (Arch(11, 8, 352, 1408, 44), (26.05, 26.15), (2.015, 2.025)),  # small: 26.1 M, 2.02 G
        (Arch(11, 7, 256, 768, 64), (14.35, 14.45), (0.865, 0.875)),  # small-2: 14.4 M, 0.87 G
    ],
)
def test_paper_convention_reproduces_the_published_anchors(arch, params_m, gflops):
    assert params_m[0] <= paper_params(arch) / 1e6 < params_m[1]
    assert gflops[0] <= paper_gflops(arch, seq_len=128) < gflops[1]


def test_paper_convention_ignores_the_real_attention_width():
    stock, fixed = Arch(7, 10, 160, 560, 16), Arch(7, 10, 160, 560, 64)
    assert paper_params(stock) == paper_params(fixed)
    assert exact_params(fixed) - exact_params(stock) == 7 * (4 * 160 * (640 - 160) + 3 * (640 - 160))


def _module(arch: Arch, vocab: Vocab):
    common = dict(vocab_size=vocab.size, max_position_embeddings=vocab.positions, type_vocab_size=vocab.token_types,
                  hidden_size=arch.hidden, num_hidden_layers=arch.layers, num_attention_heads=arch.heads,
                  intermediate_size=arch.ffn)
    if arch.convention == "stock":
        return BertModel(BertConfig(**common)).eval()
    return AutoDistilBertModel(AutoDistilBertConfig(attention_head_size=arch.head_size, **common)).eval()


@pytest.mark.parametrize(
    "arch", [Arch(2, 4, 64, 96, 16), Arch(3, 2, 48, 128, 32), Arch(1, 3, 40, 72, 16), Arch(7, 10, 160, 560, 16)]
)
def test_exact_convention_equals_torch_counters(arch):
    vocab = Vocab(size=1000, positions=128, token_types=2)
    model = _module(arch, vocab)
    assert count_params(model) == exact_params(arch, vocab)
    assert count_gflops(model, seq_len=64) == pytest.approx(exact_gflops(arch, seq_len=64), rel=1e-12)


def test_costs_reports_both_conventions():
    c = costs(Arch(7, 10, 160, 560, 16), seq_len=128)
    assert set(c) == {"params_paper", "gflops_paper", "params_exact", "gflops_exact", "seq_len"}
    assert c["params_exact"] == exact_params(Arch(7, 10, 160, 560, 16))
    assert c["gflops_paper"] != c["gflops_exact"]  # w = H*A/12 in the paper vs. the real width H
