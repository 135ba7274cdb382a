"""Partition: the paper's grids and bands, auto partitions for MiniLM and BERT-base, errors, the stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autodistil import partition as part
from autodistil.space import SearchSpaceError, TeacherDims, validate_disjoint
from stage_runner import dvc_path_args

REPO = Path(__file__).resolve().parents[1]
BERT_BASE = TeacherDims(layers=12, heads=12, hidden=768, ffn=3072)
MINILM = TeacherDims(layers=6, heads=12, hidden=384, ffn=1536)
CPU_VALUES = {"layers": 2, "heads": 2, "hidden": 3, "mlp_ratio": 2}

PAPER_GRIDS = yaml.safe_load((REPO / "configs/paper.yaml").read_text())["partition"]["grids"]
# METHOD.md: params (M) and GFLOPs per sub-space, as printed (rounded)
PAPER_BANDS = {"base": ((39, 79), (2.97, 7.85)), "small": ((13, 28), (0.64, 2.32)), "tiny": ((4.4, 10.7), (0.07, 0.52))}


def _close(value, printed) -> bool:
    """``value`` rounds to ``printed`` at the precision it was printed with (39 M, 4.4 M, 0.07 G)."""
    decimals = len(repr(float(printed)).split(".")[1].rstrip("0")) if isinstance(printed, float) else 0
    return abs(value - printed) <= 0.5 * 10 ** -decimals + 1e-9


# --------------------------------------------------------------------------------------------- explicit
def test_paper_grids_reproduce_method_bands_fixed_head():
    subs = part.explicit_partition(PAPER_GRIDS, "fixed_head", BERT_BASE)
    assert [s.name for s in subs] == ["base", "small", "tiny"]
    d = part.describe(subs, BERT_BASE)
    for name, ((p_lo, p_hi), (g_lo, g_hi)) in PAPER_BANDS.items():
        s = d[name]
        assert s["candidates"] == 256 and s["skipped"] == 0
        assert _close(s["params_paper"][0] / 1e6, p_lo) and _close(s["params_paper"][1] / 1e6, p_hi), name
        assert _close(s["gflops_paper"][0], g_lo) and _close(s["gflops_paper"][1], g_hi), name
    # exact figures, for the record
    assert d["base"]["params_paper"] == pytest.approx([39_211_248, 79_357_440])
    assert d["tiny"]["gflops_paper"] == pytest.approx([0.068507, 0.521296], abs=1e-6)
    # the band fractions the partition module uses as defaults are what these grids span
    for (lo, hi), name in zip(part.PAPER_BANDS["nonembed_params"], ["base", "small", "tiny"]):
        f_lo, f_hi = d[name]["nonembed_params_frac"]
        assert f_lo == pytest.approx(lo, abs=0.002) and f_hi == pytest.approx(hi, abs=0.006)
    assert d["tiny"]["largest"] == {**d["tiny"]["largest"], "layers": 7, "heads": 10, "hidden": 224, "ffn": 784,
                                    "head_size": 64, "attention_width": 640}
    assert d["tiny"]["ffn"] == sorted({int(h * r) for h in (128, 160, 192, 224) for r in (2, 2.5, 3, 3.5)})


def test_paper_grids_need_fixed_head_whole_heads_in_stock_leave_few_pairs():
    """Stock students keep whole 64-wide heads (H = 64 A): the paper's base grid keeps (9, 576) and (10, 640);
    its small grid (H 256-352, A 7-10) has no such pair at all."""
    base = part.explicit_partition({"base": PAPER_GRIDS["base"]}, "stock", BERT_BASE)
    d = part.describe(base, BERT_BASE)["base"]
    assert d["candidates"] == 32 and d["skipped"] == 256 - 32
    assert d["unused_values"] == {"heads": [11, 12], "hidden": [544, 608]}
    assert {(a.heads, a.hidden) for a in base[0].candidates(BERT_BASE)} == {(9, 576), (10, 640)}
    with pytest.raises(SearchSpaceError, match="'small' has an empty grid"):
        part.explicit_partition({"small": PAPER_GRIDS["small"]}, "stock", BERT_BASE)


def test_explicit_k1_one_shot_space():
    grids = {"all": {"layers": [3, 6, 9, 12], "heads": [3, 6, 9, 12], "hidden": [192, 384, 576, 768],
                     "mlp_ratio": [1, 2, 3, 4]}}  # the authors' K=1 coarse space
    (sub,) = part.explicit_partition(grids, "fixed_head", BERT_BASE)
    d = part.describe([sub], BERT_BASE)["all"]
    assert d["candidates"] == 256
    assert d["largest"]["hidden"] == 768 and d["params_frac"][1] == pytest.approx(1.0)


def test_overlapping_grids_raise():
    grids = {"a": {"layers": [5, 6], "heads": [8], "hidden": [128, 256], "mlp_ratio": [2]},
             "b": {"layers": [6], "heads": [8, 4], "hidden": [256], "mlp_ratio": [2, 3]}}
    with pytest.raises(SearchSpaceError, match=r"'a' and 'b' overlap \(both contain L6-A8-H256-F512\)"):
        part.explicit_partition(grids, "stock", MINILM)


@pytest.mark.parametrize("grid, message", [
    ({"layers": [], "heads": [8], "hidden": [128], "mlp_ratio": [2]}, "layers must be a non-empty list"),
    ({"layers": [2], "heads": [4], "hidden": [128], "mlp_ratio": [2]}, None),
    ({"layers": [2], "heads": [7, 9], "hidden": [128, 160], "mlp_ratio": [2]}, "empty grid"),
    ({"layers": [2, 7], "heads": [4], "hidden": [128], "mlp_ratio": [2]}, "layers value 7 exceeds the teacher's 6"),
    ({"layers": [2], "heads": [4, 16], "hidden": [128], "mlp_ratio": [2]}, "heads value 16 exceeds the teacher's 12"),
    ({"layers": [2], "heads": [4], "hidden": [128, 400], "mlp_ratio": [2]}, "hidden value 400 exceeds"),
    ({"layers": [2], "heads": [12], "hidden": [384], "mlp_ratio": [4.5]}, "FFN 1728 exceeds the teacher's 1536"),
    ({"layers": [2], "heads": [4], "hidden": [128], "mlp_ratio": [2], "dropout": [0.1]}, "unknown keys"),
    ({"layers": [2.5], "heads": [4], "hidden": [128], "mlp_ratio": [2]}, "must be an integer"),
])
def test_bad_explicit_grids_raise(grid, message):
    if message is None:
        assert len(part.explicit_partition({"x": grid}, "stock", MINILM)[0].candidates(MINILM)) == 1
        return
    with pytest.raises(SearchSpaceError, match=message):
        part.explicit_partition({"x": grid}, "stock", MINILM)


def test_teacher_exceeding_value_hidden_by_stock_skip_is_still_caught():
    # heads 13 matches no hidden size, so SubSpace.candidates alone would skip it silently
    grid = {"layers": [2], "heads": [4, 13], "hidden": [128], "mlp_ratio": [2]}
    with pytest.raises(SearchSpaceError, match="heads value 13 exceeds"):
        part.explicit_partition({"x": grid}, "stock", MINILM)


# ------------------------------------------------------------------------------------------------- auto
def _check_auto(subs, teacher, k, measure="gflops_exact"):
    assert len(subs) == k
    validate_disjoint(subs, teacher)
    for s in subs:
        cands = s.candidates(teacher)
        assert cands
        assert all(a.layers <= teacher.layers and a.hidden <= teacher.hidden and a.ffn <= teacher.ffn
                   and a.heads <= teacher.heads for a in cands)
    d = part.describe(subs, teacher)
    # ordered, disjoint ranges in the band measure (total params need not be ordered: embeddings grow with H)
    rng = [d[s.name][f"{measure}_frac"] for s in subs]
    assert all(rng[i][0] > rng[i + 1][1] for i in range(k - 1)), "bands must be disjoint and ordered"
    for name, s in d.items():  # no listed value without a candidate
        assert s["unused_values"] == {}, name
    return d


def test_auto_minilm_stock_whole_heads():
    """The auto (product-grid) partition of MiniLM: stock students of whole 32-wide heads, exact-GFLOPs bands."""
    values = {"layers": 4, "heads": 4, "hidden": 3, "mlp_ratio": 2}
    subs = part.auto_partition(MINILM, 3, values=values, floors={"layers": 0.16}, measure="gflops_exact",
                               prefer="width")
    d = _check_auto(subs, MINILM, 3)
    grids = {n: (s["layers"], s["heads"], s["hidden"], s["mlp_ratio"], s["candidates"]) for n, s in d.items()}
    assert grids == {
        "base": ([3, 4, 5, 6], [10, 11, 12], [320, 352, 384], [3.5, 4], 24),
        "small": ([2, 3, 4, 5], [6, 7, 8], [192, 224, 256], [2.5, 3], 24),
        "tiny": ([1, 2, 3, 4], [2, 3, 4], [64, 96, 128], [2, 2.5], 24),
    }
    for s in subs:  # whole heads: hidden = heads x 32, each hidden size with its own head count
        assert all(a.hidden == 32 * a.heads for a in s.candidates(MINILM))
        assert [h // 32 for h in s.hidden] == list(s.heads)
    # width before depth: the base grid reaches the teacher's width; depth first keeps the teacher's depth
    assert d["base"]["hidden"][-1] == MINILM.hidden
    depth = part.describe(part.auto_partition(MINILM, 3, values=CPU_VALUES, measure="nonembed_params",
                                              prefer="depth"), MINILM)
    assert depth["base"]["layers"][-1] == MINILM.layers and depth["base"]["hidden"][-1] < MINILM.hidden


@pytest.mark.parametrize("teacher", [MINILM, BERT_BASE], ids=["minilm", "bert-base"])
def test_band_partition_spans_depth_and_width_at_equal_cost(teacher):
    """The CPU default: every lattice point in (0.30, 0.50], (0.075, 0.15], (0.02, 0.04] of the teacher's exact
    GFLOPs; each sub-space holds students from shallow and wide to deep and narrow, all of whole heads."""
    from autodistil.cost import exact_gflops

    subs = part.band_partition(teacher, 3, floors={"layers": 0.16})
    d = _check_auto(subs, teacher, 3)
    full = exact_gflops(teacher.as_arch())
    for sub, (lo, hi) in zip(subs, part.BAND_BANDS):
        cands = sub.candidates(teacher)
        fracs = [exact_gflops(a) / full for a in cands]
        assert lo < min(fracs) and max(fracs) <= hi
        assert all(a.hidden == a.heads * teacher.head_size for a in cands)
        depths = {a.layers for a in cands}
        assert len(depths) >= 4, sub.name  # several depths at the same cost
        # the shallowest candidate is wider than the deepest one
        assert max(a.hidden for a in cands if a.layers == min(depths)) > max(a.hidden for a in cands
                                                                             if a.layers == max(depths))
    # the whole lattice in the band, nothing else: the tiny band of MiniLM keeps one layer at 192 wide
    if teacher is MINILM:
        assert d["tiny"]["candidates"] == 36 and "L1-A6-H192-F576" in {a.name for a in subs[2].candidates(MINILM)}
    # the band survives the round trip through subspaces.json
    doc = part.subspaces_document(subs, teacher, "t", "stock")
    assert doc["subspaces"]["base"]["band"] == [0.3, 0.5]


def test_band_partition_errors():
    with pytest.raises(SearchSpaceError, match="no candidate of the lattice in band"):
        part.band_partition(MINILM, 3, bands=[[0.3, 0.5], [0.075, 0.15], [0.0001, 0.001]])
    with pytest.raises(SearchSpaceError, match="disjoint and ordered"):
        part.band_partition(MINILM, 2, bands=[[0.3, 0.5], [0.1, 0.4]])


def test_auto_bert_base_follows_the_paper():
    """With the paper's settings (non-embedding-parameter bands, depth before width, fixed_head), the auto
    partition of BERT-base finds the paper's grids."""
    subs = part.auto_partition(BERT_BASE, 3, convention="fixed_head", measure="nonembed_params", prefer="depth")
    d = _check_auto(subs, BERT_BASE, 3, "nonembed_params")
    assert [s["layers"] for s in d.values()] == [[9, 10, 11, 12], [9, 10, 11, 12], [4, 5, 6, 7]]
    assert d["tiny"]["hidden"] == [128, 160, 192, 224] and d["small"]["hidden"] == [256, 288, 320, 352]
    assert d["base"]["heads"] == [9, 10, 11, 12] and d["base"]["hidden"] == [544, 576, 608, 640]
    assert all(s["candidates"] == 256 for s in d.values())


