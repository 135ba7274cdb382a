"""Run a stage script as ``__main__`` in this process: the CLI's code path without a fresh interpreter's imports."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_stage_script(script: str, args, cwd: Path, monkeypatch, capsys, exp_name: str | None = None
                     ) -> tuple[int, str]:
    """``python stages/<script> <args>`` in ``cwd``; returns (exit code, stderr)."""
    monkeypatch.chdir(cwd)
    if exp_name is not None:
        monkeypatch.setenv("DVC_EXP_NAME", exp_name)
    monkeypatch.setattr(sys, "argv", [script, *args])
    capsys.readouterr()
    try:
        runpy.run_path(str(REPO / "stages" / script), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err
