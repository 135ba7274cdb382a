import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from autodistil.cost import Vocab
from autodistil.distill import DistillSpec, HeldOut
from autodistil.export import build_student, export_student, superlm_hidden
from autodistil.io import InputError
from autodistil.latency import measure_latency
from autodistil.config import BudgetLimits, LatencyConfig, SearchParams, check, from_mapping
from autodistil.search import (Budget, NoFitError, ProxyConfig, SearchConfig, budgets_of, check_feasible, choose_students,
                               cost_row, load_superlm_and_teacher, mark_chosen, sample_candidates, score_candidates,
                               search_subspace, select, write_csv)
from autodistil.space import Arch, SubSpace, TeacherDims
from tiny import VOCAB, padded_batch, tiny_subspace, tiny_superlm, tiny_teacher
from stage_runner import dvc_path_args

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def budget(name: str, limits: dict, where: str = "params.yaml: search.budgets.sub") -> Budget:
    return Budget.from_limits(name, check(BudgetLimits, limits, f"{where}.{name}"))


def parse_budgets(budgets: dict, students: dict, subspaces=None) -> dict:
    section = check(SearchParams, {"budgets": budgets, "students": students}, "params.yaml: search")
    return budgets_of(section, subspaces if subspaces is not None else list(budgets))


def search_config(params: dict, subspace: str, subspaces: list, glue_dir):
    return SearchConfig.build(from_mapping(params), subspace, subspaces, glue_dir)


def _rows(archs, losses):
    rows = [{**cost_row(a, 16, 4, Vocab(VOCAB, 64, 2)), "loss": l} for a, l in zip(archs, losses)]
    return rows


@pytest.fixture(scope="module")
def scored():
    """A tiny SuperLM, its held-out set and every candidate scored (shared: scoring is the slow part)."""
    teacher = tiny_teacher()
    sub = tiny_subspace()
    superlm = tiny_superlm(teacher, sub)
    blocks = np.random.default_rng(0).integers(1, VOCAB, (6, 16))
    heldout = HeldOut(teacher, blocks, DistillSpec(relation_heads=4, hidden_weight=0.5), batch_size=4)
    archs = sub.candidates(TeacherDims.from_config(teacher.config))[::3]  # 8 of the 24: enough, and fast
    rows = score_candidates(superlm, heldout, archs, seq_len=16, progress=False)
    return superlm, heldout, archs, rows


def test_scores_every_candidate_in_eval_mode_with_teacher_relations_computed_once(scored, monkeypatch):
    superlm, heldout, archs, rows = scored
    assert [r["arch"] for r in rows] == [a.name for a in archs]
    assert all(np.isfinite(r["loss"]) and r["loss"] >= 0 for r in rows)
    # every criterion is recorded; the ranking loss is the relation loss by default; distill weighs hidden
    for r in rows:
        assert r["loss"] == r["loss_relation"]
        assert r["loss_distill"] == pytest.approx(r["loss_relation"] + 0.5 * r["loss_hidden"])
    assert len({round(r["loss_hidden"], 6) for r in rows}) == len(rows)  # it tells candidates apart
    # eval mode: dropout is off, so re-scoring gives the same number even with the model in train mode
    superlm.train()
    assert heldout.loss(superlm, archs[3]) == pytest.approx(rows[3]["loss"], abs=1e-6)
    assert superlm.training
    # the teacher is never called again while scoring
    import autodistil.distill as distill

    monkeypatch.setattr(distill, "teacher_targets", lambda *a, **k: pytest.fail("teacher re-run"))
    again = score_candidates(superlm, heldout, archs[:2], seq_len=16, progress=False, criterion="hidden")
    assert [r["loss"] for r in again] == [r["loss_hidden"] for r in rows[:2]]


