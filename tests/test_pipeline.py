"""End to end: the real DVC pipeline on a micro profile, in a temporary clone of the repository.

Slow (a few minutes): run with ``python -m pytest -m slow``. Uses the real raw data (pulled from the
project's DVC remote) and the real packaged MiniLM teacher; only the budgets are shrunk. The tests share one
repository and run in file order: the first runs the pipeline, the others start from its up-to-date state.
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
    "probes": {"eval_blocks": 8, "batch_size": 8, "per_band": 1},
    "finetune": {"models": ["teacher", "tiny", "random-tiny"], "epochs": 2, "max_steps": 3, "batch_size": 8},
    "yardstick": {"max_pairs": 48, "cka_blocks": 8, "bootstrap": 20},
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


def _results(repo: Path) -> tuple:
    """What the tiny chain produced: SuperLM and student weights (sha256), the search table without its wall
    times, the fine-tuned score and every epoch of it."""
    weights = [hashlib.sha256((repo / p).read_bytes()).hexdigest()
               for p in ("models/superlm/tiny/superlm.pt", "models/tiny/model.safetensors")]
    search = (repo / "metrics" / "search" / "tiny.csv").read_text().splitlines()
    header = search[0].split(",")
    keep = [i for i, c in enumerate(header) if c not in ("seconds", "latency_ms")]  # wall times
    glue = json.loads((repo / "metrics" / "glue" / "tiny" / "MRPC.json").read_text())
    return weights, [[row.split(",")[i] for i in keep] for row in search], glue["score"], glue["per_seed"][0]["epochs"]


def _stale(repo: Path) -> set[str]:
    """The stages `dvc status` lists as changed."""
    return {line.rstrip(":").strip() for line in _run(["dvc", "status"], repo).splitlines()
            if line.endswith(":") and not line.startswith(("\t", " "))}


def _mlflow_runs(repo: Path, since_ms: float = 0, wait: float = 30) -> list[tuple[str, str, str]]:
    """(stage tag, dvc_exp_name tag, status) of every MLflow run of the repository started after ``since_ms``
    (waiting at most ``wait`` seconds for a writer's lock on the store)."""
    import sqlite3

    with sqlite3.connect(repo / "mlflow.db", timeout=wait) as con:
        rows = con.execute(
            "SELECT s.value, COALESCE(e.value, ''), r.status FROM runs r "
            "JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = 'stage' "
            "LEFT JOIN tags e ON e.run_uuid = r.run_uuid AND e.key = 'dvc_exp_name' "
            "WHERE r.start_time >= ?", (since_ms,)).fetchall()
    return rows


def _running(repo: Path, stage: str, since_ms: float) -> bool:
    """Whether ``stage``'s MLflow run has started and is still running. A store locked by a writer counts as not
    yet: a poll that waited out the lock could find the stage already finished, too late to interrupt it."""
    import sqlite3

    try:
        return any(s == stage and status == "RUNNING" for s, _, status in _mlflow_runs(repo, since_ms, wait=0.01))
    except sqlite3.OperationalError:  # database is locked
        return False


def _kill_during(repo: Path, stage: str, sig: int, ready) -> None:
    """Start `dvc repro -f -s <stage>` in a process group of its own, wait until ``ready()`` holds while the stage
    runs, and send ``sig`` to the whole group (DVC and the stage's processes)."""
    import time

    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", stage], cwd=repo, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 300
    while not ready():
        assert proc.poll() is None, f"{stage} ended before it could be interrupted"
        assert time.time() < deadline, f"{stage} never got going"
        time.sleep(0.05)
    assert proc.poll() is None, f"{stage} ended before it could be interrupted"
    os.killpg(proc.pid, sig)
    proc.wait(timeout=120)
    assert proc.returncode != 0


def clone_with_raw_data(repo: Path) -> None:
    """A clone of this repository at ``repo`` with the raw GLUE data and corpus pulled from the project's remote."""
    _run(["git", "clone", "-q", str(REPO), str(repo)], REPO)
    remote = _run(["dvc", "config", "remote.storage.url"], REPO).strip().splitlines()[-1]
    if not Path(remote).is_dir():
        pytest.skip(f"the project's DVC remote {remote} is not here")
    _run(["dvc", "remote", "modify", "--local", "storage", "url", remote], repo)
    _run(["dvc", "pull", "-q", "data/raw/glue.dvc", "data/raw/corpus.dvc"], repo)


@pytest.fixture(scope="module")
def micro_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    clone_with_raw_data(repo)
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
        assert not list((repo / "checkpoints" / "superlm" / name).glob("**/*.pt"))  # removed once finished
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
        assert info["kind"] == "student" and info["superlm_sha256"] and "latency" not in info
        exported = json.loads((repo / "metrics" / "export" / f"{student}.json").read_text())
        assert exported["latency_ms"] > 0 and exported["superlm_run_id"] and exported["mlflow_run_id"]
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
    yardstick = json.loads((repo / "metrics" / "yardstick.json").read_text())
    assert set(yardstick["models"]) == set(MICRO["finetune"]["models"]) and yardstick["pooling"] == "mean"
    assert yardstick["models"]["teacher"]["agreement"] == pytest.approx(100.0)
    assert yardstick["models"]["teacher"]["cka"] == pytest.approx(1.0) and yardstick["pairs_per_task"] == {"RTE": 48}
    assert summary["yardstick"]["retention"]["tiny"]["pairs"] is not None
    probes = json.loads((repo / "metrics" / "probes.json").read_text())
    assert all(p["pairs"] is not None and p["agreement"] is not None for p in probes["probes"] if p["subspace"])
    # a student of the sentence-transformers teacher carries its pooling modules, as do the teacher and the twin
    for model in ("teacher", "tiny", "random-tiny"):
        assert json.loads((repo / "models" / model / "1_Pooling" / "config.json").read_text())[
            "pooling_mode_mean_tokens"]
    corpus = json.loads((repo / "metrics" / "corpus.json").read_text())
    assert corpus["train"]["blocks"] == 8192 // 128

    assert "up to date" in _run(["dvc", "status"], repo)
    again = _run(["dvc", "repro"], repo)
    assert "Running stage" not in again

    # determinism: the same stages run again give the same weights (bitwise) and the same results
    before = _results(repo)
    _run(["dvc", "repro", "-f", "-s", "superlm@tiny", "search@tiny", "export@tiny"], repo)
    # the re-exported model folders are byte-identical (the measured latency and the run ids live in
    # metrics/export/): no fine-tuning job is stale, only the report that shows the latency
    assert _stale(repo) == {"report"}
    _run(["dvc", "repro", "-f", "-s", "finetune@tiny-MRPC"], repo)
    assert _results(repo) == before

    # a fine-tuning param invalidates fine-tuning and the report, nothing upstream
    params = yaml.safe_load((repo / "params.yaml").read_text())
    micro_lr = params["finetune"]["lr"]
    params["finetune"]["lr"] = 3e-4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = _stale(repo)
    assert changed == {f"finetune@{m}-MRPC" for m in MICRO["finetune"]["models"]} | {"report"}, changed

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("autodistil").experiment_id])
    stages = {r.data.tags["stage"] for r in runs}
    assert {"prepare_corpus", "prepare_glue@MRPC", "partition", *(f"superlm@{n}" for n in names),
            *(f"search@{n}" for n in names), "teacher", *(f"export@{s}" for s in students),
            *(f"finetune@{m}-MRPC" for m in MICRO["finetune"]["models"]), "report"} <= stages
    params["finetune"]["lr"] = micro_lr
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # back where the tests below start (the report shows the latency re-measured by the forced export)
    _run(["dvc", "repro"], repo)
    assert "up to date" in _run(["dvc", "status"], repo)


