"""Run DVC stages at once, longest first: the fine-tuning jobs across GPUs (or CPU cores), each with its own outputs.

    python -m autodistil.stage_pool 'finetune@*' [--gpus 0,1,2,3 | auto | none] [--jobs-per-gpu N] [--workers N]
                                                  [--force] [--dry]

`dvc repro` runs one stage at a time; the paper profile's 9 models x 8 tasks of fine-tuning would take days on
one GPU that way. This runner

1. brings the matched stages' upstream stages up to date with `dvc repro` (one process, as usual);
2. asks `dvc status` which matched stages changed (``--force``: all of them), and runs each as its own process,
   the stage's own command from dvc.yaml, at most N at once (``--workers``; default: GPUs x ``--jobs-per-gpu``),
   the longest first: ordered by an estimate of their work (:func:`estimate_work`: training examples x the
   model's GFLOPs, read from the upstream stages' files; a missing figure counts as the median of the others',
   equals keep dvc.yaml's order). On GPUs each worker slot is pinned to one GPU, round-robin
   (``CUDA_VISIBLE_DEVICES``), so a GPU runs at most ``--jobs-per-gpu`` jobs at once; on CPU each job gets its
   share of the cores (``OMP_NUM_THREADS``);
3. records each job that succeeds with `dvc commit`, one commit at a time (DVC's run-cache is not filled, as it
   would be by `dvc repro`).

The matched stages must not depend on each other (checked). Every job keeps its own DVC outputs and its own MLflow
run (the stage scripts do that themselves); its output goes to ``.dvc/tmp/stage_pool/<stage>.log``. A job that
fails is reported with its log's last lines and left uncommitted; the others go on, and the runner exits 1.
SIGTERM or Ctrl-C stops the running jobs and commits nothing more. Afterwards `dvc repro` finds the jobs up to
date and runs what comes downstream (the report). Stages must write their outputs themselves (DVC does not clear
them first here), as every stage of this project does, atomically.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm


@dataclass(frozen=True)
class Job:
    stage: str  # DVC address, e.g. finetune@base-SST-2
    cmd: str
    wdir: str
    deps: tuple[str, ...] = ()  # its dependencies as in dvc.yaml, relative to the repository root


def _dep_paths(stage, root: Path) -> tuple[str, ...]:
    """A stage's dependencies relative to ``root`` (not resolved: DVC may link outputs into its cache)."""
    paths = []
    for dep in stage.deps:
        rel = os.path.relpath(os.path.normpath(os.path.join(stage.wdir, str(dep.def_path))), root)
        paths.append(str(dep.def_path) if rel.startswith("..") else Path(rel).as_posix())
    return tuple(paths)


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
        jobs = [Job(s.addressing, s.cmd if isinstance(s.cmd, str) else " && ".join(s.cmd), s.wdir, _dep_paths(s, root))
                for s in matched]
        upstream = sorted({u.addressing for s in matched for u in graph.successors(s)} - {j.stage for j in jobs})
    return jobs, upstream


def changed(root: Path, jobs: list[Job]) -> list[Job]:
    """The jobs whose stage `dvc status` reports changed (or never run)."""
    res = _dvc("status", "--json", *[j.stage for j in jobs], root=root, capture=True)
    if res.returncode != 0:
        raise SystemExit(f"error: dvc status failed: {res.stderr.strip()}")
    stale = json.loads(res.stdout or "{}")
    return [j for j in jobs if j.stage in stale]


# ---- which job first: an estimate of each job's work

MODELS_DIR = "models"  # models/<model>/autodistil.json: costs (teacher, students, random-<student> twins)
GLUE_DIR = "data/glue"  # data/glue/<task>/task.json: splits.train.examples (what prepare_glue kept)
GLUE_METRICS = "metrics/prepare_glue"  # metrics/prepare_glue/<task>.json: train.examples (the same, committed)
RESULTS = "metrics/glue"  # metrics/glue/<model>/<task>.json: costs (an earlier fine-tuning of the model)