def test_selection_per_budget_takes_the_lowest_loss_that_fits():
    archs = [Arch(1, 2, 32, 48, 16), Arch(2, 2, 32, 64, 16), Arch(4, 4, 64, 128, 16)]
    rows = _rows(archs, [3.0, 2.0, 1.0])
    big, mid, small = rows[2], rows[1], rows[0]
    assert select(rows, Budget("all", max_gflops=1e9)) is big
    assert select(rows, Budget("g", max_gflops=mid["gflops_paper"])) is mid
    assert select(rows, Budget("p", max_params=small["params_paper"] + 1)) is small
    assert select(rows, Budget("both", max_params=big["params_paper"], max_gflops=small["gflops_paper"])) is small
    assert select(rows, Budget("exact", max_params=mid["params_exact"]), convention="exact") is mid
    # latency: measured lazily in loss order, only until one fits; cached in the row
    fake = {big["arch"]: 9.0, mid["arch"]: 4.0, small["arch"]: 1.0}
    calls = []

    def latency(row):
        calls.append(row["arch"])
        return fake[row["arch"]]

    assert select(rows, Budget("lat", max_latency_ms=5.0), latency=latency) is mid
    assert calls == [big["arch"], mid["arch"]] and mid["latency_ms"] == 4.0 and "latency_ms" not in small
    mark_chosen(rows, {"s1": mid, "s2": mid, "s3": small})
    assert [r["chosen"] for r in rows] == ["s3", "s1;s2", ""]


def test_choose_students_by_loss_or_by_the_task_proxy(monkeypatch):
    import autodistil.finetune

    archs = [Arch(1, 2, 32, 48, 16), Arch(2, 2, 32, 64, 16), Arch(4, 4, 64, 128, 16)]
    rows = _rows(archs, [3.0, 2.0, 1.0])
    small, mid, big = rows
    budgets = {"all": Budget("all", max_gflops=1e9), "mid": Budget("mid", max_gflops=mid["gflops_paper"])}
    chosen, seconds = choose_students(rows, budgets, "paper", "s")
    assert chosen == {"all": big, "mid": mid} and seconds == 0.0
    # the proxy: the top 2 by loss that fit, fine-tuned once each; the best dev score wins
    proxy_scores = {big["arch"]: 0.70, mid["arch"]: 0.75, small["arch"]: 0.90}
    tuned = []

    def fake_finetune(model, task_dir, cfg):
        tuned.append(model)
        return {"score": proxy_scores[model]}

    monkeypatch.setattr(autodistil.finetune, "finetune", fake_finetune)
    proxy = ProxyConfig("MRPC", Path("data/glue/MRPC"), top_k=2, finetune=None)
    chosen, seconds = choose_students(rows, budgets, "paper", "s", proxy=proxy, student=lambda row: row["arch"])
    assert chosen == {"all": mid, "mid": small}  # mid beats big; within "mid", small beats mid on the task
    assert tuned == [big["arch"], mid["arch"], small["arch"]]  # mid, in both top-2 lists, is fine-tuned once
    assert mid["proxy_score"] == 0.75 and seconds >= 0 and "proxy_seconds" in small


def test_search_config_reads_and_checks_the_search_section(tmp_path):
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = search_config(params, "tiny", ["base", "small", "tiny"], tmp_path)
    assert set(cfg.budgets) == set(params["search"]["budgets"]["tiny"]) and cfg.proxy is None
    # the criterion's hidden term has its own weight (search.hidden_weight); null falls back to the training weight
    assert cfg.spec == DistillSpec(loss=params["superlm"]["loss"], hidden_weight=params["search"]["hidden_weight"])
    params["search"]["hidden_weight"] = None
    assert (cfg.eval_blocks, cfg.criterion, cfg.convention) == (
        params["search"]["eval_blocks"], params["search"]["criterion"], params["search"]["convention"])
    params["superlm"]["hidden_weight"] = "5e-01"  # DVC writes small floats back as strings
    assert search_config(params, "tiny", ["tiny", "base", "small"], tmp_path).spec.hidden_weight == 0.5
    for key, value, message in [
        ("superlm.hidden_weight", "lots", "superlm.hidden_weight: expected a number, got 'lots'"),
        ("superlm.loss", "cosine", "superlm.loss: expected one of"),
        ("search.proxy", {"enabled": True, "task": "RTE", "top_k": 2}, "'RTE' is not one of prepare_glue.tasks"),
        ("search.proxy", {"enabled": True, "task": "MRPC", "top_k": 2}, "MRPC: not a prepared GLUE task"),
        ("search.eval_blocks", 0, "search.eval_blocks"),
    ]:
        bad = yaml.safe_load((REPO / "params.yaml").read_text())
        section, leaf = key.split(".")
        bad[section][leaf] = value
        with pytest.raises(InputError, match=message):
            search_config(bad, "tiny", ["base", "small", "tiny"], tmp_path)
    with pytest.raises(InputError, match="no budget for sub-space 'huge'"):
        search_config(params, "huge", ["base", "small", "tiny", "huge"], tmp_path)


