import math

import pytest
import torch
import torch.nn.functional as F

from autodistil.relations import relation_loss, relation_scores
from autodistil.space import Arch
from autodistil.targets import teacher_qkv
from tiny import padded_batch, tiny_subspace, tiny_superlm, tiny_teacher


def _qkv(seed, batch=2, tokens=6, width=24):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, tokens, width, generator=g) for _ in range(3))


def test_relation_scores_split_heads_and_drop_trailing_channels():
    x = torch.randn(2, 5, 26)
    r = relation_scores(x, n_heads=4)  # d_r = 6, two channels dropped
    assert r.shape == (2, 4, 5, 5)
    head1 = x[..., 6:12]
    assert torch.allclose(r[:, 1], head1 @ head1.transpose(-1, -2) / math.sqrt(6))


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_loss_is_zero_for_identical_relations_and_positive_otherwise(kind):
    t = _qkv(0)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    assert relation_loss(t, t, mask, 4, kind).item() == pytest.approx(0.0, abs=1e-6)
    assert relation_loss(_qkv(1), t, mask, 4, kind).item() > 1e-3


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_extra_padding_leaves_the_loss_unchanged(kind):
    s, t = _qkv(1, tokens=5), _qkv(2, tokens=5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    pad = lambda xs: tuple(torch.cat([x, 100 * torch.randn(2, 4, x.shape[-1])], 1) for x in xs)  # noqa: E731
    padded_mask = torch.cat([mask, torch.zeros(2, 4, dtype=mask.dtype)], 1)
    a = relation_loss(s, t, mask, 4, kind)
    b = relation_loss(pad(s), pad(t), padded_mask, 4, kind)
    assert b.item() == pytest.approx(a.item(), rel=1e-5)


def test_kl_matches_a_direct_computation_on_an_unpadded_batch():
    s, t = _qkv(3), _qkv(4)
    mask = torch.ones(2, 6, dtype=torch.long)
    expected = 0.0
    for xs, xt in zip(s, t):
        log_s = F.log_softmax(relation_scores(xs, 4), -1).reshape(-1, 6)
        log_t = F.log_softmax(relation_scores(xt, 4), -1).reshape(-1, 6)
        expected += F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
    assert relation_loss(s, t, mask, 4, "kl").item() == pytest.approx(expected.item(), rel=1e-5)


def test_mse_matches_a_direct_computation_over_real_pairs():
    s, t = _qkv(5), _qkv(6)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    expected = 0.0
    for xs, xt in zip(s, t):
        d = (relation_scores(xs, 4) - relation_scores(xt, 4)) ** 2
        expected += (d[0].sum() + d[1, :, :3, :3].sum()) / (4 * (36 + 9))
    assert relation_loss(s, t, mask, 4, "mse").item() == pytest.approx(expected.item(), rel=1e-5)


def test_unknown_loss_is_an_error():
    with pytest.raises(ValueError, match="unknown relation loss 'l1'"):
        relation_loss(_qkv(0), _qkv(0), torch.ones(2, 6), 4, "l1")


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_gradient_reaches_only_the_active_slices(kind):
    teacher = tiny_teacher()
    superlm = tiny_superlm(teacher, tiny_subspace(), hidden_dropout=0.0, attention_dropout=0.0)
    ids, mask, types = padded_batch()
    arch = Arch(2, 2, 48, 72, 24)  # layers 0 and 2 of 4; 48 of 64 hidden, 72 of 128 FFN channels
    target = teacher_qkv(teacher, ids, mask, token_type_ids=types)
    out = superlm.train()(ids, mask, types, arch=arch, stop_at_distill_layer=True)
    relation_loss(out.qkv, target, mask, teacher.config.num_attention_heads, kind).backward()

    params = dict(superlm.named_parameters())
    grad = lambda name: params[name].grad  # noqa: E731
    # embeddings: only the first 48 columns
    g = grad("embeddings.word_embeddings.weight")
    assert g[:, :48].abs().sum() > 0 and g[:, 48:].abs().sum() == 0
    # layer 0 runs fully at the active width: its inactive FFN rows/cols get nothing
    g = grad("encoder.layer.0.intermediate.dense.weight")
    assert g[:72, :48].abs().sum() > 0 and g[72:].abs().sum() == 0 and g[:, 48:].abs().sum() == 0
    # layer 2 is the distilled layer: Q/K/V get gradient, its attention output and FFN do not
    g = grad("encoder.layer.2.attention.self.query.weight")
    assert g[:48, :48].abs().sum() > 0 and g[48:].abs().sum() == 0
    for skipped in ("encoder.layer.2.intermediate.dense.weight", "encoder.layer.2.attention.output.dense.weight"):
        assert grad(skipped) is None
    # layers 1 and 3 are not in the sub-network
    assert all(p.grad is None for n, p in params.items() if n.startswith(("encoder.layer.1.", "encoder.layer.3.")))
    assert grad("pooler.dense.weight") is None


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_teacher_relations_computed_once_give_the_same_loss(kind):
    from autodistil.relations import teacher_relations

    g = torch.Generator().manual_seed(3)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    student = [torch.randn(2, 10, 24, generator=g, requires_grad=True) for _ in range(3)]
    teacher = [torch.randn(2, 10, 48, generator=g) for _ in range(3)]
    direct = relation_loss(student, teacher, mask, 4, kind)
    cached = relation_loss(student, teacher, mask, 4, kind, teacher_relations(teacher, mask, 4, kind))
    assert cached.item() == pytest.approx(direct.item(), rel=1e-6)
    cached.backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)