@pytest.mark.slow
def test_interrupted_stages_rerun_to_the_same_results(micro_repo):
    """SIGTERM or SIGKILL of `dvc repro` (its whole process group) in the middle of SuperLM training, search or
    fine-tuning; the next `dvc repro` finishes with the results of an uninterrupted run, SuperLM training resuming
    from its last checkpoint, and the SIGTERM'd stage's MLflow run is marked FAILED."""
    import signal
    import time

    repo = micro_repo
    before = _results(repo)
    folder = repo / "checkpoints" / "superlm" / "tiny"  # last.pt in the folder of the run's configuration
    _kill_during(repo, "superlm@tiny", signal.SIGKILL, lambda: any(folder.glob("*/last.pt")))  # its first checkpoint
    assert "superlm@tiny" in _run(["dvc", "status"], repo)
    _run(["dvc", "repro", "superlm@tiny"], repo)
    assert json.loads((repo / "metrics" / "superlm" / "tiny.json").read_text())["resumed_from_step"] >= 1
    assert not list(folder.glob("**/*.pt"))  # a finished run clears its checkpoints
    t0 = time.time() * 1000
    _kill_during(repo, "search@tiny", signal.SIGTERM, lambda: _running(repo, "search@tiny", t0))
    _run(["dvc", "repro", "search@tiny"], repo)
    t1 = time.time() * 1000
    _kill_during(repo, "finetune@tiny-MRPC", signal.SIGKILL, lambda: _running(repo, "finetune@tiny-MRPC", t1))
    assert "finetune@tiny-MRPC" in _run(["dvc", "status"], repo)
    _run(["dvc", "repro"], repo)
    assert _results(repo) == before
    assert ("search@tiny", "", "FAILED") in _mlflow_runs(repo, t0)
    assert not list(repo.glob("**/.*.tmp-*"))  # no temporary output left behind anywhere
    assert "up to date" in _run(["dvc", "status"], repo)


