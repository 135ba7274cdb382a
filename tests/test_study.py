import json

import pytest

from autodistil.io import InputError
from autodistil.space import Arch
from autodistil.study import glue_table, parse_arch, parse_overrides, point_key, sliced_state, weight_change
from tiny import tiny_subspace, tiny_superlm, tiny_teacher


def test_point_keys_name_every_setting_and_the_slice_has_one_key():
    assert point_key("tiny", "L1-A6-H192-F384", "shared", 0, {"lr": 1e-4}) == "tiny-L1-A6-H192-F384-slice"
    assert point_key("tiny", "L1", "standalone", 4096, {"lr": 1e-4, "hidden_weight": 1}) == (
        "tiny-L1-standalone-4096-hidden_weight=1-lr=0.0001")


def test_arch_and_override_parsing():
    assert parse_arch("L1-A6-H192-F384", 32) == Arch(1, 6, 192, 384, 32)
    with pytest.raises(InputError, match="expected L<layers>-A<heads>-H<hidden>-F<ffn>"):
        parse_arch("tiny", 32)
    assert parse_overrides(["lr=1e-4", "relation_split=fixed"]) == {"lr": 1e-4, "relation_split": "fixed"}
    with pytest.raises(InputError, match="expected key=value"):
        parse_overrides(["lr"])


def test_weight_change_per_module_group():
    superlm = tiny_superlm(tiny_teacher(), tiny_subspace())
    arch = Arch(2, 2, 48, 96, 16)
    before = sliced_state(superlm, arch)
    assert set(weight_change(before, before).values()) == {0.0}
    after = {k: v.clone() for k, v in before.items()}
    for k in after:
        if "intermediate.dense.weight" in k:
            after[k] *= 1.5  # only the FFN's first matrices move, by half their norm
    change = weight_change(before, after)
    assert change["embeddings"] == change["attention q/k/v"] == change["LayerNorm"] == 0.0
    ffn = [k for k in before if "intermediate.dense" in k or (".output.dense" in k and "attention" not in k)]
    moved = sum(float(before[k].pow(2).sum()) for k in ffn if "intermediate.dense.weight" in k)
    total = sum(float(before[k].pow(2).sum()) for k in ffn)
    assert change["FFN"] == pytest.approx(0.5 * (moved / total) ** 0.5)


def test_glue_table_retention_per_seed(tmp_path):
    runs = []
    for key, scores in {"teacher": [80, 82], "t-L1-A1-H1-F1-slice": [70, 70], "t-L1-A1-H1-F1-twin": [60, 62]}.items():
        for seed, score in zip((1, 2), scores):
            runs.append({"key": key, "task": "SST-2", "seed": seed, "score": score, "pooling": "mean"})
    (tmp_path / "glue.jsonl").write_text("\n".join(map(json.dumps, runs)) + "\n")
    _, rows = glue_table(tmp_path)
    ret = rows["t-L1-A1-H1-F1-slice [mean]"]["retention"]
    assert ret[0] == pytest.approx(((70 - 60) / 20 + (70 - 62) / 20) / 2)
    assert rows["teacher [mean]"]["avg"] == 81.0 and rows["teacher [mean]"]["retention"] is None
