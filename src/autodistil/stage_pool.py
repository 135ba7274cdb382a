"""Run DVC stages concurrently: the fine-tuning jobs across GPUs (or CPU cores), each with its own outputs.

    python -m autodistil.stage_pool 'finetune@*' [--workers N] [--gpus 0,1,2,3 | auto | none] [--force]

`dvc repro` runs one stage at a time; the paper profile's 9 models x 8 tasks of fine-tuning would take days on
one GPU that way. This runner

1. brings the matched stages' upstream stages up to date with `dvc repro` (one process, as usual);
2. asks `dvc status` which matched stages changed (``--force``: all of them), and runs each as its own process,
   the stage's own command from dvc.yaml, at most N at once: on GPUs, spread over them (``CUDA_VISIBLE_DEVICES``,
   one GPU per job); on CPU, each job with its share of the cores (``OMP_NUM_THREADS``);
3. records each job that succeeds with `dvc commit`, one commit at a time (DVC's run-cache is not filled, as it
   would be by `dvc repro`).

The matched stages must not depend on each other (checked). Every job keeps its own DVC outputs and its own MLflow
run (the stage scripts do that themselves); its output goes to ``.dvc/tmp/stage_pool/<stage>.log``. A job that
fails is reported with its log's last lines and left uncommitted; the others go on, and the runner exits 1.
SIGTERM or Ctrl-C stops the running jobs and commits nothing more. Afterwards `dvc repro` finds the jobs up to
date and runs what comes downstream (the report). Stages must write their outputs themselves (DVC does not clear them first
here), as every stage of this project does, atomically.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm


@dataclass(frozen=True)
class Job:
    stage: str  # DVC address, e.g. finetune@base-SST-2
    cmd: str
    wdir: str


def _dvc(*args: str, root: Path, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=root, check=False, text=True,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)


def plan(root: Path, pattern: str) -> tuple[list[Job], list[str]]:
    """The stages matching ``pattern`` (fnmatch on the DVC address) as jobs, and their upstream stages."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        matched = [s for s in repo.index.stages if fnmatch.fnmatchcase(s.addressing, pattern)]
        if not matched:
            names = sorted(s.addressing for s in repo.index.stages)
            raise SystemExit(f"error: no stage of {root / 'dvc.yaml'} matches {pattern!r} (stages: {', '.join(names)})")
        import networkx as nx

        for a in matched:  # a job must not wait for another job's outputs
            for b in matched:
                if a is not b and nx.has_path(graph, a, b):
                    raise SystemExit(f"error: {a.addressing} depends on {b.addressing}; the stages run at once must "
                                     f"be independent (narrow the pattern {pattern!r})")
        jobs = [Job(s.addressing, s.cmd if isinstance(s.cmd, str) else " && ".join(s.cmd), s.wdir) for s in matched]
        upstream = sorted({u.addressing for s in matched for u in graph.successors(s)} - {j.stage for j in jobs})
    return jobs, upstream


def changed(root: Path, jobs: list[Job]) -> list[Job]:
    """The jobs whose stage `dvc status` reports changed (or never run)."""
    res = _dvc("status", "--json", *[j.stage for j in jobs], root=root, capture=True)
    if res.returncode != 0:
        raise SystemExit(f"error: dvc status failed: {res.stderr.strip()}")
    stale = json.loads(res.stdout or "{}")
    return [j for j in jobs if j.stage in stale]


def resolve_gpus(spec: str) -> list[str]:
    """``auto``: every visible CUDA device (none without CUDA); ``none``: CPU; else a comma list of ids."""
    if spec == "none":
        return []
    if spec == "auto":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return [g.strip() for g in visible.split(",") if g.strip()]
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    gpus = [g.strip() for g in spec.split(",") if g.strip()]
    if not gpus:
        raise SystemExit(f"error: --gpus {spec!r}: give auto, none or a comma list of GPU ids")
    return gpus


def worker_envs(workers: int, gpus: list[str]) -> list[dict[str, str]]:
    """One environment per worker slot: its GPU (none on CPU) and its share of the CPU threads."""
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // workers))
    return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)] if gpus else "", "OMP_NUM_THREADS": threads}
            for i in range(workers)]


