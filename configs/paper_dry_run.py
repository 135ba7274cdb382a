"""Dry run of the paper's profile: every stage of configs/paper.yaml, end to end, on CPU, offline, in minutes.

    python configs/paper_dry_run.py [--workdir DIR] [--keep]

What it proves: the paper's profile (BERT-base-shaped teacher, explicit fixed-head grids of 256 candidates,
the paper's four students as budgets, eight GLUE tasks with MNLI's two dev sets and STS-B's regression)
goes through partition, SuperLM training, search, export, fine-tuning and the report without an error. What
it does not prove: anything about quality. It

1. clones this repository into DIR (a temporary folder unless given), with your uncommitted changes (modified,
   deleted and untracked files that git does not ignore), and copies the raw data in (data/raw/corpus,
   data/raw/glue): your workspace and its DVC cache are never touched;
2. builds a randomly initialised BERT-base (768 hidden, 12 layers, 12 heads, 3072 FFN, seed 0) with the
   packaged uncased WordPiece tokenizer as a local model folder: no hub;
3. writes GLUE folders for the paper's tasks that data/raw/glue lacks, in the standard TSV layout, from the
   corpus' sentences with random labels (so that every task's reader and metrics run);
4. writes params.yaml = the CPU default + configs/paper.yaml + configs/paper_dry_run.yaml (a couple of
   SuperLM steps, a few held-out blocks and candidates, a few fine-tuning steps) and runs ``dvc repro``.

Exit status 0 and a short summary when every stage ran; the stage's error otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from autodistil.overrides import REPLACED_WHOLE

REPO = Path(__file__).resolve().parents[1]
TEACHER_DIR = "dryrun/teacher"
GLUE_DIR = "dryrun/glue"


def merge(base: dict, extra: dict, prefix: str = "") -> dict:
    """``extra`` over ``base`` as ``configs/flags.py`` applies a profile: mappings merged key by key, except
    those it replaces whole (budgets, students, grids); everything else replaced."""
    out = dict(base)
    for key, value in extra.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in REPLACED_WHOLE:
            out[key] = merge(base.get(key) or {}, value, f"{name}.")
        else:
            out[key] = value
    return out


def run(cmd: list[str], cwd: Path) -> None:
    print(f"$ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def copy_worktree_changes(src: Path, dst: Path) -> None:
    """Bring the clone ``dst`` to ``src``'s working tree: what is committed plus what is not yet."""
    def listed(*flags: str) -> list[str]:
        out = subprocess.run(["git", "ls-files", "-z", *flags], cwd=src, check=True, capture_output=True).stdout
        return [p for p in out.decode().split("\0") if p]

    for rel in listed("--deleted"):
        (dst / rel).unlink(missing_ok=True)
    for rel in listed("--modified", "--others", "--exclude-standard"):
        if (src / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)


def build_teacher(folder: Path, seed: int = 0) -> None:
    """A random-weight BERT-base (transformers' BertConfig defaults) with the packaged uncased tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from autodistil.teacher import resolve_source

    torch.manual_seed(seed)
    BertModel(BertConfig()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_source()).save_pretrained(folder)


def corpus_sentences(corpus: Path, limit: int = 2000) -> list[str]:
    out = []
    for path in sorted(corpus.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = " ".join(line.replace("\t", " ").split())
            if 20 <= len(line) <= 200:
                out.append(line)
                if len(out) >= limit:
                    return out
    if not out:
        raise SystemExit(f"error: {corpus}: no usable sentences for the synthetic GLUE tasks")
    return out


def write_synthetic_task(spec, folder: Path, sentences: list[str], n_train: int, n_dev: int, seed: int) -> None:
    """One GLUE task in the standard TSV layout (header, or CoLA's headerless columns), random labels."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(spec.headerless_columns or (*spec.text_columns, spec.label_column))
    for split, n in (("train", n_train), *((d, n_dev) for d in spec.dev_splits)):
        rows = []
        for _ in range(n):
            cells = {c: "x" for c in columns}
            cells.update({c: rng.choice(sentences) for c in spec.text_columns})
            cells[spec.label_column] = (f"{rng.uniform(0, 5):.3f}" if spec.is_regression
                                        else rng.choice(spec.tsv_label_values))
            rows.append("\t".join(cells[c] for c in columns))
        header = [] if spec.headerless_columns else ["\t".join(columns)]
        (folder / spec.tsv_file(split)).write_text("\n".join(header + rows) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="where the clone goes (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = ap.parse_args()

    from autodistil.glue import TASKS

    t0 = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="autodistil-paper-dry-run-"))
    repo = workdir / "repo"
    if repo.exists():
        raise SystemExit(f"error: {repo} exists; give an empty --workdir")
    run(["git", "clone", "-q", str(REPO), str(repo)], REPO)
    copy_worktree_changes(REPO, repo)
    for raw in ("data/raw/corpus", "data/raw/glue"):
        if not (REPO / raw).is_dir():
            raise SystemExit(f"error: {REPO / raw} is missing: run `dvc pull` (see the README's setup)")
        shutil.copytree(REPO / raw, repo / raw)

    print("building a random-weight BERT-base teacher", flush=True)
    build_teacher(repo / TEACHER_DIR)
    params = merge(yaml.safe_load((repo / "params.yaml").read_text()),
                   yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))
    params = merge(params, yaml.safe_load((REPO / "configs" / "paper_dry_run.yaml").read_text()))
    sentences = corpus_sentences(repo / "data/raw/corpus")
    glue = repo / GLUE_DIR
    for i, task in enumerate(params["prepare_glue"]["tasks"]):
        real = repo / "data/raw/glue" / task
        if real.is_dir():
            shutil.copytree(real, glue / task)
        else:
            write_synthetic_task(TASKS[task], glue / task, sentences, 64, 32, seed=i)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    run(["dvc", "repro"], repo)
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    print(json.dumps({"workdir": str(repo), "minutes": round((time.perf_counter() - t0) / 60, 1),
                      "models": sorted(summary["models"]), "tasks": summary["tasks"]}, indent=1))
    if args.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(f"error: `{' '.join(e.cmd)}` failed with exit status {e.returncode}")
