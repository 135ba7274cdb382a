"""End to end: the real DVC pipeline on a micro profile, in a temporary clone of the repository.

Slow (a few minutes): run with ``python -m pytest -m slow``. Uses the real raw data (pulled from the
project's DVC remote) and the real packaged MiniLM teacher; only the budgets are shrunk.
"""

from __future__ import annotations

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
    for student in students:  # exported stock BERT folders, one per budget
        info = json.loads((repo / "models" / "students" / student / "autodistil.json").read_text())
        assert info["model_type"] == "bert" and (repo / "models" / "students" / student / "config.json").is_file()
    corpus = json.loads((repo / "metrics" / "corpus.json").read_text())
    assert corpus["train"]["blocks"] == 8192 // 128

    assert "up to date" in _run(["dvc", "status"], repo)
    again = _run(["dvc", "repro"], repo)
    assert "Running stage" not in again

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("autodistil").experiment_id])
    stages = {r.data.tags["stage"] for r in runs}
    assert {"prepare_corpus", "prepare_glue@MRPC", "partition", *(f"superlm@{n}" for n in names),
            *(f"search@{n}" for n in names)} <= stages