@dataclass(frozen=True)
class Estimate:
    """A job's work: training examples x the model's GFLOPs (one sequence's forward; see :func:`estimate_work`)."""

    examples: float  # as found, or (when in ``missing``) the median of the other jobs' figures
    gflops: float
    missing: tuple[str, ...] = ()  # "examples", "gflops": the figures not found, filled in

    @property
    def work(self) -> float:
        return self.examples * self.gflops

    def describe(self) -> str:
        if len(self.missing) == 2:
            return "no figures"
        ex = ("~" if "examples" in self.missing else "") + f"{self.examples:.0f}"
        gf = ("~" if "gflops" in self.missing else "") + f"{self.gflops:.3g}"
        return f"{ex} examples x {gf} GFLOPs"


def finetune_inputs(deps: Iterable[str]) -> tuple[str | None, str | None]:
    """The model and the GLUE task a stage depends on (``models/<model>``, ``data/glue/<task>``), None if none."""
    model = task = None
    for dep in deps:
        parts = PurePosixPath(dep).parts
        if len(parts) == 2 and parts[0] == MODELS_DIR:
            model = model or parts[1]
        elif len(parts) == 3 and "/".join(parts[:2]) == GLUE_DIR:
            task = task or parts[2]
    return model, task


def _figure(path: Path, *keys: str) -> float | None:
    """The positive number at ``keys`` in the JSON file ``path``; None when the file or the number is missing."""
    try:
        value = json.loads(path.read_text())
        for key in keys:
            value = value[key]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _gflops(path: Path) -> float | None:
    return _figure(path, "costs", "gflops_exact") or _figure(path, "costs", "gflops_paper")


def job_figures(root: Path, job: Job) -> tuple[float | None, float | None]:
    """(training examples, model GFLOPs) of a fine-tuning job, from what its upstream stages wrote; None when missing.

    Examples: the prepared task's ``task.json``, else ``metrics/prepare_glue/<task>.json``. GFLOPs (exact, else
    paper convention): the model folder's ``autodistil.json``, else its student's (``random-<student>`` has the
    student's architecture), else an earlier fine-tuning result ``metrics/glue/<model>/*.json``.
    """
    model, task = finetune_inputs(job.deps)
    examples = gflops = None
    if task is not None:
        examples = (_figure(root / GLUE_DIR / task / "task.json", "splits", "train", "examples")
                    or _figure(root / GLUE_METRICS / f"{task}.json", "train", "examples"))
    if model is not None:
        names = [model] + ([model.removeprefix("random-")] if model.startswith("random-") else [])
        for name in names:
            gflops = gflops or _gflops(root / MODELS_DIR / name / "autodistil.json")
        for name in names:
            if gflops is None:
                gflops = next((g for f in sorted((root / RESULTS / name).glob("*.json")) if (g := _gflops(f))), None)
    return examples, gflops


def fill_value(figures: Iterable[float | None]) -> float:
    """What stands for a missing figure: the median of the known ones (1, which changes no order, when none is)."""
    known = [f for f in figures if f is not None]
    return statistics.median(known) if known else 1.0


def estimate_work(figures: list[tuple[float | None, float | None]]) -> list[Estimate]:
    """Each job's work from its (training examples, model GFLOPs), None where a figure is missing: their product.

    A missing figure counts as the median of the other jobs' figures of its kind (neither first nor last); a
    stage without either (not a fine-tuning job) thus gets a middling estimate, and when no job has a figure of
    a kind, that kind changes no order. Epochs and seeds multiply every fine-tuning job alike and are left out.
    """
    fill_ex = fill_value(ex for ex, _ in figures)
    fill_gf = fill_value(gf for _, gf in figures)
    return [Estimate(fill_ex if ex is None else ex, fill_gf if gf is None else gf,
                     tuple(kind for kind, f in (("examples", ex), ("gflops", gf)) if f is None))
            for ex, gf in figures]


