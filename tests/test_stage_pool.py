"""The concurrent stage runner on a small DVC project: two workers, each job its own outputs, all committed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

JOB = '''import json, os, sys, time
from pathlib import Path
item = sys.argv[1]
start = time.time()
Path("pids").mkdir(exist_ok=True)
Path("pids", item).write_text(str(os.getpid()))
time.sleep(60 if Path("slow").exists() else 1.5)
if Path("fail_" + item).exists():
    sys.exit("job " + item + " broke")
Path("out").mkdir(exist_ok=True)
Path("out", item + ".json").write_text(json.dumps({
    "item": item, "upstream": Path("data.txt").read_text(), "start": start, "end": time.time(),
    "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": os.environ.get("OMP_NUM_THREADS"),
    "dvc_root": os.environ.get("DVC_ROOT")}))
'''

DVC_YAML = '''stages:
  upstream:
    cmd: python -c "open('data.txt', 'w').write('ready')"
    outs: [data.txt]
  job:
    foreach: [a, b, c, d]
    do:
      cmd: python job.py ${item}
      deps: [job.py, data.txt]
      outs:
        - out/${item}.json
  report:
    cmd: python -c "import glob; open('report.txt', 'w').write(str(len(glob.glob('out/*.json'))))"
    deps: [out]
    outs: [report.txt]
'''


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "job.py").write_text(JOB)
    (root / "dvc.yaml").write_text(DVC_YAML)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        assert _run(cmd, root).returncode == 0
    return root


def _pool(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")}
    return subprocess.run([sys.executable, "-m", "autodistil.stage_pool", *args, "--root", str(root)],
                          cwd=root, capture_output=True, text=True, env=env, check=False)


def _stale(root: Path, *stages: str) -> set[str]:
    res = _run(["dvc", "status", "--json", *stages], root)
    assert res.returncode == 0, res.stderr
    return set(json.loads(res.stdout or "{}"))


def test_two_workers_run_jobs_concurrently_and_commit_each(project):
    res = _pool(project, "job@*", "--workers", "2", "--gpus", "none")
    assert res.returncode == 0, res.stdout + res.stderr
    runs = [json.loads((project / "out" / f"{i}.json").read_text()) for i in "abcd"]
    assert all(r["upstream"] == "ready" for r in runs)  # the upstream stage ran first
    assert {r["dvc_root"] for r in runs} == {str(project)}
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    assert {r["threads"] for r in runs} == {threads} and {r["gpu"] for r in runs} == {""}
    # at most two at once, and two at once at some point
    events = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    running, peak = 0, 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2
    # every job recorded in dvc.lock: nothing left to run but the report
    assert _stale(project, "upstream", *[f"job@{i}" for i in "abcd"]) == set()
    repro = _run(["dvc", "repro"], project)
    assert repro.returncode == 0, repro.stderr
    assert (project / "report.txt").read_text() == "4"
    assert "Running stage 'job@" not in repro.stdout and "Running stage 'report'" in repro.stdout
    # a second pool run finds nothing to do
    again = _pool(project, "job@*", "--workers", "2", "--gpus", "none")
    assert again.returncode == 0 and "0 of 4 matched stage(s) changed" in again.stdout
    forced = _pool(project, "job@[ab]", "--workers", "2", "--gpus", "none", "--force")
    assert forced.returncode == 0 and "2 of 2 matched stage(s) forced" in forced.stdout
    assert json.loads((project / "out" / "a.json").read_text())["start"] > max(r["end"] for r in runs)


def test_one_job_per_gpu_and_a_failure_left_uncommitted(project):
    (project / "fail_c").write_text("")
    res = _pool(project, "job@*", "--gpus", "3,5")
    assert res.returncode == 1
    assert "job@c" in res.stderr and "job c broke" in res.stdout
    assert not (project / "out" / "c.json").exists()
    runs = [json.loads((project / "out" / f"{i}.json").read_text()) for i in "abd"]
    assert {r["gpu"] for r in runs} <= {"3", "5"}
    overlapping = [(x, y) for x in runs for y in runs if x is not y and x["start"] < y["end"] and y["start"] < x["end"]]
    assert overlapping and all(x["gpu"] != y["gpu"] for x, y in overlapping)  # never two jobs on one GPU
    assert _stale(project, *[f"job@{i}" for i in "abcd"]) == {"job@c"}


def test_a_pattern_that_matches_nothing_names_the_stages(project):
    res = _pool(project, "finetune@*", "--gpus", "none")
    assert res.returncode != 0
    assert "no stage" in res.stderr and "'finetune@*'" in res.stderr and "job@a" in res.stderr


def test_sigterm_stops_the_running_jobs_and_starts_no_more(project):
    import signal
    import time

    assert _run(["dvc", "repro", "upstream"], project).returncode == 0
    (project / "slow").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")}
    pool = subprocess.Popen([sys.executable, "-m", "autodistil.stage_pool", "job@*", "--workers", "2", "--gpus", "none",
                             "--root", str(project)], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(list((project / "pids").glob("*"))) < 2:  # both workers busy
        assert pool.poll() is None and time.time() < deadline
        time.sleep(0.1)
    pool.send_signal(signal.SIGTERM)
    out, err = pool.communicate(timeout=30)
    assert pool.returncode == 143
    pids = [int(f.read_text()) for f in (project / "pids").glob("*")]

    def alive(pid: int) -> bool:  # a zombie waiting for its reaper counts as ended
        status = Path(f"/proc/{pid}/status")
        return status.exists() and "State:\tZ" not in status.read_text()

    deadline = time.time() + 10
    while any(alive(pid) for pid in pids):  # the jobs went with the runner
        assert time.time() < deadline, [pid for pid in pids if alive(pid)]
        time.sleep(0.1)
    assert len(pids) == 2  # the other two jobs never started
    assert not (project / "out").exists()
    assert _stale(project, *[f"job@{i}" for i in "abcd"]) == {f"job@{i}" for i in "abcd"}


def test_stages_that_depend_on_each_other_are_refused(project):
    res = _pool(project, "*", "--gpus", "none")
    assert res.returncode != 0 and "depends on" in res.stderr and "must be independent" in res.stderr


# ---- longest first, several jobs per GPU: fine-tuning jobs on a fake layout of the upstream stages' files

FINETUNE_YAML = '''stages:
  finetune:
    matrix:
      model: [mystery, tiny, random-tiny, small, teacher]
      task: [SST-2, CoLA]
    cmd: python job.py ${item.model}-${item.task}
    deps:
      - job.py
      - data.txt
      - models/${item.model}
      - data/glue/${item.task}
    outs:
      - out/${item.model}-${item.task}.json
'''


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def glue_project(project) -> Path:
    """Five models x two tasks, the figures where the pipeline's stages leave them, some of them missing."""
    (project / "dvc.yaml").write_text(FINETUNE_YAML)
    (project / "data.txt").write_text("ready")  # job.py reads it
    costs = lambda gflops: json.dumps({"costs": {"gflops_exact": gflops, "seq_len": 128}})  # noqa: E731
    _write(project / "models/teacher/autodistil.json", costs(1.4))
    _write(project / "models/tiny/autodistil.json", costs(0.05))
    _write(project / "models/random-tiny/config.json", "{}")  # no autodistil.json: its student's costs
    _write(project / "models/small/config.json", "{}")  # no autodistil.json: an earlier fine-tuning's record
    _write(project / "metrics/glue/small/SST-2.json", costs(0.5))
    _write(project / "models/mystery/config.json", "{}")  # no figure anywhere
    _write(project / "data/glue/CoLA/task.json", json.dumps({"splits": {"train": {"examples": 5000}}}))
    _write(project / "data/glue/SST-2/train.txt", "")  # no task.json: the prepare_glue metrics
    _write(project / "metrics/prepare_glue/SST-2.json", json.dumps({"train": {"examples": 2000, "tokens": 26622}}))
    return project


