"""SuperLM training checkpoints: written atomically, the one before kept, unreadable ones skipped.

A checkpoint holds everything a step depends on beyond its number (weights, optimiser, scheduler, RNG states,
the logged history) and the run's configuration, so that a resumed run ends where an uninterrupted one would,
and a checkpoint of another configuration is never resumed.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path

CHECKPOINT = "last.pt"
PREVIOUS = "previous.pt"  # the one before: what a resume falls back on when the last is unreadable


def save_checkpoint(directory: Path, step: int, model, optimizer, scheduler, history: list, config: dict) -> None:
    """Write ``last.pt`` atomically; the checkpoint it replaces becomes ``previous.pt``."""
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
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
            missing = [k for k in ("step", "model", "optimizer", "scheduler", "rng", "history") if k not in state]
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
    worker killed in the middle of a save left behind)."""
    for name in (CHECKPOINT, PREVIOUS):
        (directory / name).unlink(missing_ok=True)
    for stale in directory.glob(f".{CHECKPOINT}.tmp-*"):
        stale.unlink(missing_ok=True)


def restore_rng(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