def longest_first(jobs: list[Job], estimates: list[Estimate]) -> list[tuple[Job, Estimate]]:
    """The jobs by decreasing estimated work; equals keep their order (dvc.yaml's)."""
    order = sorted(range(len(jobs)), key=lambda i: -estimates[i].work)  # sorted() is stable
    return [(jobs[i], estimates[i]) for i in order]


def by_work(root: Path, jobs: list[Job]) -> list[tuple[Job, Estimate]]:
    """The jobs longest first, with their estimates, from the figures found under ``root`` now."""
    return longest_first(jobs, estimate_work([job_figures(root, job) for job in jobs]))


def describe_order(ordered: list[tuple[Job, Estimate]]) -> list[str]:
    """One line per job, in start order: its estimated work and the figures it came from."""
    width = max((len(job.stage) for job, _ in ordered), default=0)
    return [f"{i:4d}. {job.stage:<{width}}  {est.work:>12,.0f}  ({est.describe()})"
            for i, (job, est) in enumerate(ordered, 1)]


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
    """One environment per worker slot: its GPU, round-robin (none on CPU), and its share of the CPU threads.

    With ``workers`` = GPUs x k every GPU has k slots, and the first len(gpus) slots (the first jobs) span all GPUs.
    """
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // workers))
    return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)] if gpus else "", "OMP_NUM_THREADS": threads}
            for i in range(workers)]


