"""The ablation study's parts: training compute, probes, the arms' plan at equal compute, and the report."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autodistil.compute import expected_step_flops, sampled_flops, step_flops
from autodistil.io import InputError
from autodistil.sampling import SubnetSampler
from autodistil.space import Arch, TeacherDims
from conftest import REPO
from tiny import superlm_params, tiny_subspace, tiny_superlm, tiny_teacher

MINILM = TeacherDims(layers=6, heads=12, hidden=384, ffn=1536)


# ------------------------------------------------------------------------------------------------ compute
@pytest.mark.parametrize("mode, num_random", [("sandwich", 2), ("uniform", 3)])
def test_expected_step_flops_is_the_mean_of_what_the_sampler_draws(mode, num_random):
    sub = tiny_subspace()
    dims = TeacherDims.from_config(tiny_teacher().config)
    cands, largest, smallest = sub.candidates(dims), sub.largest(dims), sub.smallest(dims)
    sampler = SubnetSampler(cands, largest, smallest, mode, num_random, seed=3)
    steps = 4000
    drawn = sampled_flops(sampler, steps, sequences=8, seq_len=16)
    assert drawn == pytest.approx(sum(step_flops(sampler(s), 8, 16) for s in range(steps)), rel=1e-12)
    expected = expected_step_flops(cands, largest, smallest, mode, num_random, 8, 16)
    assert drawn / steps == pytest.approx(expected, rel=0.02)  # 4,000 draws: the mean within 2 %
    if mode == "sandwich":  # the ends are always there
        assert expected > step_flops([largest, smallest], 8, 16)


def test_training_flops_are_six_macs_per_token_and_count_the_whole_last_layer_only_with_the_hidden_term():
    arch = Arch(2, 4, 64, 128, 16)
    from autodistil.throughput import training_macs

    assert step_flops([arch], 3, 16) == pytest.approx(6 * 3 * training_macs(arch, 16))
    assert step_flops([arch], 3, 16, whole_layer=True) > step_flops([arch], 3, 16)


def test_a_zero_budget_trains_nothing():

    base = {"batch_size": 4}
    assert superlm_params({**base, "max_steps": 0}).total_steps(16) == 0
    assert superlm_params({**base, "max_tokens": 0}).total_steps(16) == 0
    with pytest.raises(InputError, match="gives 0 steps"):
        superlm_params({**base, "max_tokens": 10}).total_steps(16)


# ------------------------------------------------------------------------------------------------- probes
def _partition(k: int) -> list:
    from autodistil.partition import band_partition

    bands = [[0.02, 0.50]] if k == 1 else None
    return band_partition(MINILM, k, ["all"] if k == 1 else None, bands, floors={"layers": 0.16})


def test_the_probe_set_is_the_same_for_k1_and_k3_and_each_partition_trains_every_probe():
    from autodistil.probes import home_subspace, probe_set

    probes = probe_set(MINILM, per_band=4, floors={"layers": 0.16})
    assert len(probes) == 12 and len({p.arch for p in probes}) == 12
    assert [p.band for p in probes] == ["base"] * 4 + ["small"] * 4 + ["tiny"] * 4
    for p in probes:  # in its band, and each band's cheapest and dearest lattice points are probes
        lo, hi = {"base": (0.30, 0.50), "small": (0.075, 0.15), "tiny": (0.02, 0.04)}[p.band]
        assert lo < p.gflops_frac <= hi
    from autodistil.cost import exact_gflops

    for sub in _partition(3):
        costs = sorted(exact_gflops(a) for a in sub.candidates(MINILM))
        mine = sorted(exact_gflops(p.arch) for p in probes if p.band == sub.name)
        assert mine[0] == costs[0] and mine[-1] == costs[-1]
    for k in (3, 1):
        candidates = {s.name: s.candidates(MINILM) for s in _partition(k)}
        for p in probes:
            home = home_subspace(p.arch, candidates)
            assert home == (p.band if k == 3 else "all")  # a candidate the arm's SuperLM trains
    # a probe no sub-space lists goes to the smallest envelope that holds it, or nowhere
    parts = {"big": [Arch(4, 8, 256, 512, 32)], "small": [Arch(2, 4, 128, 256, 32), Arch(3, 2, 64, 128, 32)]}
    assert home_subspace(Arch(3, 4, 128, 256, 32), parts) == "small"
    assert home_subspace(Arch(4, 6, 192, 384, 32), parts) == "big"
    assert home_subspace(Arch(5, 8, 256, 512, 32), parts) is None


def test_cka_is_one_for_the_teacher_itself_and_invariant_to_a_rotation():
    from autodistil.yardstick import StreamingCKA as _CKA

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    same, rotated, other = _CKA(), _CKA(), _CKA()
    for part in x.split(64):  # streamed in pieces, as over held-out batches
        same.add(part, part)
        rotated.add(part, 3 * part @ q + 1)
        other.add(part, torch.randn(len(part), 8, generator=g))
    assert same.value() == pytest.approx(1, abs=1e-12) and rotated.value() == pytest.approx(1, abs=1e-9)
    assert other.value() < 0.3


def test_probes_of_an_untrained_superlm_score_the_teachers_own_slice_as_the_teacher():
    from autodistil.distill import DistillSpec, HeldOut
    from autodistil.probes import Probe, score_probes, summarise

    teacher = tiny_teacher()
    sub = tiny_subspace()
    superlm = tiny_superlm(teacher, sub)
    dims = TeacherDims.from_config(teacher.config)
    full, small = sub.largest(dims), sub.smallest(dims)
    assert full == dims.as_arch()
    blocks = np.random.default_rng(0).integers(5, 100, size=(6, 12))
    heldout = HeldOut(teacher, blocks, DistillSpec(relation_heads=superlm.config.relation_heads), 4)
    probes = [Probe("t-0", "t", full, 1.0), Probe("t-1", "t", small, 0.1), Probe("u-0", "u", small, 0.1)]
    rows = score_probes(probes, {"sub": (superlm, heldout)}, {"t-0": "sub", "t-1": "sub", "u-0": None})
    assert rows[0]["relation"] == pytest.approx(0, abs=1e-5) and rows[0]["cka"] == pytest.approx(1, abs=1e-5)
    assert rows[1]["relation"] > 1e-3 and rows[1]["cka"] < 0.999
    assert rows[2]["relation"] is None  # not reached by the arm's partition: no score, counted
    summary = summarise(rows)
    assert summary["by_band"]["t"]["probes"] == 2 and summary["by_band"]["u"]["unreached"] == 1
    assert summary["all"]["cka"] == pytest.approx((rows[0]["cka"] + rows[1]["cka"]) / 2)


# ----------------------------------------------------------------------------------------------- the plan
def test_every_arm_of_the_study_gets_the_reference_compute_within_5_percent():
    from autodistil.ablations import Study, plan

    study = Study.load(REPO / "configs" / "ablations.yaml")
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    runs = plan(study, base, search_dir=REPO / "metrics" / "search")
    ref = {r.scale: r.planned_flops for r in runs if r.arm == study.reference}
    assert ref["large"] == pytest.approx(study.scales["large"] * ref["default"], rel=0.05)
    matched = [r for r in runs if study.arms[r.arm].compute == "match"]
    assert {r.arm for r in matched} >= {"k1", "uniform", "mse", "hidden", "leading"}
    for r in matched:
        assert r.planned_flops == pytest.approx(ref[r.scale], rel=0.05), r.name
    k1 = next(r for r in runs if r.name == "abl-k1-default-s0")
    assert k1.overrides["superlm"]["max_steps"] > 20  # one SuperLM does the work of three: more steps, not assumed
    untrained = [r for r in runs if r.arm == "untrained"]  # one scale, every seed (it picks the calibration blocks)
    assert [r.name for r in untrained] == ["abl-untrained-default-s0", "abl-untrained-default-s1"]
    assert all(r.planned_flops == 0 for r in untrained)


def _search_results(folder: Path, **students: str) -> Path:
    """metrics/search/<subspace>.json as the search stage writes it (the student named as its sub-space)."""
    folder.mkdir(parents=True, exist_ok=True)
    fracs = {"base": 0.5, "small": 0.15, "tiny": 0.04}  # params.yaml's budgets, as the search records them
    for sub, arch in students.items():
        budget = {"max_gflops": 1.0, "max_gflops_frac": fracs.get(sub, 1.0)}
        (folder / f"{sub}.json").write_text(json.dumps({"students": {sub: {"arch_name": arch, "budget": budget}}}))
    return folder


def test_an_arm_of_the_reference_students_pins_every_budget_to_the_default_runs_choice(tmp_path, capsys):
    from autodistil.ablations import Study, main, plan, queue_commands

    study = Study.load(REPO / "configs" / "ablations.yaml")
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    found = _search_results(tmp_path / "search", base="L4-A12-H384-F768", small="L1-A12-H384-F768",
                            tiny="L1-A6-H192-F384")
    (run,) = plan(study, base, ["untrained"], seeds=[0], search_dir=found)
    budgets = run.overrides["search"]["budgets"]
    assert budgets["base"]["base"] == {"max_gflops_frac": 0.5, "arch": "L4-A12-H384-F768"}  # its limit kept
    assert budgets["tiny"]["tiny"]["arch"] == "L1-A6-H192-F384"
    (cmd,) = queue_commands([run], base)
    assert "~search.budgets" in cmd and "++search.budgets.small.small.arch=L1-A12-H384-F768" in cmd
    (short,) = plan(study, base, ["untrained"], seeds=[0], search_dir=tmp_path / "none", probes_only=True)
    assert "search" not in short.overrides  # stopping at the probes, it searches nothing: no pin, no files needed
    (k3,) = plan(study, base, ["k3"], ["default"], [0], search_dir=tmp_path / "none")  # a searching arm: no pin
    assert "budgets" not in k3.overrides.get("search", {})
    stale = json.loads((found / "tiny.json").read_text())
    stale["students"]["tiny"]["budget"]["max_gflops_frac"] = 0.05  # searched under another budget
    (found / "tiny.json").write_text(json.dumps(stale))
    with pytest.raises(InputError, match=r"'tiny' was searched under the budget .*params.yaml asks .*dvc repro search@tiny"):
        plan(study, base, ["untrained"], seeds=[0], search_dir=found)
    (found / "small.json").unlink()
    with pytest.raises(SystemExit) as e:
        main(["plan", "--arms", "untrained", "--search", str(found)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and err[-1].startswith(f"error: {found / 'small.json'}: no search result of the "
                                                    f"default run, which arms.untrained (students: reference)")
    config = yaml.safe_load((REPO / "configs" / "ablations.yaml").read_text())
    config["arms"]["k3"]["params"] = {"superlm": {"lr": 1e-3}}  # the default run would not be the reference
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match="the reference arm 'k3' must have no params"):
        Study.load(tmp_path / "a.yaml")
    config["arms"]["k3"]["params"] = {}
    config.pop("glue")  # nothing would tell a fine-tuned run from a probes-only one
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match="arms marked glue: true need the 'glue' overrides"):
        Study.load(tmp_path / "a.yaml")


def test_the_queue_commands_are_dvc_experiments_named_for_their_arm(tmp_path):
    from autodistil.ablations import Study, plan, queue_commands

    study = Study.load(REPO / "configs" / "ablations.yaml")
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    runs = plan(study, base, ["k1", "mse"], ["default"], [1])
    k1, mse = queue_commands(runs, base)
    assert k1[:6] == ["dvc", "exp", "run", "--queue", "-n", "abl-k1-default-s1"]
    assert "++superlm.seed=1" in k1 and "++partition.k=1" in k1 and "~search.budgets" in k1
    # a GLUE arm runs the whole pipeline with the study's fine-tuning seeds; the others stop at the probes
    assert "probes" not in k1 and "++finetune.seeds=[42,43,44]" in k1
    assert mse[5] == "abl-mse-default-s1" and mse[-1] == "probes" and not any("finetune" in x for x in mse)
    (short,) = queue_commands(plan(study, base, ["k1"], ["default"], [1], probes_only=True), base)
    assert short[-1] == "probes" and not any("finetune" in x for x in short) and "++partition.k=1" in short


def test_a_bad_ablation_config_is_named(tmp_path):
    from autodistil.ablations import Study, plan

    bad = tmp_path / "a.yaml"
    bad.write_text(yaml.safe_dump({"reference": "nope", "arms": {"k3": {}}}))
    with pytest.raises(InputError, match="reference 'nope'"):
        Study.load(bad)
    bad.write_text(yaml.safe_dump({"arms": {"k3": {"compute": "half"}}}))
    with pytest.raises(InputError, match="arms.k3"):
        Study.load(bad)
    good = tmp_path / "b.yaml"
    good.write_text(yaml.safe_dump({"arms": {"k3": {}}}))
    with pytest.raises(InputError, match="unknown arm"):
        plan(Study.load(good), yaml.safe_load((REPO / "params.yaml").read_text()), ["k9"])


# --------------------------------------------------------------------------------------------- the report
def _exp(name: str, relation: float, cka: float, flops: float = 4e12, drop: str | None = None) -> dict:
    metrics = {
        "metrics/probes.json": {"data": {"all": {"relation": relation, "cka": cka},
                                         "by_band": {"base": {"relation": relation, "cka": cka}}}},
        "metrics/superlm/base.json": {"data": {"train_flops": flops}},
    }
    if drop:
        metrics.pop(drop)
    return {"rev": name[:7], "name": name, "data": {"rev": name[:7], "name": name, "params": {}, "metrics": metrics}}


def _shown(*exps) -> list:  # DVC 3's `exp show --json` nesting: commits, experiments, revs
    return [{"rev": "workspace", "data": {"rev": "workspace", "metrics": {}}},
            {"rev": "abc", "name": "main", "data": {"rev": "abc", "metrics": {}},
             "experiments": [{"name": e["name"], "revs": [e]} for e in exps]}]


def test_the_report_gives_every_arm_with_its_spread_and_what_exceeds_it(tmp_path):
    from autodistil.ablation_report import write_report
    from autodistil.ablations import Study

    study = Study.load(REPO / "configs" / "ablations.yaml")
    shown = _shown(_exp("abl-k3-default-s0", 1.00, 0.50), _exp("abl-k3-default-s1", 1.02, 0.52),
                   _exp("abl-k1-default-s0", 1.30, 0.51), _exp("abl-k1-default-s1", 1.32, 0.49),
                   _exp("abl-untrained-default-s0", 1.01, 0.40, flops=0), _exp("someone-else", 9, 9))
    out = tmp_path / "docs" / "ablations.md"
    write_report(study, shown, out)
    text = out.read_text()
    rows = {}
    for line in text.splitlines():  # the first table: probes over all bands
        if line.startswith("| "):
            rows.setdefault(line.split(" | ")[0].strip("| "), line)
    assert "1.010 ± 0.014" in rows["k3"] and "| 2 |" in rows["k3"]
    assert "+0.300 | yes" in rows["k1"]  # relation: beyond both seed ranges; CKA: not
    assert rows["k1"].endswith("| -0.010 | no |")
    assert "| 1 | 0.00 |" in rows["untrained"] and "+0.000 | one run" in rows["untrained"]  # no range: no claim
    assert "someone" not in text and (out.parent / "ablations_probes.png").stat().st_size > 0
    assert "- **k1**: one SuperLM over the span of the three bands" in text  # each arm says what it is


@pytest.mark.parametrize("drop", ["metrics/probes.json", "metrics/superlm/base.json"])
def test_the_report_fails_in_one_line_when_an_experiment_lacks_a_metric(tmp_path, drop, capsys):
    from autodistil.ablations import main

    shown = _shown(_exp("abl-k3-default-s0", 1.0, 0.5), _exp("abl-k1-default-s0", 1.1, 0.5, drop=drop))
    (tmp_path / "shown.json").write_text(json.dumps(shown))
    with pytest.raises(SystemExit) as e:
        main(["report", "--config", str(REPO / "configs" / "ablations.yaml"), "--exp-show",
              str(tmp_path / "shown.json"), "--out", str(tmp_path / "ablations.md")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and len(err) == 1 and "abl-k1-default-s0 lacks metrics/" in err[0], err
    assert not (tmp_path / "ablations.md").exists()


def test_a_run_of_no_steps_leaves_the_superlm_as_sliced_and_writes_no_checkpoint(tmp_path):
    import dataclasses

    from autodistil.train import train_superlm
    from tiny import training_blocks, training_setup

    teacher, superlm, sampler, cfg = training_setup()
    cfg = dataclasses.replace(cfg, max_steps=0)
    before = {k: v.clone() for k, v in superlm.state_dict().items()}
    result = train_superlm(superlm, teacher, training_blocks(), sampler, cfg, tmp_path, progress=False)
    assert result.steps == 0 and result.history == []
    assert all(torch.equal(before[k], v) for k, v in superlm.state_dict().items())
    assert not list(tmp_path.glob("**/*.pt"))
    assert sampled_flops(sampler, result.steps, cfg.batch_size, 16) == 0


def test_queued_running_and_failed_experiments_are_left_out_and_listed(tmp_path):
    from autodistil.ablation_report import write_report
    from autodistil.ablations import Study

    study = Study.load(REPO / "configs" / "ablations.yaml")
    shown = _shown(_exp("abl-k3-default-s0", 1.0, 0.5), _exp("abl-k1-default-s0", 1.1, 0.5))
    running = {"name": "abl-k1-default-s1", "executor": {"state": "running"},
               "revs": [{"rev": "r", "name": "abl-k1-default-s1", "data": {"metrics": {}}}]}
    shown[1]["experiments"].append(running)  # no metrics yet: not an error, not a row
    out = tmp_path / "ablations.md"
    write_report(study, shown, out)
    text = out.read_text()
    assert "Not finished when this was written: abl-k1-default-s1 (running)." in text
    assert "| k1 | 1 |" in text


def test_each_scale_gets_its_own_steps_and_an_untrained_arm_is_forced_to_no_steps(tmp_path, capsys):
    from autodistil.ablations import Study, main, plan

    config = yaml.safe_load((REPO / "configs" / "ablations.yaml").read_text())
    config["scales"] = {"default": 1, "twin": 1, "large": 3}
    config["arms"]["untrained"]["params"] = {}  # compute: none alone must stop training
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(config))
    study = Study.load(tmp_path / "a.yaml")
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    runs = {r.name: r for r in plan(study, base, ["k1", "untrained"], ["large", "default", "twin"], [0],
                                    search_dir=REPO / "metrics" / "search")}
    steps = {n: r.overrides["superlm"]["max_steps"] for n, r in runs.items()}
    assert steps["abl-k1-default-s0"] == steps["abl-k1-twin-s0"] > 20  # the same compute, both set
    assert steps["abl-k1-large-s0"] == pytest.approx(3 * steps["abl-k1-default-s0"], abs=1)
    # untrained: one name whatever scales are asked for (the config's first), no steps even without its own params
    assert [n for n in runs if "untrained" in n] == ["abl-untrained-default-s0"]
    assert steps["abl-untrained-default-s0"] == 0
    assert runs["abl-untrained-default-s0"].overrides["superlm"]["max_tokens"] is None
    main(["plan", "--config", str(tmp_path / "a.yaml"), "--arms", "k3", "k1", "--scales", "large", "default",
          "--seeds", "0"])
    err = capsys.readouterr().err
    assert "abl-k3-large-s0: " in err and "(x1.000 of the reference)" in err.splitlines()[0]
    assert all("of the reference" in line for line in err.strip().splitlines())


def test_an_arm_with_a_misspelt_knob_is_refused(tmp_path, capsys):
    from autodistil.ablations import main

    config = yaml.safe_load((REPO / "configs" / "ablations.yaml").read_text())
    config["arms"]["mse"]["params"] = {"search": {"critrion": "hidden"}}  # superlm keys: TrainConfig names them
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as e:
        main(["plan", "--config", str(tmp_path / "a.yaml"), "--arms", "mse"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and "arms.mse: search: unknown key(s) critrion" in err[-1]


def test_a_name_run_again_under_a_newer_commit_counts_once_and_unreached_probes_stop_the_report(tmp_path):
    from autodistil.ablation_report import write_report
    from autodistil.ablations import Study

    study = Study.load(REPO / "configs" / "ablations.yaml")
    newer, older = _shown(_exp("abl-k3-default-s0", 1.0, 0.5)), _shown(_exp("abl-k3-default-s0", 2.0, 0.1))
    write_report(study, newer + older[1:], tmp_path / "a.md")
    assert "| k3 | 1 | 4.00 | 1.000 | 0.500 |" in (tmp_path / "a.md").read_text()
    partial = _exp("abl-k1-default-s0", 1.0, 0.5)
    partial["data"]["metrics"]["metrics/probes.json"]["data"]["all"]["unreached"] = 4
    with pytest.raises(InputError, match="abl-k1-default-s0: 4 probe"):
        write_report(study, _shown(_exp("abl-k3-default-s0", 1.0, 0.5), partial), tmp_path / "b.md")
    assert not (tmp_path / "b.md").exists()


def _glue_metrics(student_scores: dict[int, float], teacher: float = 0.9, twin: float = 0.5, layers: int = 1) -> dict:
    """A GLUE arm's metrics files for one task (SST-2) and one student (tiny), per fine-tuning seed."""
    def job(scores: dict[int, float]) -> dict:
        return {"data": {"per_seed": [{"seed": k, "score": v} for k, v in scores.items()]}}

    seeds = list(student_scores)
    return {
        # as `dvc exp show` gives it: the summary's list of task names dropped, the score mappings kept
        "metrics/summary.json": {"data": {"models": {
            "teacher": {"kind": "teacher", "scores": {"SST-2": {"score": teacher * 100}}},
            "random-tiny": {"kind": "random"},
            "tiny": {"kind": "student", "arch": {"layers": layers, "heads": 6, "hidden": 192, "ffn": 384,
                                                 "head_size": 32}}}}},
        "metrics/glue/tiny/SST-2.json": job(student_scores),
        "metrics/glue/teacher/SST-2.json": job({k: teacher for k in seeds}),
        "metrics/glue/random-tiny/SST-2.json": job({k: twin for k in seeds}),
    }