@pytest.mark.parametrize("prefer", ["width", "depth"])
def test_auto_bert_base_stock_whole_heads(prefer):
    # whole 64-wide heads put hidden on a lattice twice as coarse as the paper's (H/24 = 32): 2 values of H
    subs = part.auto_partition(BERT_BASE, 3, prefer=prefer, values={"layers": 4, "heads": 4, "hidden": 2, "mlp_ratio": 4})
    d = _check_auto(subs, BERT_BASE, 3, "nonembed_params")
    for s in subs:
        assert all(h % 64 == 0 for h in s.hidden) and [h // 64 for h in s.hidden] == list(s.heads)
    layers = {n: s["layers"] for n, s in d.items()}
    assert (layers["base"][-1] == 12) == (prefer == "depth")


@pytest.mark.parametrize("teacher", [MINILM, BERT_BASE], ids=["minilm", "bert-base"])
def test_auto_k1_one_shot(teacher):
    values = CPU_VALUES if teacher is MINILM else None
    convention = "stock" if teacher is MINILM else "fixed_head"
    (sub,) = part.auto_partition(teacher, 1, values=values, convention=convention)
    assert sub.name == "all"
    d = _check_auto([sub], teacher, 1, "nonembed_params")["all"]
    three = part.describe(part.auto_partition(teacher, 3, values=values, convention=convention), teacher)
    # one space spanning roughly what the three cover
    assert d["nonembed_params_frac"][0] < three["small"]["nonembed_params_frac"][0]
    assert d["nonembed_params_frac"][1] > three["small"]["nonembed_params_frac"][1]


@pytest.mark.parametrize("k, values", [(2, None), (4, {"layers": 2, "heads": 2, "hidden": 2, "mlp_ratio": 2})])
def test_auto_other_k(k, values):
    # K=4 needs smaller grids: a 4^4 grid spans ~9x in cost, four disjoint ones do not fit above the floors
    subs = part.auto_partition(BERT_BASE, k, convention="fixed_head", values=values)
    assert [s.name for s in subs] == part.default_names(k)
    _check_auto(subs, BERT_BASE, k, "nonembed_params")


def test_auto_errors():
    with pytest.raises(SearchSpaceError, match="K must be a positive integer"):
        part.auto_partition(MINILM, 0)
    with pytest.raises(SearchSpaceError, match="2 bands for K=3"):
        part.auto_partition(MINILM, 3, bands=[[0.3, 0.7], [0.05, 0.2]])
    with pytest.raises(SearchSpaceError, match="disjoint and ordered"):
        part.auto_partition(MINILM, 2, bands=[[0.3, 0.7], [0.05, 0.4]])
    with pytest.raises(SearchSpaceError, match="no grid for sub-space 'tiny'"):
        part.auto_partition(BERT_BASE, 4, convention="fixed_head")  # four disjoint 4^4 grids do not fit
    with pytest.raises(SearchSpaceError, match="unknown preference"):
        part.auto_partition(MINILM, 3, prefer="breadth")


def test_default_bands():
    assert part.default_bands(3) == [(0.26, 0.70), (0.054, 0.20), (0.005, 0.044)]
    assert part.default_bands(1) == [(0.005, 0.70)]
    assert part.default_bands(3, "gflops_exact") == [(0.35, 0.9), (0.09, 0.3), (0.02, 0.08)]
    b4 = part.default_bands(4)
    assert len(b4) == 4 and all(b4[i][0] > b4[i + 1][1] for i in range(3))


def test_subspaces_json_roundtrip(tmp_path):
    subs = part.explicit_partition(PAPER_GRIDS, "fixed_head", BERT_BASE)
    doc = part.subspaces_document(subs, BERT_BASE, "bert-base-uncased", "fixed_head")
    path = tmp_path / "subspaces.json"
    path.write_text(json.dumps(doc))
    loaded = part.load_subspaces(path)
    assert list(loaded) == ["base", "small", "tiny"]
    assert loaded == {s.name: s for s in subs}
    assert part.load_teacher_shape(path)[0] == BERT_BASE
    assert doc["teacher"]["params_paper"] == pytest.approx(109_483_008)


# ------------------------------------------------------------------------------------------------ stage
def _teacher_dir(tmp_path: Path, dims: TeacherDims) -> Path:
    """A model folder holding only a BERT config.json (the stage reads no weights)."""
    folder = tmp_path / "teacher"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "bert", "num_hidden_layers": dims.layers, "num_attention_heads": dims.heads,
        "hidden_size": dims.hidden, "intermediate_size": dims.ffn, "vocab_size": 30522,
        "max_position_embeddings": 512, "type_vocab_size": 2}))
    return folder


