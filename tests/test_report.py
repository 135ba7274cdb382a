"""The report's library: collecting results, the summary with gains and retention, its markdown and CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest

from autodistil.io import InputError
from autodistil.report import (collect, common_protocol, glue_avg_csv, load_candidates, load_latencies, markdown,
                               summarise)

TASKS = ["SST-2", "CoLA"]
PROTOCOL = {"lr": 1e-4, "batch_size": 32, "epochs": 3, "max_steps": None, "seed": 42, "weight_decay": 0.0,
            "warmup_ratio": 0.0, "group_by_length": True, "eval_batch_size": 128, "device": "auto", "seeds": [42],
            "report": "best"}
SCORES = {"teacher": (0.84, 0.24), "s": (0.78, 0.06), "random-s": (0.51, 0.0)}
KINDS = {"teacher": "teacher", "s": "student", "random-s": "random"}
GFLOPS = {"teacher": 1.4, "s": 0.7, "random-s": 0.7}


def result(model: str, task: str, **protocol) -> dict:
    score = SCORES[model][TASKS.index(task)]
    return {"model": model, "kind": KINDS[model], "task": task,
            "main_metric": "accuracy" if task == "SST-2" else "matthews_correlation", "main_split": "dev",
            "seeds": [42], "score": score, "score_std": 0.0,
            "arch": {"layers": 6, "heads": 12, "hidden": 384, "ffn": 1536},
            "costs": {"params_paper": 2e7, "gflops_paper": GFLOPS[model], "params_exact": 2e7,
                      "gflops_exact": GFLOPS[model]},
            "per_seed": [{"seed": 42, "epoch": 3, "score": score}],
            "protocol": {**PROTOCOL, **protocol, "train_examples": 2000 if task == "SST-2" else 5000},
            **({"student": "s"} if model == "random-s" else {})}


@pytest.fixture
def results_dir(tmp_path):
    for model in SCORES:
        (tmp_path / model).mkdir()
        for task in TASKS:
            (tmp_path / model / f"{task}.json").write_text(json.dumps(result(model, task)))
    return tmp_path


def test_summary_gains_retention_and_markdown(results_dir):
    results = collect(list(SCORES), TASKS, results_dir)
    summary = summarise(results, TASKS, {"teacher": 20.0, "s": 10.0, "random-s": 10.0})
    assert summary["models"]["teacher"]["glue_avg"] == pytest.approx(54.0)
    assert summary["gain_over_random"]["s"] == pytest.approx({"SST-2": 27.0, "CoLA": 6.0, "glue_avg": 16.5})
    assert summary["every_student_beats_random"] is True
    assert summary["retention"]["s"]["glue_avg"] == pytest.approx((42.0 - 25.5) / (54.0 - 25.5))
    assert summary["retention"]["s"]["gflops_exact_frac"] == pytest.approx(0.5)
    protocol = common_protocol(results, 128, results_dir)
    assert protocol["max_length"] == 128 and protocol["train_examples"] == {"SST-2": 2000, "CoLA": 5000}
    text = markdown({"tasks": TASKS, "protocol": protocol, **summary}, TASKS, protocol)
    assert "| s | student | L6 A12 H384 F1536 | 20.00 | 0.700 (50 %) | 10.0 | 78.0 | 6.0 | 42.0 |" in text
    assert "| s | +27.0 | +6.0 | +16.5 |" in text and "| s | 50.0 % | 0.82 | 0.25 | **0.58** |" in text
    assert "SST-2 (acc)" in text and "CoLA (MCC)" in text and "AdamW lr 0.0001, batch 32, 3 epochs" in text
    rows = list(csv.DictReader(io.StringIO(glue_avg_csv(summary))))
    assert [(r["model"], r["kind"], float(r["glue_avg"])) for r in rows] == [
        ("teacher", "teacher", 54.0), ("s", "student", 42.0), ("random-s", "random", 25.5)]


def test_latencies_come_from_the_teacher_and_export_metrics(results_dir, tmp_path):
    results = collect(list(SCORES), TASKS, results_dir)
    exports, teacher = tmp_path / "export", tmp_path / "teacher.json"
    exports.mkdir()
    teacher.write_text(json.dumps({"latency_ms": 20.0}))
    with pytest.raises(InputError, match=r"export/s\.json: not found \(run `dvc repro export@s`\)"):
        load_latencies(results, exports, teacher)
    (exports / "s.json").write_text(json.dumps({"latency_ms": 10.0}))
    # the random twin has its student's architecture: the student's measured latency
    assert load_latencies(results, exports, teacher) == {"teacher": 20.0, "s": 10.0, "random-s": 10.0}
    teacher.unlink()
    with pytest.raises(InputError, match=r"teacher\.json: not found \(run `dvc repro teacher`\)"):
        load_latencies(results, exports, teacher)


def test_a_student_below_its_twin_is_called_out(results_dir):
    bad = result("s", "CoLA")
    bad["score"] = -0.01
    (results_dir / "s" / "CoLA.json").write_text(json.dumps(bad))
    summary = summarise(collect(list(SCORES), TASKS, results_dir), TASKS)
    assert summary["gain_over_random"]["s"]["CoLA"] == pytest.approx(-1.0)
    assert summary["every_student_beats_random"] is False


def test_a_result_of_another_protocol_is_named(results_dir):
    (results_dir / "random-s" / "CoLA.json").write_text(json.dumps(result("random-s", "CoLA", lr=3e-4)))
    results = collect(list(SCORES), TASKS, results_dir)
    with pytest.raises(InputError, match=r"random-s/CoLA\.json: fine-tuned with another protocol than teacher/SST-2"):
        common_protocol(results, 128, results_dir)
    # the device is not part of the protocol: a job run on a GPU compares with one run on the CPU
    (results_dir / "random-s" / "CoLA.json").write_text(json.dumps(result("random-s", "CoLA", device="cuda")))
    common_protocol(collect(list(SCORES), TASKS, results_dir), 128, results_dir)


def test_missing_inputs_name_the_stage_that_makes_them(results_dir, tmp_path):
    (results_dir / "s" / "SST-2.json").unlink()
    with pytest.raises(InputError, match=r"s/SST-2\.json: not found \(run `dvc repro finetune@s-SST-2`\)"):
        collect(list(SCORES), TASKS, results_dir)
    with pytest.raises(InputError, match=r"base\.csv: not found \(run `dvc repro search@base`\)"):
        load_candidates(["base"], tmp_path / "search")
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "base.csv").write_text("arch,loss,chosen\nL1,0.5,base\n")
    assert load_candidates(["base"], tmp_path / "search") == {"base": [{"arch": "L1", "loss": "0.5", "chosen": "base"}]}