def _started(stdout: str) -> list[tuple[str, str]]:
    """(stage, where) of each ``start`` line, in order."""
    return [(line.split()[1], line.split("(", 1)[1].rstrip(")")) for line in stdout.splitlines()
            if line.startswith("start  ")]


def _peak(runs: list[dict]) -> int:
    """The most jobs that ran at once."""
    running = peak = 0
    for _, delta in sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs]):
        running += delta
        peak = max(peak, running)
    return peak


def _listed(stdout: str) -> list[str]:
    """The job lines of --dry: ``  1. <stage>  <work>  (<figures>)``."""
    return [line for line in stdout.splitlines() if re.match(r"\s*\d+\. ", line)]


def test_estimate_work_is_examples_times_gflops_and_a_missing_figure_the_median():
    from autodistil.stage_pool import Job, estimate_work, finetune_inputs, longest_first

    assert finetune_inputs(["stages/finetune.py", "models/random-base", "data/glue/STS-B"]) == ("random-base", "STS-B")
    assert finetune_inputs(["models/superlm/base", "metrics/search/base.json"]) == (None, None)
    figures = [(2000, 0.05), (5000, 1.4), (None, 0.5), (2000, None), (None, None), (5000, 0.05)]
    est = estimate_work(figures)
    # medians of the known figures: 3500 examples, 0.275 GFLOPs
    assert [e.work for e in est] == pytest.approx([100, 7000, 3500 * 0.5, 2000 * 0.275, 3500 * 0.275, 250])
    assert [e.missing for e in est] == [(), (), ("examples",), ("gflops",), ("examples", "gflops"), ()]
    jobs = [Job(f"j{i}", "true", ".") for i in range(len(figures))]
    assert [j.stage for j, _ in longest_first(jobs, est)] == ["j1", "j2", "j4", "j3", "j5", "j0"]
    # no figure at all (not fine-tuning jobs): every estimate alike, the order unchanged
    none = estimate_work([(None, None)] * 3)
    assert [e.work for e in none] == [1.0] * 3 and [e.describe() for e in none] == ["no figures"] * 3
    assert [j.stage for j, _ in longest_first(jobs[:3], none)] == ["j0", "j1", "j2"]
    assert estimate_work([(3, None), (5, None)])[1].work == 5  # a kind no job has changes no order


