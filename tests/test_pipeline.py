"""End to end: the real DVC pipeline on a micro profile, in a temporary clone of the repository.

Slow (a few minutes): run with ``python -m pytest -m slow``. Uses the real raw data (pulled from the
project's DVC remote) and the real packaged MiniLM teacher; only the budgets are shrunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

MICRO = {
    "prepare_corpus": {"train_tokens": 8192, "heldout_blocks": 16},
    "prepare_glue": {"tasks": ["MRPC"], "max_train_samples": 64, "max_eval_samples": 32},
    "superlm": {"batch_size": 4, "max_tokens": 1024, "checkpoint_every": 1, "log_every": 1, "eval_blocks": 8,
                "eval_batch_size": 8},
    "search": {"eval_blocks": 8, "max_candidates": 4, "latency": {"warmup": 0, "repeats": 1}},
    "finetune": {"models": ["teacher", "tiny", "random-tiny"], "epochs": 2, "max_steps": 3, "batch_size": 8},
}


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


@pytest.fixture(scope="module")
def micro_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    _run(["git", "clone", "-q", str(REPO), str(repo)], REPO)
    remote = _run(["dvc", "config", "remote.storage.url"], REPO).strip().splitlines()[-1]
    if not Path(remote).is_dir():
        pytest.skip(f"the project's DVC remote {remote} is not here")
    _run(["dvc", "remote", "modify", "--local", "storage", "url", remote], repo)
    _run(["dvc", "pull", "-q", "data/raw/glue.dvc", "data/raw/corpus.dvc"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(_merge(params, MICRO), sort_keys=False))
    return repo


@pytest.mark.slow
def test_micro_pipeline_runs_end_to_end_and_then_is_up_to_date(micro_repo):
    repo = micro_repo
    _run(["dvc", "repro"], repo)
    names = yaml.safe_load((repo / "params.yaml").read_text())["partition"]["names"]
    for name in names:
        metrics = json.loads((repo / "metrics" / "superlm" / f"{name}.json").read_text())
        assert metrics["steps"] == 2 and metrics["mlflow_run_id"]
        assert (repo / "models" / "superlm" / name / "superlm.pt").is_file()
        assert not (repo / "checkpoints" / "superlm" / name / "last.pt").exists()  # removed once finished
    students = yaml.safe_load((repo / "params.yaml").read_text())["search"]["students"]
    teacher_heads = json.loads((repo / "models" / "teacher" / "config.json").read_text())
    head_size = teacher_heads["hidden_size"] // teacher_heads["num_attention_heads"]
    for student, subspace in students.items():  # stock BERT folders, one per budget, and random-init baselines
        info = json.loads((repo / "models" / student / "autodistil.json").read_text())
        assert info["model_type"] == "bert" and (repo / "models" / student / "model.safetensors").is_file()
        config = json.loads((repo / "models" / student / "config.json").read_text())
        assert config["hidden_size"] // config["num_attention_heads"] == head_size  # whole teacher heads
        search = json.loads((repo / "metrics" / "search" / f"{subspace}.json").read_text())
        budget, cost = search["students"][student]["budget"], info["costs"]
        # the budget is a fraction of the teacher's exact GFLOPs, and the reported cost fits it
        assert cost["gflops_exact"] <= budget["max_gflops"] == pytest.approx(
            budget["max_gflops_frac"] * search["teacher_costs"]["gflops_exact"])
        assert info["kind"] == "student" and info["mlflow"]["superlm_run_id"]
        random = repo / "models" / f"random-{student}"
        assert json.loads((random / "autodistil.json").read_text())["kind"] == "random"
        assert (random / "config.json").is_file() and not (random / "model.safetensors").exists()
    for model in MICRO["finetune"]["models"]:
        result = json.loads((repo / "metrics" / "glue" / model / "MRPC.json").read_text())
        assert result["main_metric"] == "accuracy" and result["main_split"] == "dev"
        # an accuracy on the 32 capped dev examples, the reported (best) epoch's, and the summary's figure
        assert round(result["score"] * 32, 9) == round(result["score"] * 32)
        assert result["score"] == max(e["dev"]["accuracy"] for e in result["per_seed"][0]["epochs"])
        assert json.loads((repo / "metrics" / "prepare_glue" / "MRPC.json").read_text())["dev"]["examples"] == 32
        assert [e["epoch"] for e in result["per_seed"][0]["epochs"]] == [1]  # max_steps 3 ends inside epoch 1
        assert not any((repo / "finetuned" / model / "MRPC").glob("*.safetensors"))  # keep_weights: false
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert set(summary["models"]) == set(MICRO["finetune"]["models"]) and "tiny" in summary["gain_over_random"]
    retention = summary["retention"]["tiny"]
    assert retention["gflops_exact_frac"] <= 0.04 and set(retention["tasks"]) == {"MRPC"}
    assert "| teacher | teacher |" in (repo / "reports" / "summary.md").read_text()
    corpus = json.loads((repo / "metrics" / "corpus.json").read_text())
    assert corpus["train"]["blocks"] == 8192 // 128

    assert "up to date" in _run(["dvc", "status"], repo)
    again = _run(["dvc", "repro"], repo)
    assert "Running stage" not in again

    # determinism: the same stages run again give the same weights (bitwise) and the same results
    def results() -> tuple:
        weights = [hashlib.sha256((repo / p).read_bytes()).hexdigest()
                   for p in ("models/superlm/tiny/superlm.pt", "models/tiny/model.safetensors")]
        search = (repo / "metrics" / "search" / "tiny.csv").read_text().splitlines()
        header = search[0].split(",")
        keep = [i for i, c in enumerate(header) if c not in ("seconds", "latency_ms")]  # wall times
        glue = json.loads((repo / "metrics" / "glue" / "tiny" / "MRPC.json").read_text())
        return weights, [[row.split(",")[i] for i in keep] for row in search], glue["score"], glue["per_seed"][0]["epochs"]

    before = results()
    _run(["dvc", "repro", "-f", "-s", "superlm@tiny", "search@tiny", "export@tiny", "finetune@tiny-MRPC"], repo)
    assert results() == before

    # a fine-tuning param invalidates fine-tuning and the report, nothing upstream
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["finetune"]["lr"] = 3e-4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = {line.rstrip(":").strip() for line in _run(["dvc", "status"], repo).splitlines()
               if line.endswith(":") and not line.startswith(("\t", " "))}
    assert changed == {f"finetune@{m}-MRPC" for m in MICRO["finetune"]["models"]} | {"report"}, changed

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("autodistil").experiment_id])
    stages = {r.data.tags["stage"] for r in runs}
    assert {"prepare_corpus", "prepare_glue@MRPC", "partition", *(f"superlm@{n}" for n in names),
            *(f"search@{n}" for n in names), "teacher", *(f"export@{s}" for s in students),
            *(f"finetune@{m}-MRPC" for m in MICRO["finetune"]["models"]), "report"} <= stages