def run_pool(root: Path, jobs: list[Job], envs: list[dict[str, str]], logs: Path) -> list[tuple[Job, int]]:
    """Run ``jobs`` in their order on len(envs) worker slots; commit each success. Returns (job, exit status) in
    finish order.

    Each job in turn waits for a free slot (the first ones take slots 0, 1, ... in order) and runs with that slot's
    environment (its GPU); the slot is free again as soon as the job's process ends.
    """
    logs.mkdir(parents=True, exist_ok=True)
    free: queue.Queue[int] = queue.Queue()
    for i in range(len(envs)):
        free.put(i)
    commit_lock = threading.Lock()  # the DVC repository lock admits one writer
    running: set[subprocess.Popen] = set()
    stopping = threading.Event()
    done: list[tuple[Job, int]] = []

    def kill(proc: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    def stop(signum, frame):  # SIGTERM or Ctrl-C to the runner ends its jobs too: each runs in a session of its own
        stopping.set()
        for proc in list(running):
            kill(proc, signum)
        raise SystemExit(128 + signum)

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = ({sig: signal.signal(sig, stop) for sig in handled}
                if threading.current_thread() is threading.main_thread() else {})
    bar = tqdm(total=len(jobs), desc="stages", unit="stage")

    def one(job: Job, slot: int) -> None:
        try:
            if stopping.is_set():
                return
            env = {**os.environ, **envs[slot], "DVC_ROOT": str(root)}
            t0 = time.perf_counter()
            log = logs / f"{job.stage}.log"
            with open(log, "w") as fh:
                proc = subprocess.Popen(job.cmd, shell=True, cwd=job.wdir, env=env, stdout=fh,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                running.add(proc)
                if stopping.is_set():  # stopped while it started: the handler may have missed it
                    kill(proc, signal.SIGTERM)
                rc = proc.wait()
                running.discard(proc)
        finally:
            free.put(slot)  # the next job may start while this one is committed
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

    try:  # twice the slots in threads: a job whose process ended may still be committing when the next one starts
        with ThreadPoolExecutor(max_workers=2 * len(envs)) as ex:
            futures = []
            for job in jobs:  # in order: the longest first
                slot = free.get()
                if stopping.is_set():  # stopped: the jobs not yet started never start
                    break
                env = envs[slot]
                place = (f"GPU {env['CUDA_VISIBLE_DEVICES']}" if env.get("CUDA_VISIBLE_DEVICES")
                         else f"CPU x{env.get('OMP_NUM_THREADS', '?')}")
                tqdm.write(f"start  {job.stage} ({place})")
                futures.append(ex.submit(one, job, slot))
            for future in futures:
                future.result()  # a runner error surfaces here
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bar.close()
    return done


def slots(gpus: list[str], workers: int | None, jobs_per_gpu: int | None) -> int:
    """How many jobs run at once: ``workers``, by default GPUs x ``jobs_per_gpu`` (1), on CPU 2."""
    if workers is not None and workers < 1:
        raise SystemExit(f"error: --workers must be at least 1, got {workers}")
    if jobs_per_gpu is not None and jobs_per_gpu < 1:
        raise SystemExit(f"error: --jobs-per-gpu must be at least 1, got {jobs_per_gpu}")
    if not gpus:
        return workers if workers is not None else 2
    if workers is None:
        return len(gpus) * (jobs_per_gpu or 1)
    if jobs_per_gpu is not None and workers > len(gpus) * jobs_per_gpu:
        raise SystemExit(f"error: --workers {workers} would put more than --jobs-per-gpu {jobs_per_gpu} jobs on one of "
                         f"{len(gpus)} GPU(s); leave --workers out, or raise --jobs-per-gpu")
    return workers


def placement(workers: int, gpus: list[str]) -> str:
    """Where the jobs run, in words."""
    if not gpus:
        return "CPU"
    per_gpu = -(-workers // len(gpus))
    return f"GPUs {','.join(gpus)}, at most {per_gpu} per GPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pattern", help="DVC stage addresses to run concurrently (fnmatch), e.g. 'finetune@*'")
    ap.add_argument("--gpus", default="auto", help="auto (the visible CUDA devices) | none (CPU) | ids, e.g. 0,1,2,3")
    ap.add_argument("--jobs-per-gpu", type=int, default=None, metavar="N",
                    help="jobs sharing each GPU (default 1; ignored on CPU)")
    ap.add_argument("--workers", type=int, default=None,
                    help="jobs at once (default: GPUs x --jobs-per-gpu; on CPU 2); slots go to the GPUs round-robin")
    ap.add_argument("--force", action="store_true", help="run every matched stage, changed or not (dvc repro -f)")
    ap.add_argument("--dry", action="store_true",
                    help="print the jobs in the order they would start, with their estimated work, and stop")
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the DVC repository (default: here)")
    args = ap.parse_args(argv)

    root = args.root.resolve()
    gpus = resolve_gpus(args.gpus)
    workers = slots(gpus, args.workers, args.jobs_per_gpu)
    if args.jobs_per_gpu is not None and not gpus:
        print("note: no GPU; --jobs-per-gpu is ignored (--workers sets the jobs at once)", file=sys.stderr)
    jobs, upstream = plan(root, args.pattern)
    if args.dry:
        print(f"upstream (dvc repro): {' '.join(upstream) or '-'}")
        print(f"{len(jobs)} stage(s) matched; the changed ones run {workers} at once ({placement(workers, gpus)}), "
              "longest first:\n      stage, estimated work = training examples x GFLOPs (~: not found, the median)")
        print("\n".join(describe_order(by_work(root, jobs))))
        return 0
    if upstream:
        print(f"dvc repro {' '.join(upstream)}", flush=True)
        if _dvc("repro", *upstream, root=root).returncode != 0:
            raise SystemExit("error: the upstream stages failed (see above); nothing was run concurrently")
    todo = [job for job, _ in by_work(root, jobs if args.force else changed(root, jobs))]  # figures now up to date
    print(f"{len(todo)} of {len(jobs)} matched stage(s) {'forced' if args.force else 'changed'}; "
          f"running them {workers} at once ({placement(workers, gpus)}), longest first", flush=True)
    results = run_pool(root, todo, worker_envs(workers, gpus), root / ".dvc" / "tmp" / "stage_pool")
    failed = [job.stage for job, rc in results if rc != 0]
    if failed:
        print(f"error: {len(failed)} stage(s) failed and were not committed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(todo)} stage(s) done and committed; `dvc repro` runs what comes after them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