def _write_params(tmp_path: Path, partition: dict, dims: TeacherDims) -> None:
    params = {"teacher": {"source": str(_teacher_dir(tmp_path, dims))}, "mlflow": {"experiment": "test-partition"},
              "partition": partition}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _run(tmp_path: Path, partition: dict, dims: TeacherDims = MINILM, root: Path | None = None):
    _write_params(tmp_path, partition, dims)
    env = os.environ | {"DVC_ROOT": str(root or tmp_path), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(REPO / "stages/partition.py"), *dvc_path_args("partition.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


AUTO = {"mode": "auto", "k": 3, "names": ["base", "small", "tiny"], "convention": "stock", "seq_len": 128,
        "auto": {"measure": "nonembed_params", "bands": None, "values": CPU_VALUES, "min_candidates": 8}}
BAND = {"mode": "band", "k": 3, "names": ["base", "small", "tiny"], "convention": "stock", "seq_len": 128,
        "band": {"bands": None, "floors": {"layers": 0.16}}}


def test_stage_band_default(tmp_path, mlflow_root):
    r = _run(tmp_path, BAND, MINILM, mlflow_root)
    assert r.returncode == 0, r.stderr
    loaded = part.load_subspaces(tmp_path / "partition/subspaces.json")
    assert loaded == {s.name: s for s in part.band_partition(MINILM, 3, floors={"layers": 0.16})}
    metrics = json.loads((tmp_path / "metrics/partition.json").read_text())
    assert metrics["subspaces"]["base"]["gflops_exact_frac_max"] <= 0.5


def test_stage_band_records_the_bands_it_used_for_any_k(tmp_path, mlflow_root):
    names = part.default_names(2)
    r = _run(tmp_path, BAND | {"k": 2, "names": names}, MINILM, mlflow_root)
    assert r.returncode == 0, r.stderr
    settings = json.loads((tmp_path / "partition/subspaces.json").read_text())["settings"]
    assert settings["bands"] == [list(b) for b in part.default_bands(2, "gflops_exact")]


def test_stage_explicit_paper_profile(tmp_path, mlflow_root):
    r = _run(tmp_path, {"mode": "explicit", "k": 3, "names": ["base", "small", "tiny"], "convention": "fixed_head",
                        "grids": PAPER_GRIDS}, BERT_BASE, mlflow_root)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "partition/subspaces.json").read_text())
    metrics = json.loads((tmp_path / "metrics/partition.json").read_text())
    assert doc["convention"] == "fixed_head" and doc["teacher"]["hidden"] == 768
    assert metrics["candidates_total"] == 768 and metrics["subspaces"]["tiny"]["candidates"] == 256
    assert metrics["mlflow_run_id"]
    assert set(part.load_subspaces(tmp_path / "partition/subspaces.json")) == {"base", "small", "tiny"}