def test_dry_lists_the_jobs_longest_first_from_the_upstream_files(glue_project):
    res = _pool(glue_project, "finetune@*", "--gpus", "3,5", "--jobs-per-gpu", "2", "--dry")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "run 4 at once (GPUs 3,5, at most 2 per GPU)" in res.stdout
    rows = [line.split(None, 2)[1:] for line in _listed(res.stdout)]
    # known GFLOPs 1.4 1.4 0.5 0.5 0.05 x4: median 0.275 for mystery; equals keep dvc.yaml's order
    assert [stage for stage, _ in rows] == [
        "finetune@teacher-CoLA", "finetune@teacher-SST-2", "finetune@small-CoLA", "finetune@mystery-CoLA",
        "finetune@small-SST-2", "finetune@mystery-SST-2", "finetune@tiny-CoLA", "finetune@random-tiny-CoLA",
        "finetune@tiny-SST-2", "finetune@random-tiny-SST-2"]
    info = dict(rows)
    assert info["finetune@teacher-CoLA"].split() == ["7,000", "(5000", "examples", "x", "1.4", "GFLOPs)"]
    assert "2000 examples x 0.5 GFLOPs" in info["finetune@small-SST-2"]  # from metrics/glue/small
    assert "5000 examples x 0.05 GFLOPs" in info["finetune@random-tiny-CoLA"]  # its student's
    assert "5000 examples x ~0.275 GFLOPs" in info["finetune@mystery-CoLA"]


def test_dry_keeps_dvc_yaml_order_for_stages_without_figures(project):
    res = _pool(project, "job@*", "--gpus", "none", "--dry")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [line.split() for line in _listed(res.stdout)]
    assert [r[1] for r in rows] == ["job@a", "job@b", "job@c", "job@d"]
    assert all("no figures" in " ".join(r) for r in rows)


def test_several_jobs_per_gpu_start_longest_first_pinned_round_robin(glue_project):
    (glue_project / "data/glue/CoLA/task.json").write_text("{}")  # a missing figure: the task's examples
    res = _pool(glue_project, "finetune@*-CoLA", "--gpus", "3,5", "--jobs-per-gpu", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "running them 4 at once (GPUs 3,5, at most 2 per GPU), longest first" in res.stdout
    started = _started(res.stdout)
    runs_models = ("teacher", "small", "mystery", "tiny", "random-tiny")  # by GFLOPs: 1.4, 0.5, ~0.275, 0.05, 0.05
    assert [stage for stage, _ in started] == [f"finetune@{m}-CoLA" for m in runs_models]
    assert [where for _, where in started[:4]] == ["GPU 3", "GPU 5", "GPU 3", "GPU 5"]  # slots round-robin
    runs = {r["item"]: r for r in (json.loads(f.read_text()) for f in (glue_project / "out").glob("*.json"))}
    assert {r["gpu"] for r in runs.values()} == {"3", "5"}
    assert {stage: f"GPU {runs[stage.split('@')[1]]['gpu']}" for stage, _ in started} == dict(started)  # as announced
    peaks = [_peak([r for r in runs.values() if r["gpu"] == gpu]) for gpu in ("3", "5")]
    assert max(peaks) == 2  # two jobs at once on a GPU, never more
    assert _stale(glue_project, *[f"finetune@{m}-CoLA" for m in runs_models]) == set()  # all committed


def test_slots_default_to_gpus_times_jobs_per_gpu_and_envs_go_round_robin():
    from autodistil.stage_pool import slots, worker_envs

    assert slots(["0", "1"], None, None) == 2 and slots(["0", "1"], None, 3) == 6 and slots([], None, 4) == 2
    assert slots(["0", "1"], 5, None) == 5 and slots(["0", "1"], 3, 2) == 3  # --workers alone: as before
    with pytest.raises(SystemExit, match="jobs-per-gpu"):
        slots(["0", "1"], 5, 2)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in worker_envs(6, ["0", "1", "2"])] == ["0", "1", "2", "0", "1", "2"]