def test_glue_arms_get_scores_retention_per_seed_and_their_difference_to_the_reference(tmp_path):
    from autodistil.ablation_report import write_report
    from autodistil.ablations import Study

    config = {"reference": "k3", "seeds": [0], "glue": {"finetune": {"seeds": [42, 43]}},
              "arms": {"k3": {"glue": True}, "k1": {"glue": True}}}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(config))
    study = Study.load(tmp_path / "a.yaml")
    k3, k1 = _exp("abl-k3-default-s0", 1.0, 0.5), _exp("abl-k1-default-s0", 1.0, 0.5)
    k3["data"]["metrics"].update(_glue_metrics({42: 0.70, 43: 0.74}))  # retention 0.5 and 0.6
    k1["data"]["metrics"].update(_glue_metrics({42: 0.86, 43: 0.82}, layers=2))  # retention 0.9 and 0.8
    probes_only = copy.deepcopy(k1)  # the same arm queued without the glue overrides: its GLUE files are the
    probes_only["name"] = probes_only["data"]["name"] = "abl-k1-default-s1"  # baseline's, never counted
    probes_only["data"]["metrics"].update(_glue_metrics({42: 0.10, 43: 0.10}))
    for exp in (k3, k1):
        exp["data"]["params"] = {"params.yaml": {"data": {"finetune": {"seeds": [42, 43], "lr": 1e-4}}}}
    write_report(study, _shown(k3, k1, probes_only), tmp_path / "ablations.md")
    text = (tmp_path / "ablations.md").read_text()
    k3_rows = text.split("### k3, scale default")[1].split("###")[0].splitlines()
    k1_rows = text.split("### k1, scale default")[1].split("###")[0].splitlines()
    k3_row = next(r for r in k3_rows if r.startswith("| tiny |"))
    k1_row = next(r for r in k1_rows if r.startswith("| tiny |"))
    assert k3_row.startswith("| tiny | L1-A6-H192-F384 | 72.0 ± 2.8 (ret 0.55 ± 0.07) | 0.55 ± 0.07 (SST-2) |")
    assert k1_row == ("| tiny | L2-A6-H192-F384 | 84.0 ± 2.8 (ret 0.85 ± 0.07) | 0.85 ± 0.07 (SST-2) | +0.30 "
                      "| yes |")
    # the teacher and the twin, whose scores retention is made of, are in the table, with no retention of their own
    assert any(r.startswith("| teacher | ? | 90.0 ± 0.0 | - |") for r in k3_rows)
    assert any(r.startswith("| random-tiny | ? | 50.0 ± 0.0 | - |") for r in k1_rows)
    assert (tmp_path / "ablations_glue.png").stat().st_size > 0 and "ablations_glue.png" in text
    del k1["data"]["metrics"]["metrics/glue/random-tiny/SST-2.json"]  # the twin's job is what retention needs
    assert "| k1 | 2 |" in text  # both k1 runs count in the probes, one is listed as probes only
    assert "(probes only, not in the GLUE tables): abl-k1-default-s1." in text
    # params as DVC shows them (YAML 1.2: 0.0001) carry an override YAML 1.1 read as the string '1e-4'
    from autodistil.ablation_report import carries

    assert carries({"finetune": {"lr": 0.0001, "seeds": [42, 43]}}, {"finetune": {"lr": "1e-4", "seeds": [42, 43]}})
    assert not carries({"finetune": {"lr": 0.0001}}, {"finetune": {"lr": "2e-4"}})
    assert not carries({"finetune": {"seeds": [42]}}, {"finetune": {"seeds": [42, 43]}})
    with pytest.raises(InputError, match="abl-k1-default-s0 lacks metrics/glue/random-tiny/SST-2.json"):
        write_report(study, _shown(k3, k1), tmp_path / "again.md")