def test_relation_loss_is_fp32_under_bf16_autocast():
    """On CUDA, autocast would run the relation matmuls in bf16; the loss turns it off (checked on CPU, where
    bf16 autocast also applies to matmuls)."""
    g = torch.Generator().manual_seed(4)
    mask = torch.ones(2, 16, dtype=torch.long)
    student = [torch.randn(2, 16, 32, generator=g) for _ in range(3)]
    teacher = [torch.randn(2, 16, 64, generator=g) for _ in range(3)]
    exact = relation_loss(student, teacher, mask, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (torch.randn(4, 4) @ torch.randn(4, 4)).dtype == torch.bfloat16  # autocast is on
        under = relation_loss(student, teacher, mask, 4)
    assert under.dtype == torch.float32 and under.item() == pytest.approx(exact.item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_unpadded_blocks_need_no_mask(kind):
    """Corpus blocks pass no mask (no masking work, no look at the mask's values): the same loss and gradient
    as with a mask of ones."""
    from autodistil.relations import teacher_relations

    g = torch.Generator().manual_seed(5)
    student = [torch.randn(2, 10, 24, generator=g, requires_grad=True) for _ in range(3)]
    teacher = [torch.randn(2, 10, 48, generator=g) for _ in range(3)]
    ones = torch.ones(2, 10, dtype=torch.long)
    masked = relation_loss(student, teacher, ones, 4, kind, teacher_relations(teacher, ones, 4, kind))
    grads = torch.autograd.grad(masked, student)
    unmasked = relation_loss(student, teacher, None, 4, kind, teacher_relations(teacher, None, 4, kind))
    assert unmasked.item() == pytest.approx(masked.item(), rel=1e-6)
    for a, b in zip(torch.autograd.grad(unmasked, student), grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind", ["kl", "mse"])
@pytest.mark.parametrize("heads", [1, 2, 3, 5, 8, 11, 12])
def test_a_student_keeping_whole_teacher_heads_scores_zero_head_aligned(kind, heads):
    """The distilled layer of a sub-network that receives the teacher's input and keeps its heads' weights
    projects exactly the teacher's leading heads: the head-aligned split scores 0 at any head count; the paper's
    fixed split (12 relation heads of width // 12 channels) does not, below the teacher's head count."""
    teacher = _qkv(7, tokens=9, width=12 * 8)  # 12 heads of 8 channels
    student = tuple(x[..., : heads * 8] for x in teacher)
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3])
    assert relation_loss(student, teacher, mask, 12, kind, split="heads").item() == pytest.approx(0.0, abs=1e-6)
    fixed = relation_loss(student, teacher, mask, 12, kind, split="fixed").item() if heads * 8 >= 12 else None
    if heads < 12 and fixed is not None:
        assert fixed > 1e-2
    if heads == 12:
        assert fixed == pytest.approx(0.0, abs=1e-6)


def test_head_aligned_zero_through_a_real_sub_network():
    """The same on a SuperLM sliced from a teacher: its one-layer sub-network keeping 2 of 4 heads of the last
    layer, fed the teacher's input to that layer, projects the teacher's first two heads and scores 0."""
    from autodistil.space import SubSpace

    teacher = tiny_teacher(layers=1)
    superlm = tiny_superlm(teacher, SubSpace.from_dict("one", {"layers": [1], "heads": [2, 4], "hidden": [64],
                                                                "mlp_ratio": [2]}))
    ids, mask, _ = padded_batch()
    arch = Arch(1, 2, 64, 128, 16)  # hidden kept whole, 2 of the 4 heads
    superlm.eval()
    with torch.no_grad():
        out = superlm(ids, mask, arch=arch, distill_layer=-1, stop_at_distill_layer=True)
        t = teacher_qkv(teacher, ids, mask, -1)
    assert out.qkv[0].shape[-1] == 32
    assert relation_loss(out.qkv, t, mask, 4, "kl", split="heads").item() == pytest.approx(0.0, abs=1e-5)
    assert relation_loss(out.qkv, t, mask, 4, "kl", split="fixed").item() > 1e-4  # random weights: near-uniform maps


def test_a_width_that_is_no_whole_number_of_heads_is_refused():
    with pytest.raises(ValueError, match="not a whole number of the teacher's 4 heads of 6"):
        relation_loss(_qkv(0, width=20), _qkv(1, width=24), None, 4, "kl", split="heads")