@pytest.mark.parametrize("change, message", [
    ({"names": ["base", "small"]}, "partition.names ['base', 'small'] does not match the sub-spaces produced"),
    ({"k": 1}, "set partition.names: ['all']"),
    ({"mode": "manual"}, "partition.mode: expected one of band, auto, explicit, got 'manual'"),
    ({"mode": "band", "band": {"bands": "wide"}}, "partition.band.bands: expected a list of lists of numbers or null"),
    ({"k": 0}, "partition.k: expected an integer >= 1, got 0"),
    ({"auto": {"values": {"depth": 2}}}, "partition.auto.values: unknown dimension(s) depth"),
    ({"auto": {"measure": "flops"}}, "partition.auto.measure: expected one of"),
    ({"mode": "explicit", "grids": {}}, "partition.grids: explicit mode needs each sub-space's grid"),
    ({"mode": "explicit", "k": 2, "names": ["a", "b"], "grids": {
        "a": {"layers": [5, 6], "heads": [8], "hidden": [128, 256], "mlp_ratio": [2]},
        "b": {"layers": [6], "heads": [8, 4], "hidden": [256], "mlp_ratio": [2, 3]}}}, "'a' and 'b' overlap"),
    ({"mode": "explicit", "k": 1, "names": ["a"], "grids": {
        "a": {"layers": [5, 8], "heads": [8], "hidden": [128], "mlp_ratio": [2]}}}, "layers value 8 exceeds"),
    # stock students keep whole teacher heads: hidden 100 with 5 heads is no multiple of MiniLM's 32-wide heads
    ({"mode": "explicit", "k": 1, "names": ["a"], "convention": "stock", "grids": {
        "a": {"layers": [2], "heads": [5], "hidden": [100], "mlp_ratio": [2]}}}, "no hidden size equals heads x"),
])
def test_stage_bad_input_one_line_exit_1_nothing_written(tmp_path, mlflow_root, monkeypatch, capsys, change, message):
    """In-process (fast); the subprocess test below checks the real exit status once."""
    import runpy

    _write_params(tmp_path, {**AUTO, **change}, MINILM)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["partition.py", *dvc_path_args("partition.py")])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "stages/partition.py"), run_name="__main__")
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "partition").exists() and not (tmp_path / "metrics").exists()


