"""Small I/O helpers shared by every stage: atomic writes, reading a params file, numbers, one-line CLI errors.

Stages never leave half-written outputs: they write into a temporary path *beside* the target (same
filesystem, so the final rename is atomic) and rename it into place only when everything succeeded.
Bad input is reported as an :class:`InputError` whose message names the file and line (or the params key)
and what was expected; :func:`run_main` turns it into one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn


class InputError(Exception):
    """Bad user input (data file, params key, task name). The message is one line, shown as is."""


def fail(msg: str, code: int = 1) -> NoReturn:
    """Print ``error: <msg>`` as one line on stderr and exit with ``code``."""
    line = " ".join(str(msg).split())  # one line, whatever the message held
    print(f"error: {line}", file=sys.stderr, flush=True)
    raise SystemExit(code)


class Terminated(BaseException):
    """SIGTERM arrived (``kill``, a scheduler, ``dvc queue kill``): unwinds like Ctrl-C, so temporary outputs are
    removed and the MLflow run ends FAILED instead of staying RUNNING forever."""


def _raise_terminated(signum, frame) -> NoReturn:
    raise Terminated(signum)


def run_main(main: Callable[[], Any]) -> None:
    """Run a stage's ``main``; bad input (:class:`InputError`) becomes a one-line error and exit 1.

    Ctrl-C and SIGTERM end it with exit 130 / 143 after the usual clean-up. Anything else is a bug and keeps its
    traceback.
    """
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main()
    except InputError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Terminated:
        fail("terminated (SIGTERM)", code=143)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tmp_beside(target: Path, is_dir: bool) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
    os.close(fd)
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``, on error it is removed.

    With ``is_dir=True`` the temporary path is an (empty) directory to fill; an existing ``target`` directory
    is replaced as a whole. With ``is_dir=False`` it is an empty file to write.
    """
    target = Path(target)
    tmp = _tmp_beside(target, is_dir)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if is_dir:
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700; outputs should be ordinary folders
        if target.exists() or target.is_symlink():
            old = _tmp_beside(target, is_dir=False)  # reserve a unique name for the old copy
            old.unlink()
            os.replace(target, old)
            os.replace(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)
    else:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs should be ordinary files
        os.replace(tmp, target)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    """The whole params file as a dict (a missing or malformed file is an :class:`InputError`)."""
    import yaml

    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: params file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise InputError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return params


def number(value: Any, kind: type = float) -> int | float:
    """``value`` as an int or a float, the one reader of numbers in params: DVC's ``-S`` writes small floats back
    as ``4e-05``, which YAML 1.1 loaders read as a string, so numeric strings count; booleans, non-numbers and
    (for ``int``) fractions raise ``ValueError`` (``TypeError`` for non-scalars) for the caller to name the key."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    if kind is int and isinstance(value, int):
        return value  # exact, however large
    try:
        f = float(value)  # ValueError / TypeError for anything else
    except OverflowError:
        raise ValueError(f"out of range: {value!r}") from None
    if kind is int:
        if not f.is_integer():
            raise ValueError(f"not an integer: {value!r}")
        return int(f)
    return f
