"""MLflow conventions of the project, in one place.

- Store: SQLite at ``<root>/mlflow.db`` where root is ``$DVC_ROOT`` (set by ``dvc exp run``, also for
  queued/temp experiments that run in ``.dvc/tmp/exps/...``) or else the repository root. The URI is always
  absolute, so every stage of every experiment writes to the same store.
- One experiment (name from ``params.yaml: mlflow.experiment``), created once under a file lock (tolerates
  concurrent stages).
- One run per stage execution, tagged ``stage`` (the DVC stage name, e.g. ``prepare_glue@SST-2``),
  ``dvc_exp_name`` (``$DVC_EXP_NAME``, empty in the workspace), ``git_commit``; its params are logged
  flattened (``prepare_corpus.seq_len``); its run id is written into the stage's metrics JSON.

Browse with ``mlflow ui --backend-store-uri sqlite:///mlflow.db`` from the repo root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from .io import atomic_write_json

DB_NAME = "mlflow.db"
DEFAULT_EXPERIMENT = "autodistil"


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """``$DVC_ROOT`` if set, else the nearest folder at or above ``start`` (default: cwd) holding ``.dvc`` or
    ``.git``, else ``start`` itself."""
    env = os.environ.get("DVC_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or os.getcwd()).resolve()
    for marker in (".dvc", ".git"):
        for folder in (here, *here.parents):
            if (folder / marker).exists():
                return folder
    return here


def tracking_uri(root: str | os.PathLike | None = None) -> str:
    """``sqlite:///<absolute root>/mlflow.db`` (root defaults to :func:`repo_root`)."""
    path = (Path(root).resolve() if root is not None else repo_root()) / DB_NAME
    return f"sqlite:///{path.as_posix()}"


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The checked-out commit (``HEAD``), or ``""`` outside a git repository."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def flatten(params: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": "[1, 2]"}`` (values ready for ``log_params``)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = str(list(value))
        else:
            flat[name] = value
    return flat


def _lock(path: Path):
    import fcntl

    f = path.open("a")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


# a model-training experiment: `mlflow ui` opens it on the runs table (MLflow 3 shows GenAI views otherwise)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(experiment: str, uri: str) -> str:
    """The experiment's id, creating the store and the experiment once (under a file lock beside the DB)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    lock = None
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(db.with_name(db.name + ".lock"))
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            for key, value in EXPERIMENT_TAGS.items():  # stores made before the tag existed
                if found.tags.get(key) != value:
                    client.set_experiment_tag(found.experiment_id, key, value)
            return found.experiment_id
        try:
            return client.create_experiment(experiment, tags=EXPERIMENT_TAGS)
        except MlflowException:  # created meanwhile by a writer that did not take the lock
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise
            return found.experiment_id
    finally:
        if lock is not None:
            lock.close()


@contextmanager
def stage_run(
    stage: str,
    params: Mapping | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    root: str | os.PathLike | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """One MLflow run for one execution of a DVC stage; yields the active ``mlflow.ActiveRun``.

    The run is tagged with the stage, ``$DVC_EXP_NAME`` and the git commit, and logs ``params`` flattened.
    It ends FINISHED, or FAILED if the body raises (the exception propagates).
    """
    import mlflow

    uri = tracking_uri(root)
    experiment_id = ensure_experiment(experiment, uri)
    mlflow.set_tracking_uri(uri)
    commit = git_commit()
    all_tags = {
        "stage": stage,
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        **(tags or {}),
    }
    with ExitStack() as stack:
        # a SIGTERM arriving inside start_run (the run created, its end not yet registered) would leave the run
        # RUNNING forever: it is held until the run's end is on the stack, which then ends the run FAILED
        with _sigterm_held():
            run = stack.enter_context(mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=all_tags))
        if params:
            flat = flatten(params)
            mlflow.log_params({k: ("" if v is None else v) for k, v in flat.items()})
        yield run


@contextmanager
def _sigterm_held() -> Iterator[None]:
    """SIGTERM is held inside the block and delivered on leaving it.

    The Python handler is swapped for one that only takes note: Python runs handlers in the main thread whichever
    thread the kernel picked, whereas a signal mask covers the calling thread only, and a library's thread (MLflow,
    SQLAlchemy) would take the signal and let it through at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be set from the main thread, where every stage runs
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)  # None: set outside Python
        if pending:
            signal.raise_signal(signal.SIGTERM)


def log_metrics(metrics: Mapping[str, Any], prefix: str = "") -> None:
    """Log the numeric leaves of a (nested) metrics dict to the active run; other values are skipped."""
    import mlflow

    numeric = {
        k: float(v)
        for k, v in flatten(metrics, prefix).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if numeric:
        mlflow.log_metrics(numeric)


def log_step(metrics: Mapping[str, float], step: int) -> None:
    """Log one training step's metrics without waiting for the database: MLflow queues them and the run's end
    waits for the queue (a synchronous write to SQLite costs about 8 ms, a fine-tuning step 50-300 ms)."""
    import mlflow

    mlflow.log_metrics(dict(metrics), step=step, synchronous=False)


def write_metrics(path: str | os.PathLike, metrics: Mapping[str, Any], run: Any | None = None) -> Path:
    """Write a stage's metrics JSON atomically, adding ``mlflow_run_id`` (from ``run`` or the active run)."""
    data = dict(metrics)
    if run is None:
        import mlflow

        run = mlflow.active_run()
    if run is not None:
        data["mlflow_run_id"] = run.info.run_id
    return atomic_write_json(path, data)