def test_no_fit_error_names_the_budget_and_the_cheapest_candidate():
    archs = [Arch(1, 2, 32, 48, 16), Arch(2, 2, 32, 64, 16)]
    rows = _rows(archs, [2.0, 1.0])
    cheapest = rows[0]
    with pytest.raises(NoFitError) as e:
        select(rows, Budget("small-2", max_gflops=1e-6), subspace="small")
    msg = str(e.value)
    assert "'small-2'" in msg and "'small'" in msg and cheapest["arch"] in msg
    assert f"{cheapest['gflops_paper']:.4g} GFLOPs" in msg and "\n" not in msg
    with pytest.raises(NoFitError, match=r"max_params 10 but the smallest candidate L1-A2-H32-F48 has"):
        check_feasible(rows, Budget("p", max_params=10))
    with pytest.raises(NoFitError, match=r"fastest candidate L1-A2-H32-F48 takes 3 ms"):
        select(rows, Budget("lat", max_latency_ms=1.0), latency=lambda r: 3.0 if r is cheapest else 7.0)


def test_a_pinned_arch_is_chosen_whatever_its_loss_and_still_meets_the_limits():
    archs = [Arch(1, 2, 32, 48, 16), Arch(2, 2, 32, 64, 16), Arch(4, 4, 64, 128, 16)]
    rows = _rows(archs, [3.0, 2.0, 1.0])
    small, mid, big = rows
    pin = budget("s", {"arch": f" {small['arch']} ", "max_gflops": 1e9})
    assert pin.arch == small["arch"] and pin.resolve({"params_paper": 1, "gflops_paper": 1}).arch == small["arch"]
    assert select(rows, pin) is small  # the worst loss, chosen
    assert pin.to_dict() == {"max_gflops": 1e9, "arch": small["arch"]} and small["arch"] in pin.describe()
    chosen, _ = choose_students(rows, {"s": pin, "free": Budget("free", max_gflops=1e9)}, "paper", "sub")
    assert chosen == {"s": small, "free": big}
    alone = budget("a", {"arch": mid["arch"]})  # a pin needs no limit
    assert select(rows, alone) is mid
    check_feasible(rows, alone)
    with pytest.raises(NoFitError, match=r"budget 'x': the pinned arch L9-A9-H9-F9 is not a candidate of sub-space 'sub'"):
        check_feasible(rows, Budget("x", arch="L9-A9-H9-F9"), subspace="sub")
    with pytest.raises(NoFitError, match="not a candidate"):
        select(rows, Budget("x", arch="L9-A9-H9-F9"))
    too_big = Budget("t", max_gflops=mid["gflops_paper"], arch=big["arch"])  # pinned, over the budget
    with pytest.raises(NoFitError, match=rf"cheapest candidate {big['arch']} has"):
        check_feasible(rows, too_big)
    with pytest.raises(NoFitError, match="no candidate fits"):
        select(rows, too_big)
    with pytest.raises(InputError, match=r"budgets.s.arch: expected a string or null, got 3"):
        budget("s", {"arch": 3}, "budgets")


def test_sampling_above_the_limit_is_seeded_and_keeps_the_ends():
    sub = SubSpace.from_dict("s", {"layers": [1, 2, 3, 4], "heads": [2, 4], "hidden": [32, 48, 64], "mlp_ratio": [1.5, 2]})
    archs = sub.candidates(TeacherDims(4, 4, 64, 128))
    assert sample_candidates(archs, None) == (sorted(archs), False)
    assert sample_candidates(archs, len(archs)) == (sorted(archs), False)
    a, sampled = sample_candidates(archs, 7, seed=3)
    assert sampled and len(a) == 7 and a == sorted(a) and set(a) <= set(archs)
    largest, smallest = sub.largest(TeacherDims(4, 4, 64, 128)), sub.smallest(TeacherDims(4, 4, 64, 128))
    assert largest in a and smallest in a
    assert sample_candidates(list(reversed(archs)), 7, seed=3)[0] == a  # input order does not matter
    assert sample_candidates(archs, 7, seed=4)[0] != a
    with pytest.raises(InputError, match="max_candidates must be >= 2"):
        sample_candidates(archs, 1)