def test_retention_mean_leaves_out_tasks_where_the_teacher_does_not_separate_from_the_twin():
    from autodistil.ablation_report import mean_retention, separated

    glue = {"teacher": {"scores": {"SST-2": [0.84, 0.85], "RTE": [0.54, 0.57], "MRPC": [0.540, 0.556, 0.572]}},
            "random-tiny": {"scores": {"SST-2": [0.51, 0.52], "RTE": [0.53, 0.55], "MRPC": [0.527, 0.535, 0.538]}}}
    # RTE: 0.54 is below the twin's 0.55; MRPC: every teacher run above every twin run (tiny's RTE in the study),
    # but the means 0.021 apart, within twice the teacher's standard deviation 0.016
    assert separated(glue, "tiny", ["SST-2", "RTE", "MRPC"]) == ["SST-2"]
    assert separated(glue, "base", ["SST-2"]) == []  # no twin, no retention
    d = {"retention": {"SST-2": {"e:42": 0.6, "e:43": 0.8}, "RTE": {"e:42": 5.0, "e:43": -3.0}}}
    assert mean_retention(d, ["SST-2"]) == pytest.approx([0.6, 0.8])
    assert mean_retention(d) == pytest.approx([2.8, -1.1])  # what RTE's near-zero gap would do to the mean


