import pytest

from autodistil.space import (
    Arch, Envelope, SearchSpaceError, SubSpace, TeacherDims, depth_indices, ffn_size, make_arch, validate_disjoint,
)

BERT_BASE = TeacherDims(layers=12, heads=12, hidden=768, ffn=3072)


def test_stock_arch_keeps_whole_teacher_heads_and_width_h():
    arch = make_arch(7, 3, 192, 3.5, BERT_BASE, "stock")
    assert arch == Arch(7, 3, 192, 672, 64)
    assert arch.attention_width == 192 and arch.convention == "stock" and arch.name == "L7-A3-H192-F672"


def test_fixed_head_arch_keeps_the_teachers_head_size():
    arch = make_arch(7, 10, 160, 3.5, BERT_BASE, "fixed_head")
    assert arch.head_size == 64 and arch.attention_width == 640
    assert arch.convention == "fixed_head" and arch.name.endswith("-D64")


def test_ffn_sizes_are_exact_integers():
    assert ffn_size(544, 2.5) == 1360
    assert ffn_size(160, "3.5") == 560
    with pytest.raises(SearchSpaceError, match="not a positive integer"):
        ffn_size(33, 2.5)


def test_stock_arch_with_split_heads_is_an_error():
    """A stock student's heads are whole teacher heads: H must be A x 64 for BERT-base."""
    with pytest.raises(SearchSpaceError, match=r"hidden 544 != heads 8 x the teacher's head size 64"):
        make_arch(12, 8, 544, 3, BERT_BASE, "stock")
    with pytest.raises(SearchSpaceError, match=r"hidden 160 != heads 10"):
        make_arch(7, 10, 160, 3.5, BERT_BASE, "stock")  # the old stock rule (head size H/A = 16) is gone


@pytest.mark.parametrize(
    "dims, key",
    [((13, 12, 768, 4), "layers 13"), ((12, 13, 768, 4), "heads 13"), ((12, 12, 800, 4), "hidden 800"),
     ((12, 12, 768, 4.5), "ffn 3456")],
)
def test_dimensions_above_the_teacher_are_errors(dims, key):
    with pytest.raises(SearchSpaceError, match=f"{key} exceeds the teacher"):
        make_arch(*dims, BERT_BASE, "fixed_head")


def test_unknown_convention_is_an_error():
    with pytest.raises(SearchSpaceError, match="unknown attention convention"):
        make_arch(2, 2, 64, 2, BERT_BASE, "wide")


def test_paper_base_grid_has_256_candidates_in_fixed_head_convention():
    base = SubSpace.from_dict(
        "base", {"layers": [9, 10, 11, 12], "heads": [9, 10, 11, 12], "hidden": [544, 576, 608, 640],
                 "mlp_ratio": [2.5, 3.0, 3.5, 4.0]}, "fixed_head")
    cands = base.candidates(BERT_BASE)
    assert len(cands) == 256
    assert base.largest(BERT_BASE) == Arch(12, 12, 640, 2560, 64)
    assert base.smallest(BERT_BASE) == Arch(9, 9, 544, 1360, 64)
    assert Envelope.of(cands) == Envelope(layers=12, hidden=640, ffn=2560, attention_width=768)


def test_stock_grid_keeps_only_whole_head_pairs():
    sub = SubSpace.from_dict("s", {"layers": [4], "heads": [4, 5], "hidden": [256, 288, 320], "mlp_ratio": [2]})
    assert [(a.heads, a.hidden) for a in sub.candidates(BERT_BASE)] == [(4, 256), (5, 320)]


