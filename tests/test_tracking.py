"""MLflow conventions (autodistil.tracking) and the shared stage helpers they build on (autodistil.io)."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autodistil import io, tracking


# ----------------------------------------------------------------------------------------- tracking
def test_tracking_uri_prefers_dvc_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "exp_root"))
    assert tracking.repo_root() == (tmp_path / "exp_root").resolve()
    assert tracking.tracking_uri() == f"sqlite:///{(tmp_path / 'exp_root').resolve()}/mlflow.db"
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_repo_root_without_dvc_root_is_absolute(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "repo" / ".dvc").mkdir(parents=True)
    (tmp_path / "repo" / "stages" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo" / "stages" / "deep")
    assert tracking.repo_root() == (tmp_path / "repo").resolve()
    uri = tracking.tracking_uri()
    assert uri == f"sqlite:///{(tmp_path / 'repo').resolve()}/mlflow.db" and uri.startswith("sqlite:////")


def test_flatten():
    flat = tracking.flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": None, "g": {}})
    assert flat == {"a.b": 1, "a.c.d": "x", "e": "[1, 2]", "f": None, "g": {}}


def test_stage_run_tags_params_metrics_and_run_id(tmp_path, mlflow_root, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("DVC_EXP_NAME", "brisk-fox")
    monkeypatch.chdir(tmp_path)  # not a git repository: git_commit is empty, not an error
    params = {"teacher": {"source": "tiny"}, "stage": {"seq_len": 16, "tasks": ["a", "b"], "hub": None}}
    with tracking.stage_run("superlm@tiny", params, experiment="test-tracking") as run:
        tracking.log_metrics({"loss": 1.5, "split": {"blocks": 3}, "name": "x", "flag": True})
        out = tracking.write_metrics(tmp_path / "metrics" / "m.json", {"loss": 1.5})
    data = json.loads(out.read_text())
    assert data == {"loss": 1.5, "mlflow_run_id": run.info.run_id}

    client = MlflowClient(tracking.tracking_uri())
    assert client.get_experiment_by_name("test-tracking") is not None
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "superlm@tiny"
    assert got.data.tags["stage"] == "superlm@tiny" and got.data.tags["dvc_exp_name"] == "brisk-fox"
    assert got.data.tags["git_commit"] == ""
    assert got.data.params == {"teacher.source": "tiny", "stage.seq_len": "16", "stage.tasks": "['a', 'b']",
                               "stage.hub": ""}
    assert got.data.metrics == {"loss": 1.5, "split.blocks": 3.0}
    # found by tag, the way a report stage would look runs up
    exp = client.get_experiment_by_name("test-tracking").experiment_id
    found = client.search_runs([exp], filter_string="tags.stage = 'superlm@tiny' and tags.dvc_exp_name = 'brisk-fox'")
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_step_metrics_are_all_written_when_the_run_ends(mlflow_root):
    """log_step does not wait for the database; the end of the run does, so no step is lost."""
    from mlflow import MlflowClient

    with tracking.stage_run("finetune@x-y", {}, experiment="test-tracking") as run:
        for step in range(1, 201):
            tracking.log_step({"train_loss": 1.0 / step, "lr": 1e-4}, step)
    history = MlflowClient(tracking.tracking_uri()).get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(1, 201))
    assert {m.step: m.value for m in history}[50] == pytest.approx(0.02)


def test_stage_run_tags_git_commit(tmp_path, mlflow_root, monkeypatch):
    from mlflow import MlflowClient

    repo = tmp_path / "g"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    with tracking.stage_run("prepare_corpus", {}, experiment="test-tracking") as run:
        pass
    tags = MlflowClient(tracking.tracking_uri()).get_run(run.info.run_id).data.tags
    assert len(head) == 40 and tags["git_commit"] == head and tags["dvc_exp_name"] == ""


def test_failed_stage_run_is_marked_failed(mlflow_root):
    import mlflow
    from mlflow import MlflowClient

    with pytest.raises(RuntimeError):
        with tracking.stage_run("broken", {"x": 1}, experiment="test-tracking"):
            run_id = mlflow.active_run().info.run_id
            raise RuntimeError("boom")
    assert MlflowClient(tracking.tracking_uri()).get_run(run_id).info.status == "FAILED"
    assert mlflow.active_run() is None


def test_experiment_created_once_under_concurrency(mlflow_root):
    """Four writers racing to create the same experiment get one id (the store exists: creating a fresh SQLite
    schema costs seconds, and it is serialised by the same lock)."""
    uri = tracking.tracking_uri()
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: tracking.ensure_experiment("shared", uri), range(4)))
    assert len(set(ids)) == 1
    assert tracking.ensure_experiment("shared", uri) == ids[0]
    assert (mlflow_root / "mlflow.db").is_file() and (mlflow_root / "mlflow.db.lock").is_file()
    from mlflow import MlflowClient

    # a model-training experiment, so that `mlflow ui` opens on its runs table
    tags = MlflowClient(uri).get_experiment(ids[0]).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_repo_ignores_the_mlflow_store():
    repo = Path(__file__).resolve().parents[1]
    gitignore = (repo / ".gitignore").read_text().split()
    dvcignore = (repo / ".dvcignore").read_text().split()
    for entry in ("/mlflow.db", "/mlruns/", "/mlartifacts/"):
        assert entry in gitignore and entry in dvcignore


# ------------------------------------------------------------------------------- io (stage helpers)
def test_atomic_file_write_replaces_or_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "m.json"
    io.atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    with pytest.raises(ValueError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ValueError
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is untouched
    assert [p.name for p in target.parent.iterdir()] == ["m.json"]  # and no temporary is left


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "data" / "corpus"
    with io.atomic_path(target, is_dir=True) as tmp:
        (tmp / "old.npy").write_text("1")
    with io.atomic_path(target, is_dir=True) as tmp:
        assert not target.joinpath("new.npy").exists()  # nothing visible before the rename
        (tmp / "new.npy").write_text("2")
    assert [p.name for p in target.iterdir()] == ["new.npy"]
    with pytest.raises(KeyError):
        with io.atomic_path(target, is_dir=True) as tmp:
            (tmp / "partial").write_text("x")
            raise KeyError
    assert [p.name for p in target.iterdir()] == ["new.npy"]
    assert [p.name for p in target.parent.iterdir()] == ["corpus"]
    assert oct(target.stat().st_mode & 0o777) == "0o755"


def test_fail_and_run_main_print_one_line(capsys):
    def bad():
        raise io.InputError("data/x.tsv:3: expected 2 columns,\n found 3")

    with pytest.raises(SystemExit) as e:
        io.run_main(bad)
    assert e.value.code == 1
    assert capsys.readouterr().err == "error: data/x.tsv:3: expected 2 columns, found 3\n"
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        io.run_main(lambda: 1 / 0)


STAGE_KILLED_MIDWAY = """
import sys, time
from pathlib import Path
from autodistil import io, tracking