def run_pool(root: Path, jobs: list[Job], envs: list[dict[str, str]], logs: Path) -> list[tuple[Job, int]]:
    """Run ``jobs`` on len(envs) worker slots; commit each success. Returns (job, exit status) in finish order."""
    logs.mkdir(parents=True, exist_ok=True)
    slots: queue.Queue[int] = queue.Queue()
    for i in range(len(envs)):
        slots.put(i)
    commit_lock = threading.Lock()  # the DVC repository lock admits one writer
    running: set[subprocess.Popen] = set()
    stopping = threading.Event()
    done: list[tuple[Job, int]] = []

    def stop(signum, frame):  # SIGTERM or Ctrl-C to the runner ends its jobs too: each runs in a session of its own
        stopping.set()
        for proc in list(running):
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                pass
        raise SystemExit(128 + signum)

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = ({sig: signal.signal(sig, stop) for sig in handled}
                if threading.current_thread() is threading.main_thread() else {})
    bar = tqdm(total=len(jobs), desc="stages", unit="stage")

    def one(job: Job) -> None:
        slot = slots.get()
        if stopping.is_set():  # stopped: the jobs not yet started never start
            slots.put(slot)
            return
        try:
            env = {**os.environ, **envs[slot], "DVC_ROOT": str(root)}
            where = f"GPU {envs[slot]['CUDA_VISIBLE_DEVICES']}" if envs[slot].get("CUDA_VISIBLE_DEVICES") else (
                f"CPU x{envs[slot].get('OMP_NUM_THREADS', '?')}")
            tqdm.write(f"start  {job.stage} ({where})")
            t0 = time.perf_counter()
            log = logs / f"{job.stage}.log"
            with open(log, "w") as fh:
                proc = subprocess.Popen(job.cmd, shell=True, cwd=job.wdir, env=env, stdout=fh,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                running.add(proc)
                rc = proc.wait()
                running.discard(proc)
        finally:
            slots.put(slot)
        seconds = time.perf_counter() - t0
        if rc == 0 and not stopping.is_set():
            with commit_lock:
                res = _dvc("commit", "--force", job.stage, root=root, capture=True)
            if res.returncode != 0:
                rc = res.returncode
                tqdm.write(f"FAILED {job.stage}: ran in {seconds:.0f} s, but dvc commit failed: {res.stderr.strip()}")
            else:
                tqdm.write(f"done   {job.stage} in {seconds:.0f} s")
        else:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            tqdm.write(f"FAILED {job.stage} (exit {rc}, {seconds:.0f} s; {log}):\n  " + "\n  ".join(tail))
        done.append((job, rc))
        bar.update(1)

    try:
        with ThreadPoolExecutor(max_workers=len(envs)) as ex:
            list(ex.map(one, jobs))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bar.close()
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pattern", help="DVC stage addresses to run concurrently (fnmatch), e.g. 'finetune@*'")
    ap.add_argument("--workers", type=int, default=None,
                    help="jobs at once (default: one per GPU; on CPU 2)")
    ap.add_argument("--gpus", default="auto", help="auto (the visible CUDA devices) | none (CPU) | ids, e.g. 0,1,2,3")
    ap.add_argument("--force", action="store_true", help="run every matched stage, changed or not (dvc repro -f)")
    ap.add_argument("--dry", action="store_true", help="print what would run and stop")
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the DVC repository (default: here)")
    args = ap.parse_args(argv)

    root = args.root.resolve()
    gpus = resolve_gpus(args.gpus)
    workers = args.workers if args.workers is not None else (len(gpus) or 2)
    if workers < 1:
        raise SystemExit(f"error: --workers must be at least 1, got {workers}")
    jobs, upstream = plan(root, args.pattern)
    if args.dry:
        print(f"upstream (dvc repro): {' '.join(upstream) or '-'}")
        print(f"{len(jobs)} stage(s) matched; the changed ones run {workers} at once: "
              + ", ".join(j.stage for j in jobs))
        return 0
    if upstream:
        print(f"dvc repro {' '.join(upstream)}", flush=True)
        if _dvc("repro", *upstream, root=root).returncode != 0:
            raise SystemExit("error: the upstream stages failed (see above); nothing was run concurrently")
    todo = jobs if args.force else changed(root, jobs)
    print(f"{len(todo)} of {len(jobs)} matched stage(s) {'forced' if args.force else 'changed'}; running them {workers} at once "
          f"({'GPUs ' + ','.join(gpus) if gpus else 'CPU'})", flush=True)
    results = run_pool(root, todo, worker_envs(workers, gpus), root / ".dvc" / "tmp" / "stage_pool")
    failed = [job.stage for job, rc in results if rc != 0]
    if failed:
        print(f"error: {len(failed)} stage(s) failed and were not committed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(todo)} stage(s) done and committed; `dvc repro` runs what comes after them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
