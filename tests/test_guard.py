"""No orphaned workers, one writer per checkpoint folder: injected by killing a launcher and by a second writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from autodistil.guard import LOCK_FILE, exclusive_dir
from autodistil.io import InputError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_worker_ends_when_its_launcher_is_killed(tmp_path):
    # the launcher starts a worker in a session of its own (as torchrun does), prints its pid, then waits
    marker = tmp_path / "launcher-read"
    worker = textwrap.dedent(f"""
        import os, time
        launcher = os.getppid()
        open({str(marker)!r}, "w").close()
        from autodistil.guard import exit_with_parent
        exit_with_parent(launcher, poll_seconds=0.1)
        time.sleep(60)
    """)
    launcher = textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", {worker!r}], start_new_session=True)
        print(p.pid, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    worker_pid = int(proc.stdout.readline())
    try:
        while not marker.exists():  # the worker has read its parent's pid (and is still importing)
            time.sleep(0.05)
        assert _alive(worker_pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _wait_gone(worker_pid, 60), "the worker outlived its launcher"  # after its imports
    finally:
        if _alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


def test_a_second_writer_is_refused_with_the_holders_name(tmp_path):
    folder = tmp_path / "ckpt"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from autodistil.guard import exclusive_dir
            with exclusive_dir({str(folder)!r}):
                print("held", flush=True)
                time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"{folder}: this checkpoint folder is in use by process {holder.pid} "):
            with exclusive_dir(folder, "checkpoint folder"):
                pytest.fail("two writers held the folder")
        holder.send_signal(signal.SIGKILL)  # dies without cleaning up: the kernel drops the lock
        holder.wait()
        with exclusive_dir(folder) as held:
            assert held == folder and str(os.getpid()) in (folder / LOCK_FILE).read_text()
        assert not (folder / LOCK_FILE).exists()  # released: the folder is left as it was
    finally:
        if holder.poll() is None:
            holder.kill()