def main():
    with tracking.stage_run("search@tiny", {}, experiment="test-tracking") as run:
        Path(sys.argv[2]).write_text(run.info.run_id)
        with io.atomic_path(Path(sys.argv[1]) / "out", is_dir=True) as tmp:
            (tmp / "half.json").write_text("{")
            print("working", flush=True)
            time.sleep(60)

io.run_main(main)
"""


def test_sigterm_cleans_up_and_marks_the_run_failed(tmp_path, mlflow_root):
    """A stage killed with SIGTERM exits 143 with one line, leaves no temporary output, ends its run FAILED."""
    import signal
    import sys

    from mlflow import MlflowClient

    script, run_id_file = tmp_path / "stage.py", tmp_path / "run_id"
    script.write_text(STAGE_KILLED_MIDWAY)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "outs"), str(run_id_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "working"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.splitlines()[-1] == "error: terminated (SIGTERM)"
    assert list((tmp_path / "outs").iterdir()) == []  # the half-written folder went with the process
    run = MlflowClient(tracking.tracking_uri()).get_run(run_id_file.read_text())
    assert run.info.status == "FAILED"


def test_one_number_reader_for_params():
    assert io.number("4e-05") == 4e-05 and io.number(3) == 3.0 and isinstance(io.number(3), float)
    assert io.number("1e+03", int) == 1000 and isinstance(io.number(2.0, int), int)
    for bad, kind in ((True, float), (None, float), ("fast", float), ([1], float), (2.5, int), ("1e-1", int)):
        with pytest.raises((TypeError, ValueError)):
            io.number(bad, kind)


def test_params_helpers(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("a:\n  b: 2\n  c: null\n")
    assert io.load_params(p) == {"a": {"b": 2, "c": None}}
    p.write_text("a: [1, 2\n")
    with pytest.raises(io.InputError, match=r"params.yaml:\d+: not valid YAML"):
        io.load_params(p)
    with pytest.raises(io.InputError, match="params file not found"):
        io.load_params(tmp_path / "none.yaml")


@pytest.mark.parametrize("sender", ["main thread", "another thread"])
def test_sigterm_while_the_run_is_created_still_ends_it_failed(mlflow_root, monkeypatch, sender):
    """A SIGTERM that lands inside mlflow.start_run (the run row exists, the `with` body not yet entered) is held
    until the run is open, so the run ends FAILED instead of staying RUNNING; also when the kernel hands it to a
    thread other than the main one (a library's), which a signal mask on the main thread would not hold."""
    import os
    import signal
    import threading

    import mlflow

    from autodistil.io import Terminated, _raise_terminated
    from autodistil.tracking import stage_run

    real, started = mlflow.start_run, []

    def start_and_get_killed(*args, **kwargs):
        active = real(*args, **kwargs)
        started.append(active.info.run_id)

        def kill():  # after the run exists, before stage_run's body
            os.kill(os.getpid(), signal.SIGTERM)

        if sender == "main thread":
            kill()
        else:  # the sending thread blocks nothing, so the kernel may deliver the signal to it, not to main
            thread = threading.Thread(target=kill)
            thread.start()
            thread.join()
        return active

    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    monkeypatch.setattr(mlflow, "start_run", start_and_get_killed)
    try:
        with pytest.raises(Terminated):
            with stage_run("search@tiny", {"a": 1}, root=mlflow_root):
                raise AssertionError("the body must not run on")  # pragma: no cover
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert len(started) == 1 and mlflow.get_run(started[0]).info.status == "FAILED"
