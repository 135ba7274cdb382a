"""One writer per output, and no orphaned workers.

torchrun starts its workers in a session of their own, so killing the process group of ``dvc repro`` (as a
terminal's Ctrl-\\ or a scheduler's SIGKILL does) kills the launcher but not the workers: they would go on
training, and the next ``dvc repro`` would train beside them on the same checkpoint folder. Two guards:

- :func:`exit_with_parent`: a worker ends as soon as the process that started it is gone;
- :func:`exclusive_dir`: an advisory lock (``flock``) on a folder; a second writer is refused with a
  message naming the process that holds it. The kernel drops the lock when its holder dies, however it
  dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .io import InputError

LOCK_FILE = ".lock"


def exit_with_parent(parent: int | None = None, poll_seconds: float = 0.5) -> None:
    """End this process (exit status 1) once its parent ``parent`` has died.

    A daemon thread watches the parent pid: when the parent dies the process is re-parented (to init or a
    sub-reaper), so the pid changes. Polling works whatever thread started the process, unlike
    ``PR_SET_PDEATHSIG``, which fires when the creating *thread* ends. Pass the ``os.getppid()`` read
    first thing in the script: importing this package takes seconds, and a launcher that dies meanwhile
    would otherwise go unnoticed.
    """
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                print(f"error: the launcher (pid {parent}) is gone; worker {os.getpid()} stops",
                      file=sys.stderr, flush=True)
                os._exit(1)
            time.sleep(poll_seconds)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process (it wrote no name)"


@contextmanager
def exclusive_dir(directory: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Hold ``directory`` for this process alone; raise :class:`InputError` naming the holder if taken.

    The lock file records pid, host and command line while held and is removed on release, so a finished
    run leaves the folder as it found it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"{directory}: this {what} is in use by {_holder(path)}; stop that process "
                             f"or wait for it to finish") from None
        try:  # the holder we waited on may have removed the file: then lock the new one instead
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)}\n".encode())
        yield directory
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)  # releases the lock