def test_glue_job_files_are_read_back_from_the_experiment_commit(tmp_path):
    """`dvc exp show` drops list values, the per-seed scores among them; the report reads them from Git, and says in
    one line when it cannot."""
    import subprocess

    from autodistil.ablation_report import with_lists

    job = {"score": 0.8, "per_seed": [{"seed": 42, "score": 0.79}, {"seed": 43, "score": 0.81}]}
    (tmp_path / "metrics/glue/tiny").mkdir(parents=True)
    (tmp_path / "metrics/glue/tiny/SST-2.json").write_text(json.dumps(job))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True, cwd=tmp_path)
    subprocess.run(git + ["add", "."], check=True, cwd=tmp_path)
    subprocess.run(git + ["commit", "-qm", "exp"], check=True, cwd=tmp_path)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout.strip()
    shown = {"metrics/glue/tiny/SST-2.json": {"score": 0.8}, "metrics/probes.json": {"all": {}}}
    got = with_lists(shown, rev, "abl-k3-default-s0", tmp_path)
    assert got["metrics/glue/tiny/SST-2.json"]["per_seed"] == job["per_seed"]
    assert got["metrics/probes.json"] == {"all": {}}
    assert with_lists({"metrics/glue/tiny/SST-2.json": job}, None) == {"metrics/glue/tiny/SST-2.json": job}
    with pytest.raises(InputError, match=r"abl-k3-default-s0: metrics/glue/tiny/SST-2.json has no per-seed .* commit"):
        with_lists(shown, None, "abl-k3-default-s0")
    with pytest.raises(InputError, match=r"^experiment abl-k3-default-s0: .* commit 0000000 does not give it"):
        with_lists(shown, "0000000", "abl-k3-default-s0", tmp_path)


def test_retention_is_averaged_over_tasks_run_by_run_leaving_out_runs_a_task_lacks():
    from autodistil.ablation_report import mean_retention

    d = {"retention": {"SST-2": {"e0:42": 0.8, "e0:43": 0.6, "e1:42": 0.7},
                       "MRPC": {"e0:42": 0.2, "e1:42": 0.5}}}  # e0:43: teacher tied its twin on MRPC
    assert mean_retention(d) == pytest.approx([0.5, 0.6])  # e0:42 and e1:42, never e0:43 paired with another run
    assert mean_retention({"retention": {}}) == []