def test_budgets_params_are_checked():
    budgets = {"small": {"small-1": {"max_gflops": 0.2}, "small-2": {"max_params": "4.5e+06"}}, "tiny": {"tiny": {"max_latency_ms": 5}}}
    students = {"small-1": "small", "small-2": "small", "tiny": "tiny"}
    out = parse_budgets(budgets, students, ["small", "tiny"])
    assert out["small"]["small-2"].max_params == 4.5e6 and out["tiny"]["tiny"].needs_latency
    with pytest.raises(InputError, match="search.students must map every student"):
        parse_budgets(budgets, {"small-1": "small", "small-2": "small"})
    with pytest.raises(InputError, match="search.students must map every student"):
        parse_budgets(budgets, {**students, "tiny": "small"})
    with pytest.raises(InputError, match="unique"):
        parse_budgets({"a": {"x": {"max_gflops": 1}}, "b": {"x": {"max_gflops": 1}}}, {"x": "a"})
    with pytest.raises(InputError, match=r"budgets.small.s.max_gflops: expected a finite number > 0, got -1"):
        budget("s", {"max_gflops": -1}, "budgets.small")
    with pytest.raises(InputError, match="unknown key"):
        budget("s", {"max_flops": 1})
    with pytest.raises(InputError, match="at least one"):
        budget("s", {})
    with pytest.raises(InputError, match="no such sub-space"):
        parse_budgets({"huge": {"h": {"max_gflops": 1}}}, {"h": "huge"}, ["small"])
    with pytest.raises(InputError, match="reserved"):
        parse_budgets({"small": {"teacher": {"max_gflops": 1}}}, {"teacher": "small"})
    with pytest.raises(InputError, match="reserved"):
        parse_budgets({"small": {"random-s": {"max_gflops": 1}}}, {"random-s": "small"})


def test_fraction_budgets_follow_the_teacher():
    teacher = {"params_exact": 20e6, "gflops_exact": 2.0, "params_paper": 22e6, "gflops_paper": 2.2}
    b = budget("b", {"max_gflops_frac": 0.5, "max_params": 8e6})
    assert b.resolve(teacher, "exact").max_gflops == pytest.approx(1.0)
    assert b.resolve(teacher, "paper").max_gflops == pytest.approx(1.1)
    assert b.resolve(teacher, "exact").max_params == 8e6  # absolute limits stay
    both = budget("c", {"max_gflops": 0.8, "max_gflops_frac": 0.5, "max_params_frac": 0.25})
    r = both.resolve(teacher, "exact")
    assert r.max_gflops == 0.8 and r.max_params == pytest.approx(5e6)  # the tighter limit wins
    row = {"params_exact": 4e6, "gflops_exact": 0.79}
    assert r.fits_static(row, "exact") and not r.fits_static({**row, "gflops_exact": 0.81}, "exact")
    with pytest.raises(InputError, match="max_gflops_frac: expected a finite number > 0"):
        budget("s", {"max_gflops_frac": 0})


def test_latency_is_measured_with_warmup_and_repeats():
    model = build_student(tiny_superlm(tiny_teacher(), tiny_subspace()), Arch(1, 2, 32, 48, 16))
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    lat = measure_latency(model, LatencyConfig(batch_size=2, seq_len=8, warmup=2, repeats=3))
    assert len(calls) == 5 and lat["repeats"] == 3 and lat["latency_min_ms"] <= lat["latency_ms"] > 0
    assert lat["device"] == "cpu" and next(model.parameters()).device.type == "cpu"