def test_empty_grid_is_an_error():
    sub = SubSpace.from_dict("odd", {"layers": [4], "heads": [7], "hidden": [256], "mlp_ratio": [2]})  # 256 = 4 x 64
    with pytest.raises(SearchSpaceError, match="'odd' has an empty grid"):
        sub.candidates(BERT_BASE)
    with pytest.raises(SearchSpaceError, match="heads must be a non-empty list"):
        SubSpace.from_dict("x", {"layers": [4], "heads": [], "hidden": [256], "mlp_ratio": [2]})
    with pytest.raises(SearchSpaceError, match="lacks mlp_ratio"):
        SubSpace.from_dict("x", {"layers": [4], "heads": [8], "hidden": [256]})


def test_grid_exceeding_the_teacher_names_the_sub_space():
    sub = SubSpace.from_dict("big", {"layers": [12, 13], "heads": [12], "hidden": [768], "mlp_ratio": [4]})
    with pytest.raises(SearchSpaceError, match="sub-space 'big': .*layers 13 exceeds"):
        sub.candidates(BERT_BASE)


def test_overlapping_sub_spaces_are_an_error():
    a = SubSpace.from_dict("a", {"layers": [4, 6], "heads": [4], "hidden": [256], "mlp_ratio": [2]})
    b = SubSpace.from_dict("b", {"layers": [6, 8], "heads": [4], "hidden": [256], "mlp_ratio": [2]})
    with pytest.raises(SearchSpaceError, match="'a' and 'b' overlap"):
        validate_disjoint([a, b], BERT_BASE)
    c = SubSpace.from_dict("c", {"layers": [8], "heads": [4], "hidden": [256], "mlp_ratio": [2]})
    validate_disjoint([a, c], BERT_BASE)


@pytest.mark.parametrize(
    "n, l, expected",
    [(12, 4, [0, 3, 6, 9]), (12, 7, [0, 1, 3, 5, 6, 8, 10]), (12, 11, list(range(11))), (12, 12, list(range(12))),
     (6, 1, [0])],
)
def test_strided_depth_matches_the_method(n, l, expected):
    assert depth_indices(n, l) == expected


@pytest.mark.parametrize("n, l, expected", [(6, 1, [5]), (6, 2, [0, 5]), (6, 3, [0, 3, 5]), (6, 4, [0, 2, 3, 5]),
                                            (6, 6, list(range(6))), (12, 4, [0, 4, 7, 11]), (2, 2, [0, 1])])
def test_ends_depth_keeps_the_first_and_last_layers(n, l, expected):
    assert depth_indices(n, l, "ends") == expected


def test_importance_depth_keeps_the_top_layers_in_order_and_nests():
    ranking = [5, 0, 4, 3, 2, 1]
    assert depth_indices(6, 1, "importance", ranking) == [5]
    assert depth_indices(6, 3, "importance", ranking) == [0, 4, 5]
    assert all(set(depth_indices(6, l, "importance", ranking)) <= set(depth_indices(6, l + 1, "importance", ranking))
               for l in range(1, 6))
    with pytest.raises(SearchSpaceError, match="needs a ranking of all 6 layers"):
        depth_indices(6, 2, "importance", [0, 1])
    # a SuperLM of the 4 most important teacher layers ranks its own layers the same way
    from autodistil.space import rank_kept

    kept = depth_indices(6, 4, "importance", ranking)
    assert kept == [0, 3, 4, 5] and rank_kept(ranking, kept) == [3, 0, 2, 1]


def test_first_k_depth_and_bad_depths():
    assert depth_indices(12, 4, "first_k") == [0, 1, 2, 3]
    with pytest.raises(SearchSpaceError, match="cannot keep 5 of 4"):
        depth_indices(4, 5)
    with pytest.raises(SearchSpaceError, match="unknown depth rule"):
        depth_indices(4, 2, "random")


def test_arch_round_trips_through_dict():
    arch = Arch(7, 10, 160, 560, 16)
    assert Arch.from_dict(arch.to_dict()) == arch
    with pytest.raises(SearchSpaceError, match="lacks the key 'ffn'"):
        Arch.from_dict({"layers": 1, "heads": 1, "hidden": 8, "head_size": 8})
