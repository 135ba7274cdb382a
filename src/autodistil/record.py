"""The one record step every stage ends with: its metrics JSON, its MLflow run's metrics and artifacts, its summary.

A stage main reads its arguments and params (:func:`autodistil.config.load`), checks its inputs, opens its MLflow
run with :func:`tracked` (so that long work logs its steps as it goes), makes one library call that returns a
:class:`Record`, and hands it to :func:`record`. What is recorded, and how, is decided here once.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Params


@dataclass
class Record:
    """What a stage's work produced, to be recorded.

    ``metrics`` goes to ``path`` (JSON, with the MLflow run id added) and, unless ``logged`` says otherwise, its
    numeric leaves to the run; ``logged`` maps a metric prefix (``""`` for none) to the dict logged under it.
    ``artifacts`` are files attached as they are; ``figures`` are drawn (``draw(png_path)``) into a temporary
    folder and attached under their name. ``summary`` is printed: a mapping as one JSON line, text as it is.
    """

    metrics: dict
    path: Path | str
    logged: Mapping[str, Mapping] | None = None
    artifacts: list[Path | str] = field(default_factory=list)
    figures: dict[str, Callable[[Path], Any]] = field(default_factory=dict)
    summary: Mapping | str | None = None


@contextmanager
def tracked(stage: str, params: Params, logged: Mapping, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """The stage's MLflow run (:func:`autodistil.tracking.stage_run`) in the experiment params name, ``logged``
    as its params."""
    from .tracking import stage_run

    with stage_run(stage, logged, params.mlflow.experiment, tags=tags) as run:
        yield run


def record(run: Any, rec: Record) -> None:
    """Write ``rec`` (see :class:`Record`) inside the active MLflow ``run``."""
    import mlflow

    from .tracking import log_metrics, write_metrics

    for prefix, values in (rec.logged if rec.logged is not None else {"": rec.metrics}).items():
        log_metrics(values, prefix=prefix)
    write_metrics(rec.path, rec.metrics, run)
    for path in rec.artifacts:
        mlflow.log_artifact(str(path))
    if rec.figures:
        with tempfile.TemporaryDirectory() as tmp:
            for name, draw in rec.figures.items():
                draw(Path(tmp) / name)
                mlflow.log_artifact(str(Path(tmp) / name))
    if rec.summary is not None:
        print(rec.summary if isinstance(rec.summary, str) else json.dumps(rec.summary))