def test_latency_device_is_checked_and_the_model_goes_back_home():
    with pytest.raises(InputError, match=r"search.latency.device: expected one of auto, cpu, cuda, got 'tpu'"):
        check(LatencyConfig, {"device": "tpu"}, "params.yaml: search.latency")
    assert check(LatencyConfig, {}, "params.yaml: search.latency").device == "cpu"  # the deployment target


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_latency_on_cuda_and_back():
    model = build_student(tiny_superlm(tiny_teacher(), tiny_subspace()), Arch(1, 2, 32, 48, 16))
    lat = measure_latency(model, LatencyConfig(batch_size=2, seq_len=8, warmup=1, repeats=2, device="cuda"))
    assert lat["device"].startswith("cuda") and next(model.parameters()).device.type == "cpu"


LOAD_WITHOUT_AUTODISTIL = textwrap.dedent("""
    import json, sys, torch
    from transformers import AutoModel
    path, ids, mask, types = sys.argv[1], *(torch.load(p) for p in sys.argv[2:5])
    model = AutoModel.from_pretrained(path).eval()
    assert not any(m == "autodistil" or m.startswith("autodistil.") for m in sys.modules), "autodistil was imported"
    with torch.no_grad():
        torch.save(model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state, sys.argv[5])
    print(model.config.model_type)
""")