def test_stage_subprocess_bad_input_exit_1(tmp_path, mlflow_root):
    r = _run(tmp_path, {**AUTO, "names": "base"}, MINILM, mlflow_root)
    assert r.returncode == 1 and r.stderr.strip() == ("error: params.yaml: partition.names: expected a list of strings, "
                                                      "got 'base'")
    assert not (tmp_path / "partition").exists() and not (tmp_path / "metrics").exists()


def test_profile_flags():
    sys.path.insert(0, str(REPO / "configs"))
    try:
        import flags
    finally:
        sys.path.pop(0)
    profile = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    out, unknown = flags.flags(profile, base)
    assert "++partition.grids.tiny.hidden=[128,160,192,224]" in out
    assert "++teacher.source=bert-base-uncased" in out and "++partition.mode=explicit" in out
    assert unknown == []  # every knob of the profile is one that params.yaml (hence a stage) has
    # the profile's students replace the default's whole: no default budget (or its fraction) survives
    i = out.index("~search.budgets")
    assert out[i - 1] == "-S" and "++search.budgets.small.small-2.max_gflops=0.87" in out[i:]
    assert not any(f.startswith("++search.budgets.") and "frac" in f for f in out)
    assert all(" " not in f for f in out)


@pytest.mark.parametrize("teacher, message", [
    ("missing", "no such model folder"),
    ("not_bert", "is a 'gpt2' model; autodistil supports the model types: bert"),
    ("bert_without_dims", "its config lacks num_hidden_layers"),
])
def test_a_teacher_that_is_missing_or_not_bert_like_is_named(tmp_path, mlflow_root, monkeypatch, capsys,
                                                             teacher, message):
    import runpy

    _write_params(tmp_path, BAND, MINILM)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    folder = tmp_path / teacher
    if teacher == "not_bert":
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2, "n_embd": 64}))
    if teacher == "bert_without_dims":
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    params["teacher"]["source"] = str(folder)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["partition.py", *dvc_path_args("partition.py")])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(REPO / "stages/partition.py"), run_name="__main__")
    lines = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and len(lines) == 1 and message in lines[0] and str(folder) in lines[0], lines
    assert not (tmp_path / "partition").exists() and not (tmp_path / "metrics").exists()


def test_nonembed_params_do_not_depend_on_the_vocabulary_at_any_embedding_width():
    from autodistil.cost import Vocab
    from autodistil.space import Arch

    arch = Arch(layers=2, heads=4, hidden=256, ffn=1024, head_size=64)
    for width in (None, 128):  # BERT's embeddings at the hidden size; ELECTRA-small's narrower, projected up
        small, large = Vocab(size=1000, embedding_size=width), Vocab(size=250_000, embedding_size=width)
        assert part.measure_of(arch, "nonembed_params", MINILM, small) == pytest.approx(
            part.measure_of(arch, "nonembed_params", MINILM, large))
