"""Run a stage script as ``__main__`` in this process: the CLI's code path without a fresh interpreter's imports."""

from __future__ import annotations

import runpy
import shlex
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def dvc_path_args(script: str) -> list[str]:
    """The options that dvc.yaml's ``cmd`` passes to ``stages/<script>`` (its input and output paths: the stage
    scripts have no defaults for them), without the ``${...}`` items of foreach and matrix stages."""
    for stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values():
        tokens = shlex.split(stage.get("do", stage)["cmd"])
        if f"stages/{script}" in tokens:
            return [t for t in tokens[tokens.index(f"stages/{script}") + 1:] if "${" not in t]
    raise KeyError(f"no stage of dvc.yaml runs stages/{script}")


def run_stage_script(script: str, args, cwd: Path, monkeypatch, capsys, exp_name: str | None = None
                     ) -> tuple[int, str]:
    """``python stages/<script> <dvc.yaml's paths> <args>`` in ``cwd``; returns (exit code, stderr)."""
    monkeypatch.chdir(cwd)
    if exp_name is not None:
        monkeypatch.setenv("DVC_EXP_NAME", exp_name)
    monkeypatch.setattr(sys, "argv", [script, *dvc_path_args(script), *args])
    capsys.readouterr()
    try:
        runpy.run_path(str(REPO / "stages" / script), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err
