"""The concurrent stage runner on a small DVC project: two workers, each job its own outputs, all committed."""

from __future__ import annotations

import json
import os
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
