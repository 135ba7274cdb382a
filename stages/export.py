"""Stage export@<student>: a chosen student as a standard Hugging Face model, and its random-init baseline.

    python stages/export.py <student> <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, search.students, search.latency), the student's choice
in metrics/search/<subspace>.json, the SuperLM in models/superlm/<subspace>/ and its run in
metrics/superlm/<subspace>.json. Writes

- models/<student>/          the SuperLM's weights for the chosen architecture as a transformers folder (the
                             teacher's stock type in the stock convention) with its tokenizer and autodistil.json
                             (arch, costs in both conventions, held-out loss, budget, sub-space, hashes);
- models/random-<student>/   the same config and tokenizer without weights: the random-initialisation baseline
                             that fine-tuning builds from transformers' own initialiser;
- metrics/export/<student>.json  the latency measured on the exported model and the MLflow runs of the SuperLM,
                             the search and this export;
- an MLflow run tagged with the student, its sub-space and the SuperLM / search runs.

What changes from one export to the next (a measured latency, run ids) stays out of the model folders: they are
byte-identical whenever the weights are, so re-exporting the same student re-runs no fine-tuning job.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load
from autodistil.io import InputError, run_main


def read_json(path: Path, hint: str) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: not found ({hint})")
    return json.loads(path.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("student")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--superlm", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = load(args.params)

    students = params.search.students
    if args.student not in students:
        raise InputError(f"{args.params}: search.students has no student {args.student!r} (has {', '.join(students)})")
    sub = students[args.student]
    search = read_json(Path(args.metrics) / "search" / f"{sub}.json", f"run `dvc repro search@{sub}`")
    if args.student not in search.get("students", {}):
        raise InputError(f"{args.metrics}/search/{sub}.json: no student {args.student!r} "
                         f"(re-run `dvc repro search@{sub}`)")
    superlm_run = read_json(Path(args.metrics) / "superlm" / f"{sub}.json", f"run `dvc repro superlm@{sub}`")
    superlm_dir = Path(args.superlm) / sub
    if not (superlm_dir / "superlm.pt").is_file():
        raise InputError(f"{superlm_dir}: no trained SuperLM (run `dvc repro superlm@{sub}`)")

    from autodistil.config import plain
    from autodistil.export import check_fits, export_job
    from autodistil.record import record, tracked
    from autodistil.space import Arch

    arch = Arch.from_dict(search["students"][args.student]["arch"])
    check_fits(superlm_dir, arch, sub)  # the weights are loaded in the run; the choice is checked before it opens
    runs = {"superlm_run_id": superlm_run.get("mlflow_run_id", ""), "search_run_id": search.get("mlflow_run_id", "")}
    logged = {"teacher": {"source": params.teacher.source}, "search": {"latency": plain(params.search.latency)},
              "student": args.student}
    tags = {"student": args.student, "subspace": sub, "arch": arch.name, **runs}
    with tracked(f"export@{args.student}", params, logged, tags=tags) as run:
        record(run, export_job(params, args.student, sub, search, runs, superlm_dir, args.out,
                               Path(args.metrics) / "export" / f"{args.student}.json"))


if __name__ == "__main__":
    run_main(main)