def test_chosen_student_exports_as_stock_bert_equal_to_its_slice(scored, tmp_path):
    superlm, _, archs, rows = scored
    row = select(rows, Budget("b", max_gflops=sorted(r["gflops_paper"] for r in rows)[len(rows) // 2]))
    arch = next(a for a in archs if a.name == row["arch"])
    folder = export_student(superlm, arch, tmp_path / "students" / "tiny" / "b", info={"heldout_loss": row["loss"]},
                            seq_len=16)
    batch = padded_batch(seed=5)
    files = []
    for name, t in zip(("ids", "mask", "types"), batch):
        files.append(tmp_path / f"{name}.pt")
        torch.save(t, files[-1])
    proc = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_AUTODISTIL, str(folder), *map(str, files),
                           str(tmp_path / "out.pt")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "bert"
    ref = superlm_hidden(superlm, arch, *batch)
    assert (torch.load(tmp_path / "out.pt") - ref)[batch[1].bool()].abs().max().item() <= 1e-5
    assert json.loads((folder / "autodistil.json").read_text())["heldout_loss"] == row["loss"]


def test_search_subspace_scores_chooses_and_measures_latency_only_where_needed(tmp_path):
    import dataclasses

    import yaml

    teacher = tiny_teacher()
    sub = tiny_subspace()
    superlm = tiny_superlm(teacher, sub)
    dims = TeacherDims.from_config(teacher.config)
    archs = sub.candidates(dims)[::4]
    blocks = np.random.default_rng(0).integers(1, VOCAB, (4, 16))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = dataclasses.replace(search_config(params, "tiny", ["base", "small", "tiny"], tmp_path),
                              batch_size=2, seq_len=16, latency=LatencyConfig(seq_len=16, warmup=0, repeats=1))
    vocab = Vocab(VOCAB, 64, 2)
    cheap = sorted(cost_row(a, 16, 4, vocab)["gflops_exact"] for a in archs)[2]
    budgets = {"by_cost": Budget("by_cost", max_gflops=cheap), "by_time": Budget("by_time", max_latency_ms=1e6)}
    found = search_subspace(superlm, teacher, blocks, archs, budgets, cfg, "tiny", 4, vocab)

    assert [r["arch"] for r in found.rows] == [a.name for a in archs] and found.spec.relation_heads == 4
    fitting = [r for r in found.rows if r["gflops_exact"] <= cheap]
    assert found.students["by_cost"]["arch_name"] == min(fitting, key=lambda r: r["loss"])["arch"]
    # latency: measured for the one row the latency budget needed (the lowest loss), recorded there
    best = min(found.rows, key=lambda r: r["loss"])
    assert found.students["by_time"]["arch_name"] == best["arch"] and found.students["by_time"]["latency_ms"] > 0
    assert [r["arch"] for r in found.rows if r.get("latency_ms") is not None] == [best["arch"]]
    assert found.timing["latency_measurements"] == 1 and found.timing["heldout_blocks"] == 4
    by_arch: dict[str, list[str]] = {}
    for name, st in found.students.items():
        by_arch.setdefault(st["arch_name"], []).append(name)
    assert {r["arch"]: r["chosen"] for r in found.rows if r["chosen"]} == {a: ";".join(n) for a, n in by_arch.items()}


def test_load_superlm_and_teacher_checks_both(tmp_path):
    import dataclasses

    teacher = tiny_teacher()
    sub = tiny_subspace()
    tiny_superlm(teacher, sub).save(tmp_path / "superlm")
    teacher.save_pretrained(tmp_path / "teacher")
    dims = TeacherDims.from_config(teacher.config)
    archs = sub.candidates(dims)
    superlm, loaded = load_superlm_and_teacher(tmp_path / "superlm", str(tmp_path / "teacher"), dims, archs)
    assert not superlm.training and not loaded.training
    other = dataclasses.replace(dims, layers=dims.layers + 1)
    with pytest.raises(InputError, match="partitioned for another teacher than teacher.source"):
        load_superlm_and_teacher(tmp_path / "superlm", str(tmp_path / "teacher"), other, archs)
    too_wide = Arch(1, 8, 128, 128, 16)
    with pytest.raises(InputError, match="candidate L1-A8-H128-F128 does not fit the SuperLM"):
        load_superlm_and_teacher(tmp_path / "superlm", str(tmp_path / "teacher"), dims, [too_wide])


def test_csv_has_every_candidate_and_the_chosen_flag(scored, tmp_path):
    import csv

    _, _, _, rows = scored
    rows = [dict(r) for r in rows]
    mark_chosen(rows, {"x": rows[0]})
    write_csv(tmp_path / "tiny.csv", rows, "tiny")
    got = list(csv.DictReader((tmp_path / "tiny.csv").open()))
    assert len(got) == len(rows) and sum(bool(r["chosen"]) for r in got) == 1
    assert {"arch", "params_paper", "gflops_paper", "loss", "latency_ms", "chosen"} <= set(got[0])
    assert [float(r["gflops_paper"]) for r in got] == sorted(float(r["gflops_paper"]) for r in got)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["search"]["budgets"]["tiny"]["tiny"].update(max_gflops=1e-9),
     "budget 'tiny' of sub-space 'tiny': no candidate fits"),
    (lambda p: p["search"]["students"].pop("small"),
     "search.students must map every student of the budgets to its sub-space"),
    (lambda p: p["search"]["budgets"]["tiny"].update(tiny={"max_flops": 1}), "unknown key(s) max_flops"),
    (lambda p: p["search"]["budgets"]["tiny"].update(tiny={"max_gflops_frac": 1e-6}),
     "budget 'tiny' of sub-space 'tiny': no candidate fits (exact convention)"),
    (lambda p: p["search"].update(criterion="accuracy"), "search.criterion: expected one of"),
    (lambda p: p["search"]["budgets"]["tiny"]["tiny"].update(arch="L6-A12-H384-F1536"),
     "budget 'tiny': the pinned arch L6-A12-H384-F1536 is not a candidate of sub-space 'tiny'"),
])
def test_stage_bad_input_is_one_line_and_writes_nothing(tmp_path, edit, message, monkeypatch, capsys):
    import runpy

    import yaml

    # the default partition, made here (a fresh clone has no partition/subspaces.json)
    subspaces = tmp_path / "subspaces.json"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["partition.py", "--params", str(REPO / "params.yaml"), "--out", str(subspaces),
                                      "--metrics", str(tmp_path / "partition.json")])
    runpy.run_path(str(REPO / "stages" / "partition.py"), run_name="__main__")
    capsys.readouterr()  # only the search's own output is under test

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = tmp_path / "metrics"
    monkeypatch.setattr(sys, "argv", [
        "search.py", "tiny", *dvc_path_args("search.py"), "--params", str(tmp_path / "params.yaml"),
        "--subspaces", str(subspaces), "--superlm", str(tmp_path / "no-superlm"), "--metrics", str(metrics)])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(REPO / "stages" / "search.py"), run_name="__main__")
    assert e.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not metrics.exists()
