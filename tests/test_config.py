"""The config layer: one default per knob (params.yaml's), every key known, one-line errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from autodistil import config
from autodistil.io import InputError

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _no_nulls(budgets: dict) -> dict:
    return {s: {n: {k: v for k, v in b.items() if v is not None} for n, b in g.items()} for s, g in budgets.items()}


def _walk(cls: type, where: str = ""):
    """(key path, field) of every field of a section dataclass, nested sections included."""
    hints = __import__("typing").get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        yield key, f
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _walk(hints[f.name], key)


def _get(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part]
    return tree


def test_every_default_is_params_yaml_value():
    defaults = config.plain(config.Params())
    defaults["search"]["budgets"] = _no_nulls(defaults["search"]["budgets"])
    for key, _ in _walk(config.Params):
        assert _get(defaults, key) == _get(PARAMS, key), key  # a KeyError: a config field params.yaml lacks


def test_every_params_yaml_key_is_known_to_a_config():
    known = {key for key, _ in _walk(config.Params)}

    def keys(tree: dict, where: str = ""):
        for k, v in tree.items():
            key = f"{where}.{k}" if where else k
            yield key
            if isinstance(v, dict) and key in known and not key.endswith(("floors", "values", "grids", "budgets",
                                                                          "students", "_samples")):
                yield from keys(v, key)

    assert sorted(set(keys(PARAMS)) - known) == []
    assert config.plain(config.load(ROOT / "params.yaml")) == config.plain(config.Params())


@pytest.mark.parametrize("profile", ["paper.yaml", "paper_dry_run.yaml"])
def test_profiles_are_checked_configs(profile):
    """A profile is params.yaml's sections with some keys changed: every key of it is known."""
    merged = PARAMS
    for name in ["paper.yaml", profile] if profile != "paper.yaml" else [profile]:  # the dry run overlays the paper
        raw = yaml.safe_load((ROOT / "configs" / name).read_text())
        merged = {**merged, **{s: {**merged.get(s, {}), **v} for s, v in raw.items()}}
    p = config.from_mapping(merged, profile)
    assert p.teacher.source == raw["teacher"]["source"]


@pytest.mark.parametrize("section, key, value, says", [
    ("superlm", "lr", "fast", "params.yaml: superlm.lr: expected a number, got 'fast'"),
    ("superlm", "loss", "l1", "superlm.loss: expected one of kl, mse"),
    ("superlm", "batch_size", 0, "superlm.batch_size: expected an integer >= 1"),
    ("superlm", "typo", 1, "superlm: unknown key(s) typo"),
    ("finetune", "group_by_length", "yes", "finetune.group_by_length: expected true or false"),
    ("finetune", "seeds", [1, 1], "finetune.seeds: expected a non-empty list of distinct integers"),
    ("search", "latency", {"repeats": 0}, "search.latency.repeats: expected an integer >= 1"),
    ("prepare_glue", "max_train_samples", {"default": -1}, "prepare_glue.max_train_samples.default: expected a count"),
    ("prepare_corpus", "workers", "many", "prepare_corpus.workers: expected an integer or one of auto"),
    ("partition", "band", {"floors": {"depth": 1}}, "partition.band.floors: unknown dimension(s) depth"),
    ("launch", "nnodes", 2, "launch.rdzv_endpoint: with nnodes 2, expected HOST:PORT"),
    ("partition", "band", {"floors": {"layers": float("nan")}}, "partition.band.floors.layers: expected a finite"),
    ("partition", "band", {"bands": [[0.1, "inf"]]}, "partition.band.bands[0][1]: expected a finite number"),
    ("partition", "grids", {"base": {"layers": [2, "two"]}}, "partition.grids.base.layers[1]: expected an integer"),
    ("superlm", "grad_clip", 0, "superlm.grad_clip: expected a finite number > 0"),  # 0 would zero every gradient
    ("superlm", "betas", [0.9, 1.0], "superlm.betas: expected two numbers in [0, 1), got [0.9, 1.0]"),
    ("superlm", "seed", -1, "superlm.seed: expected an integer >= 0"),
    ("search", "proxy", {"seed": -3}, "search.proxy.seed: expected an integer >= 0"),
    ("finetune", "seeds", [42, -1], "finetune.seeds: expected a non-empty list of distinct integers >= 0"),
    ("prepare_glue", "max_train_samples", {"default": 0}, "prepare_glue.max_train_samples.default: expected a count >= 1"),
])
def test_bad_values_name_their_key(section, key, value, says):
    bad = {**PARAMS, section: {**PARAMS[section], key: value}}
    with pytest.raises(InputError) as e:
        config.from_mapping(bad)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_no_gradient_clipping_is_null():
    assert config.from_mapping({**PARAMS, "superlm": {**PARAMS["superlm"], "grad_clip": None}}).superlm.grad_clip is None


def test_dvc_string_floats_and_nulls():
    """``dvc exp run -S superlm.lr=4e-5`` writes 4e-05 back, which YAML 1.1 reads as a string."""
    p = config.from_mapping({"superlm": {"lr": "4e-05", "max_tokens": None, "max_steps": "100"},
                             "finetune": {"warmup_ratio": "1e-1"}})
    assert p.superlm.lr == 4e-5 and p.superlm.max_steps == 100 and p.finetune.warmup_ratio == 0.1
    with pytest.raises(InputError, match="exactly one of max_steps and max_tokens"):
        config.from_mapping({"superlm": {"max_steps": 5}})


def test_unknown_section_and_budget_rules():
    with pytest.raises(InputError, match="unknown section"):
        config.from_mapping({**PARAMS, "superml": {}})
    search = {**PARAMS["search"], "students": {"base": "base"}}
    with pytest.raises(InputError, match="search.students must map every student"):
        config.from_mapping({**PARAMS, "search": search})
    search = {**PARAMS["search"], "budgets": {"base": {"base": {}}}, "students": {"base": "base"}}
    with pytest.raises(InputError, match="search.budgets.base.base: set at least one of"):
        config.from_mapping({**PARAMS, "search": search})


def test_config_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, autodistil.config; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
