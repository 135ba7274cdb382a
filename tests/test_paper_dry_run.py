"""The paper profile's dry run (configs/paper_dry_run.py): every stage of configs/paper.yaml on a random-weight
BERT-base teacher, offline. Slow (several minutes): ``python -m pytest -m slow -k paper``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_paper_profile_dry_run_goes_through_every_stage(tmp_path):
    if not (REPO / "data/raw/corpus").is_dir():
        pytest.skip("raw data not pulled")
    proc = subprocess.run([sys.executable, "configs/paper_dry_run.py", "--workdir", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    repo = tmp_path / "repo"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    paper = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    assert params["partition"]["grids"] == paper["partition"]["grids"] and params["search"]["convention"] == "paper"

    teacher = json.loads((repo / "models/teacher/config.json").read_text())
    assert (teacher["hidden_size"], teacher["num_hidden_layers"], teacher["intermediate_size"]) == (768, 12, 3072)
    subspaces = json.loads((repo / "partition/subspaces.json").read_text())
    assert subspaces["convention"] == "fixed_head"
    # the paper's four students, each within its paper-convention budget, with 64-wide heads
    for student, subspace in paper["search"]["students"].items():
        info = json.loads((repo / "models" / student / "autodistil.json").read_text())
        budget = paper["search"]["budgets"][subspace][student]["max_gflops"]
        assert info["costs"]["gflops_paper"] <= budget and info["arch"]["head_size"] == 64
    # MNLI reports both dev sets, STS-B is a regression
    mnli = json.loads((repo / "metrics/glue/small-2/MNLI.json").read_text())
    assert set(mnli["dev"]) == {"dev_matched", "dev_mismatched"}
    stsb = json.loads((repo / "metrics/glue/teacher/STS-B.json").read_text())
    assert stsb["main_metric"] == "pearson" and "spearmanr" in stsb["dev"]["dev"]
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert set(summary["models"]) == {"teacher", "small-2", "random-small-2"}
    assert set(summary["tasks"]) == {"MNLI", "STS-B"}
    assert json.loads((repo / "metrics/superlm/base.json").read_text())["steps"] == 2
    probes = json.loads((repo / "metrics/probes.json").read_text())  # one per band, in the paper's convention
    assert len(probes["probes"]) == 3 and probes["heldout_blocks"] == 4