@pytest.mark.slow
def test_two_queued_experiments_run_side_by_side(micro_repo):
    """`dvc exp run --queue` twice and `dvc queue start -j 2`: both finish, both show in `dvc exp show` with their
    own params and metrics, and MLflow holds each one's runs under its own dvc_exp_name, none failed."""
    import time

    repo = micro_repo
    for key, value in (("user.name", "autodistil tests"), ("user.email", "tests@autodistil.invalid")):
        _run(["git", "config", key, value], repo)
    t0 = time.time() * 1000
    lrs = {"q-lr2": 2e-4, "q-lr3": 3e-4}
    for name, lr in lrs.items():
        _run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"finetune.lr={lr}"], repo)
    _run(["dvc", "queue", "start", "-j", "2"], repo)
    deadline = time.time() + 900
    while True:
        status = _run(["dvc", "queue", "status"], repo)
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.time() < deadline, status
        time.sleep(5)
    assert status.count("Success") == 2 and "Failed" not in status, status

    def find(node, name):  # the experiment entry called ``name`` anywhere in `dvc exp show --json`
        if isinstance(node, dict):
            if node.get("name") == name and "data" in node:
                return node
            node = list(node.values())
        if isinstance(node, list):
            for child in node:
                if (hit := find(child, name)) is not None:
                    return hit
        return None

    show = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, capture_output=True, text=True)
    assert show.returncode == 0, show.stderr
    shown = json.loads(show.stdout)
    for name, lr in lrs.items():
        exp = find(shown, name)
        assert exp is not None, f"{name} missing from dvc exp show"
        data = exp["data"]
        assert float(data["params"]["params.yaml"]["data"]["finetune"]["lr"]) == lr
        assert "metrics/summary.json" in data["metrics"]
    runs = _mlflow_runs(repo, t0)
    for name in lrs:
        mine = {(stage, status) for stage, exp, status in runs if exp == name}
        assert mine == {(f"finetune@{m}-MRPC", "FINISHED") for m in MICRO["finetune"]["models"]} | {
            ("report", "FINISHED")}, (name, mine)
