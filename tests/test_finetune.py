"""GLUE fine-tuning: the protocol's knobs, the best / last epoch bookkeeping, random baselines, the stages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autodistil.finetune import FinetuneConfig, evaluate, finetune, length_grouped_batches, load_classifier
from autodistil.glue import TASKS, Example, load_glue, prepare_task
from autodistil.io import InputError
from stage_runner import run_stage_script
from tiny import tiny_teacher



def synthetic_sst2(n: int, seed: int) -> list[Example]:
    """Label 1 iff the sentence says "good": learnable in a few steps by any encoder with a classifier."""
    rng = np.random.default_rng(seed)
    fillers = ["the cat sat", "on the mat", "the dog is", "and the movie", "not the cat"]
    out = []
    for _ in range(n):
        label = int(rng.integers(2))
        words = [fillers[i] for i in rng.integers(len(fillers), size=int(rng.integers(1, 4)))]
        words.insert(int(rng.integers(len(words) + 1)), "good" if label else "bad")
        out.append(Example((" ".join(words),), label))
    return out


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory, tiny_tokenizer):
    folder = tmp_path_factory.mktemp("glue") / "SST-2"
    prepare_task(TASKS["SST-2"], {"train": synthetic_sst2(96, 0), "dev": synthetic_sst2(48, 1)}, tiny_tokenizer,
                 folder, max_length=24, progress=False)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_tokenizer):
    folder = tmp_path_factory.mktemp("model")
    tiny_teacher(layers=2).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    (folder / "autodistil.json").write_text(json.dumps({"kind": "student", "student": "s", "subspace": "tiny",
                                                        "costs": {"params_paper": 1e5, "gflops_paper": 0.01},
                                                        "superlm_sha256": "abc"}))
    return folder


def finetune_section(raw: dict):
    from autodistil.config import FinetuneParams, check

    return check(FinetuneParams, raw, "params.yaml: finetune")


def test_finetune_section_checks_types_and_ranges():
    cfg = finetune_section({"lr": "5e-05", "warmup_ratio": 0.1, "group_by_length": True, "max_steps": None})
    assert cfg.lr == 5e-5 and cfg.warmup_ratio == 0.1 and cfg.group_by_length and cfg.max_steps is None
    for bad, message in [({"lr": "fast"}, "finetune.lr: expected a number"),
                         ({"epochs": 1.5}, "finetune.epochs: expected an integer"),
                         ({"group_by_length": "yes"}, "expected true or false"),
                         ({"warmup_ratio": 1.0}, "a share of the steps in [0, 1)"),
                         ({"lr": 0}, "finetune.lr: expected a finite number > 0"),
                         ({"learning_rate": 1e-4}, "unknown key(s) learning_rate")]:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            finetune_section(bad)


def test_length_grouped_batches_cover_every_example_once_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(3, 120, size=1000))
    batches = length_grouped_batches(lengths, 16, np.random.default_rng(1), window=8)
    assert sorted(int(j) for b in batches for j in b) == list(range(1000))
    assert batches != length_grouped_batches(lengths, 16, np.random.default_rng(2), window=8)  # shuffled

    def padding(bs):
        return sum(max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in bs)

    order = np.random.default_rng(1).permutation(1000)
    plain = [order[i:i + 16] for i in range(0, 1000, 16)]
    assert padding(batches) < 0.2 * padding(plain)


def test_finetune_learns_and_keeps_best_and_last_epochs(task_dir, model_dir):
    cfg = FinetuneConfig(lr=3e-3, epochs=4, batch_size=8, seed=3, group_by_length=True)
    logged = []
    res = finetune(model_dir, task_dir, cfg, log=lambda m, step: logged.append((step, m)), keep="best")
    dev = [e["dev"]["accuracy"] for e in res["epochs"]]
    assert res["main_metric"] == "accuracy" and res["main_split"] == "dev"
    assert res["score"] == max(dev) == res["best"]["dev"]["accuracy"] and res["last"] is res["epochs"][-1]
    assert res["best_epoch"] == 1 + dev.index(max(dev)) and res["steps"] == 4 * 12
    assert max(dev) >= 0.9  # "good" vs "bad" is learnable
    ds, spec, _ = load_glue(task_dir)
    assert evaluate(res["model"], ds["dev"], spec)["accuracy"] == res["score"]  # the kept weights are the best's
    assert sum("dev.accuracy" in m for _, m in logged) == 4 and sum("train_loss" in m for _, m in logged) == 48


def test_an_undefined_dev_score_never_holds_the_best_epoch(task_dir, model_dir, monkeypatch):
    import autodistil.finetune as ft

    scores = iter([math.nan, 0.6, math.nan, 0.5])  # e.g. STS-B's correlation of a constant prediction
    monkeypatch.setattr(ft, "evaluate", lambda *a, **k: {"accuracy": next(scores)})
    res = finetune(model_dir, task_dir, FinetuneConfig(epochs=4, batch_size=32, seed=0))
    assert res["best_epoch"] == 2 and res["score"] == 0.6


def test_max_steps_and_seed_make_runs_repeatable(task_dir, model_dir):
    cfg = FinetuneConfig(lr=1e-3, epochs=3, batch_size=8, max_steps=5, seed=7)
    a, b = finetune(model_dir, task_dir, cfg), finetune(model_dir, task_dir, cfg)
    assert a["steps"] == 5 and len(a["epochs"]) == 1
    assert a["epochs"][0]["train_loss"] == b["epochs"][0]["train_loss"]


def test_random_init_keeps_the_architecture_and_drops_the_weights(model_dir):
    torch.manual_seed(123)  # the folder's weights came from seed 0 (tiny_teacher)
    random = load_classifier(model_dir, 2, False, random_init=True)
    trained = load_classifier(model_dir, 2, False)
    assert random.config.hidden_size == trained.config.hidden_size
    assert random.config.num_hidden_layers == trained.config.num_hidden_layers
    a, b = random.bert.embeddings.word_embeddings.weight, trained.bert.embeddings.word_embeddings.weight
    assert a.shape == b.shape and not torch.allclose(a, b)


def run_stage(script: str, args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str]:
    return run_stage_script(script, args, cwd, monkeypatch, capsys)

def stage_tree(tmp_path: Path, task_dir: Path, model_dir: Path, **finetune_params) -> Path:
    import shutil

    shutil.copytree(task_dir, tmp_path / "data" / "glue" / "SST-2")
    shutil.copytree(model_dir, tmp_path / "models" / "s")
    random = tmp_path / "models" / "random-s"
    random.mkdir()
    for f in model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copy(f, random / f.name)
    info = json.loads((random / "autodistil.json").read_text()) | {"kind": "random"}
    (random / "autodistil.json").write_text(json.dumps(info))
    params = {"mlflow": {"experiment": "test-finetune"}, "prepare_glue": {"tasks": ["SST-2"], "max_length": 24},
              "finetune": {"models": ["s", "random-s"], "lr": 3e-3, "batch_size": 8, "epochs": 2, "seeds": [1, 2],
                           "report": "best", "keep_weights": False, "device": "cpu", **finetune_params}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "metrics" / "export").mkdir(parents=True)  # the export stage's latency, read by the report
    (tmp_path / "metrics" / "export" / "s.json").write_text(json.dumps({"student": "s", "latency_ms": 1.5}))
    # the yardstick stage's record, in its format (that stage is run for real by the slow pipeline test)
    scores = {"pairs_low": 55.0, "pairs_high": 65.0, "cka": 0.5}
    (tmp_path / "metrics" / "yardstick.json").write_text(json.dumps({
        "tasks": ["RTE"], "pooling": "mean", "pairs_per_task": {"RTE": 10},
        "models": {"s": {"kind": "student", "pairs": 60.0, "agreement": 70.0, **scores},
                   "random-s": {"kind": "random", "pairs": 50.0, "agreement": 40.0, **scores}},
        "retention": {"s": {"pairs": 0.5, "agreement": 0.4}}, "student_minus_twin": {}}))
    return tmp_path


def test_finetune_and_report_stages(tmp_path, task_dir, model_dir, mlflow_root, monkeypatch, capsys):
    root = stage_tree(tmp_path, task_dir, model_dir)
    for model in ("s", "random-s"):
        code, err = run_stage("finetune.py", [model, "SST-2", "--no-progress"], root, monkeypatch, capsys)
        assert code == 0, err
    result = json.loads((root / "metrics/glue/s/SST-2.json").read_text())
    scores = [s["score"] for s in result["per_seed"]]
    assert result["kind"] == "student" and result["seeds"] == [1, 2] and result["report"] == "best"
    assert result["score"] == pytest.approx(np.mean(scores)) and result["score_std"] == pytest.approx(np.std(scores, ddof=1))
    for s in result["per_seed"]:  # best epoch of each seed
        assert s["score"] == max(e["dev"]["accuracy"] for e in s["epochs"])
    assert [p.name for p in (root / "finetuned/s/SST-2").iterdir()] == ["README.md"]

    from mlflow import MlflowClient

    from autodistil.tracking import tracking_uri

    run = MlflowClient(tracking_uri()).get_run(result["mlflow_run_id"])
    assert run.data.tags["stage"] == "finetune@s-SST-2" and run.data.tags["superlm_sha256"] == "abc"
    assert run.data.tags["kind"] == "student" and "seed1.dev.accuracy" in run.data.metrics

    code, err = run_stage("report.py", [], root, monkeypatch, capsys)
    assert code == 0, err
    summary = json.loads((root / "metrics/summary.json").read_text())
    s, r = summary["models"]["s"], summary["models"]["random-s"]
    assert s["glue_avg"] == pytest.approx(100 * result["score"]) and r["kind"] == "random"
    assert s["latency_ms"] == r["latency_ms"] == 1.5  # the twin has its student's architecture and latency
    assert summary["gain_over_random"]["s"]["SST-2"] == pytest.approx(s["glue_avg"] - r["glue_avg"])
    assert summary["every_student_beats_random"] == (s["glue_avg"] > r["glue_avg"])
    text = (root / "reports/summary.md").read_text()
    assert "| s | student |" in text and "the **best** dev epoch" in text and "seeds [1, 2]" in text
    assert "## Yardstick" in text and "| s | student | 60.00 (55.0, 65.0) | 70.0 | 0.500 | 0.50 | 0.40 |" in text
    assert summary["yardstick"]["retention"]["s"] == {"pairs": 0.5, "agreement": 0.4}
    assert (root / "plots/glue_avg.csv").read_text().splitlines()[0] == "model,kind,params_exact_m,gflops_exact,glue_avg"
    for picture in ("glue_vs_cost.png", "pareto.png"):  # written whole, as PNG
        assert (root / "reports" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_keep_weights_saves_the_reported_classifier(tmp_path, task_dir, model_dir, mlflow_root, monkeypatch, capsys):
    root = stage_tree(tmp_path, task_dir, model_dir, keep_weights=True, seeds=[1], report="last")
    code, err = run_stage("finetune.py", ["s", "SST-2", "--no-progress"], root, monkeypatch, capsys)
    assert code == 0, err
    from transformers import AutoModelForSequenceClassification

    clf = AutoModelForSequenceClassification.from_pretrained(root / "finetuned/s/SST-2")
    ds, spec, _ = load_glue(root / "data/glue/SST-2")
    result = json.loads((root / "metrics/glue/s/SST-2.json").read_text())
    assert evaluate(clf, ds["dev"], spec)["accuracy"] == result["score"] == result["per_seed"][0]["epochs"][-1]["dev"]["accuracy"]


@pytest.mark.parametrize("args, edit, message", [
    (["t", "SST-2"], {}, "finetune.models does not list 't'"),
    (["s", "SST-2"], {"seeds": []}, "finetune.seeds: expected a non-empty list"),
    (["s", "SST-2"], {"report": "mean"}, "finetune.report: expected one of"),
    (["s", "CoLA"], {}, "not a prepared GLUE task (run `dvc repro prepare_glue@CoLA`)"),
])
def test_finetune_bad_input_is_one_line_and_writes_nothing(tmp_path, task_dir, model_dir, mlflow_root, monkeypatch,
                                                          capsys, args, edit, message):
    root = stage_tree(tmp_path, task_dir, model_dir, **edit)
    code, err = run_stage("finetune.py", args, root, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and message in lines[0], lines
    assert not (root / "metrics" / "glue").exists() and not (root / "finetuned").exists()


def test_report_names_the_missing_result(tmp_path, task_dir, model_dir, mlflow_root, monkeypatch, capsys):
    root = stage_tree(tmp_path, task_dir, model_dir)
    code, err = run_stage("report.py", [], root, monkeypatch, capsys)
    assert code == 1 and "metrics/glue/s/SST-2.json: not found (run `dvc repro finetune@s-SST-2`)" in err
    assert not (root / "reports").exists()


def test_retention_is_the_share_of_the_teachers_gain_over_the_twin():
    from autodistil.report import student_retention

    def model(sst, cola, gflops=None):
        return {"scores": {"SST-2": {"score": sst}, "CoLA": {"score": cola}}, "glue_avg": (sst + cola) / 2,
                "gflops_exact": gflops, "params_exact": None}

    teacher, twin = model(84.0, 24.0, 1.4), model(51.0, 0.0, 0.7)
    r = student_retention(model(78.0, 6.0, 0.7), twin, teacher, ["SST-2", "CoLA"])
    assert r["tasks"]["SST-2"] == pytest.approx(27 / 33) and r["tasks"]["CoLA"] == pytest.approx(0.25)
    assert r["glue_avg"] == pytest.approx((42.0 - 25.5) / (54.0 - 25.5))
    assert r["gflops_exact_frac"] == pytest.approx(0.5) and r["params_exact_frac"] is None
    # a teacher no better than the twin leaves that task's retention undefined, not infinite
    assert student_retention(model(60.0, 0.0), twin, model(84.0, 0.0), ["CoLA"])["tasks"]["CoLA"] is None


def test_protocol_and_the_score_over_seeds():
    from autodistil.finetune import Protocol, over_seeds

    protocol = Protocol.from_section(finetune_section({"lr": "4e-05", "epochs": 2, "seeds": [1, 2], "report": "last",
                                                       "models": ["x"]}))
    assert protocol.config.lr == 4e-05 and protocol.seeds == (1, 2) and protocol.report == "last"
    assert protocol.to_dict()["seeds"] == [1, 2] and protocol.to_dict()["epochs"] == 2
    for bad, message in [({"seeds": [1, 1]}, "finetune.seeds: expected a non-empty list of distinct integers"),
                         ({"report": "mean"}, "finetune.report: expected one of best, last"),
                         ({"keep_weights": "yes"}, "finetune.keep_weights: expected true or false"),
                         ({"lr": "fast"}, "finetune.lr: expected a number, got 'fast'")]:
        with pytest.raises(InputError, match=message):
            finetune_section(bad)
    epochs = lambda a, b: [{"epoch": 1, "dev": {"accuracy": a}}, {"epoch": 2, "dev": {"accuracy": b}}]  # noqa: E731
    per_seed = [{"seed": 1, "epoch": 2, "score": 0.7, "epochs": epochs(0.6, 0.7)},
                {"seed": 2, "epoch": 1, "score": 0.8, "epochs": epochs(0.8, 0.5)}]
    score, dev = over_seeds(per_seed, ["dev"])
    assert score["mean"] == pytest.approx(0.75) and score["std"] == pytest.approx(0.0707107, rel=1e-5)
    assert dev == {"dev": {"accuracy": score}}  # each seed's reported epoch, not its last


def test_finetuning_and_evaluation_request_mixed_precision(task_dir, model_dir, monkeypatch):
    """bf16 autocast on CUDA goes through autodistil.device.mixed_precision (tests/test_precision.py); the
    training steps and the evaluation both ask for it."""
    import contextlib

    from autodistil import finetune as finetune_module

    devices = []
    monkeypatch.setattr(finetune_module, "mixed_precision",
                        lambda device: devices.append(torch.device(device).type) or contextlib.nullcontext())
    result = finetune(model_dir, task_dir, FinetuneConfig(lr=1e-3, epochs=1, batch_size=8, max_steps=3))
    evaluations = math.ceil(48 / FinetuneConfig().eval_batch_size)
    assert result["steps"] == 3 and devices == ["cpu"] * (3 + evaluations)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_finetuning_under_bf16_matches_fp32_on_cuda(task_dir, model_dir, monkeypatch):
    """A few fine-tuning steps in the stage's bf16 autocast against fp32: the same training loss within 5 %
    (bf16 rounds activations to about 0.4 %; a few steps compound it) and the same dev predictions but a few."""
    import contextlib

    from autodistil import finetune as finetune_module

    cfg = FinetuneConfig(lr=1e-3, epochs=1, batch_size=8, max_steps=6, device="cuda")
    previous = torch.get_float32_matmul_precision()  # before the mixed run, which turns TF32 on
    mixed = finetune(model_dir, task_dir, cfg)
    torch.set_float32_matmul_precision("highest")
    monkeypatch.setattr(finetune_module, "mixed_precision", lambda device: contextlib.nullcontext())
    try:
        exact = finetune(model_dir, task_dir, cfg)
    finally:
        torch.set_float32_matmul_precision(previous)
    assert mixed["epochs"][0]["train_loss"] == pytest.approx(exact["epochs"][0]["train_loss"], rel=5e-2)
    assert abs(mixed["score"] - exact["score"]) <= 0.1  # accuracy on 48 dev sentences: a few predictions flip
