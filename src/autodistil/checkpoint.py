"""SuperLM training checkpoints: one folder per run configuration, written atomically, the one before kept,
unreadable ones skipped.

A checkpoint holds everything a step depends on beyond its number (weights, optimiser, scheduler, the logged
history; data order, sub-networks and dropout are functions of the step) and the run's configuration. Each
configuration has its own folder (a hash of it), so a run with changed settings starts afresh beside the old
checkpoint instead of overwriting it, and changing the settings back resumes the old run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from .io import atomic_path

CHECKPOINT = "last.pt"
PREVIOUS = "previous.pt"  # the one before: what a resume falls back on when the last is unreadable


def run_folder(directory: Path, config: dict) -> Path:
    """The checkpoint folder of one run configuration under ``directory`` (named by a hash of it). Folders of
    other configurations are left alone, and named, so that nothing is lost silently."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(directory) / digest
    others = sorted({p.parent.name for p in Path(directory).glob(f"*/{CHECKPOINT}")} - {digest})
    if others:
        print(f"superlm: {directory} also holds checkpoints of {len(others)} other configuration(s) "
              f"({', '.join(others)}); kept: this run uses {folder}", file=sys.stderr)
    return folder


def save_checkpoint(directory: Path, step: int, model, optimizer, scheduler, history: list, config: dict) -> None:
    """Write ``last.pt`` atomically; the checkpoint it replaces becomes ``previous.pt``."""
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "config": config,
    }
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / CHECKPOINT) as tmp:
        torch.save(state, tmp)
        if (directory / CHECKPOINT).is_file():
            os.replace(directory / CHECKPOINT, directory / PREVIOUS)


def load_checkpoint(directory: Path, config: dict) -> dict | None:
    """The newest readable checkpoint of a run with the same configuration, else None (starting afresh).

    A checkpoint that cannot be read (truncated, corrupt) or holds no complete state is skipped with a
    warning for the previous one; one of another configuration is ignored, noisily.
    """
    for name in (CHECKPOINT, PREVIOUS):
        path = directory / name
        if not path.is_file():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            missing = [k for k in ("step", "model", "optimizer", "scheduler", "history") if k not in state]
            if missing:
                raise ValueError(f"no {', '.join(missing)}")
        except Exception as e:  # noqa: BLE001 - any unreadable file is skipped, never trusted
            print(f"superlm: warning: {path} is unreadable ({type(e).__name__}: {str(e)[:200]}); "
                  f"{'trying ' + PREVIOUS if name == CHECKPOINT else 'starting afresh'}", file=sys.stderr)
            continue
        if state.get("config") != config:
            old = state.get("config") or {}
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            print(f"superlm: ignoring {path} (a run with other settings: {', '.join(changed)}); starting afresh",
                  file=sys.stderr)
            return None
        if name == PREVIOUS:
            print(f"superlm: resuming from {path} (step {state['step']})", file=sys.stderr)
        return state
    return None


def clear_checkpoints(directory: Path) -> None:
    """A finished run's checkpoints go: the trained model is the output now (with any temporary file that a
    worker killed in the middle of a save left behind, and the run's folder once empty)."""
    for name in (CHECKPOINT, PREVIOUS):
        (directory / name).unlink(missing_ok=True)
    for stale in directory.glob(f".{CHECKPOINT}.tmp-*"):
        stale.unlink(missing_ok=True)
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
