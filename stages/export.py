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
import time
from pathlib import Path

from autodistil.io import InputError, load_params, param, run_main


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

    params = load_params(args.params)
    src = args.params
    students = param(params, "search.students", source=src)
    if not isinstance(students, dict) or args.student not in students:
        raise InputError(f"{src}: search.students has no student {args.student!r} "
                         f"(has {', '.join(map(str, students or {}))})")
    sub = str(students[args.student])
    source = param(params, "teacher.source", source=src)
    experiment = param(params, "mlflow.experiment", default="autodistil")
    from autodistil.latency import LatencyConfig

    latency_cfg = LatencyConfig.from_params(param(params, "search.latency", default={}), f"{src}: search.latency")
    search = read_json(Path(args.metrics) / "search" / f"{sub}.json", f"run `dvc repro search@{sub}`")
    if args.student not in search.get("students", {}):
        raise InputError(f"{args.metrics}/search/{sub}.json: no student {args.student!r} "
                         f"(re-run `dvc repro search@{sub}`)")
    chosen = search["students"][args.student]
    superlm_run = read_json(Path(args.metrics) / "superlm" / f"{sub}.json", f"run `dvc repro superlm@{sub}`")
    superlm_dir = Path(args.superlm) / sub
    if not (superlm_dir / "superlm.pt").is_file():
        raise InputError(f"{superlm_dir}: no trained SuperLM (run `dvc repro superlm@{sub}`)")

    from autodistil.export import build_student, export_random_baseline, export_student, read_info
    from autodistil.latency import measure_latency
    from autodistil.space import Arch
    from autodistil.superlm import SuperLM
    from autodistil.teacher import load_tokenizer
    from autodistil.tracking import log_metrics, stage_run, write_metrics

    t0 = time.perf_counter()
    arch = Arch.from_dict(chosen["arch"])
    superlm = SuperLM.load(superlm_dir).eval()
    if not superlm.config.envelope.contains(arch):
        raise InputError(f"{superlm_dir}: {arch.name} (from metrics/search/{sub}.json) does not fit this SuperLM; "
                         f"re-run `dvc repro search@{sub}`")
    runs = {"superlm_run_id": superlm_run.get("mlflow_run_id", ""), "search_run_id": search.get("mlflow_run_id", "")}
    tags = {"student": args.student, "subspace": sub, "arch": arch.name, **runs}
    logged = {"teacher": {"source": source}, "search": {"latency": latency_cfg.__dict__}, "student": args.student}
    with stage_run(f"export@{args.student}", logged, experiment, tags=tags) as run:
        info = {"kind": "student", "student": args.student, "subspace": sub, "budget": chosen["budget"],
                "budget_convention": search.get("convention"), "heldout_loss": chosen["loss"],
                **({"proxy": chosen["proxy"]} if "proxy" in chosen else {}),
                **search.get("provenance", {})}
        student_dir = Path(args.out) / args.student
        export_student(superlm, arch, student_dir, load_tokenizer(source), info, search.get("seq_len", 128))
        export_random_baseline(student_dir, Path(args.out) / f"random-{args.student}")
        record = read_info(student_dir)
        # latency of the model users will load: the same class and weights as the exported folder
        latency = measure_latency(build_student(superlm, arch), latency_cfg)
        log_metrics({"latency_ms": latency["latency_ms"], "heldout_loss": chosen["loss"], **record["costs"],
                     "seconds": time.perf_counter() - t0})
        write_metrics(Path(args.metrics) / "export" / f"{args.student}.json",
                      {"student": args.student, "subspace": sub, "arch": arch.name, "latency_ms": latency["latency_ms"],
                       "latency": latency, **runs}, run)
    print(json.dumps({"student": args.student, "arch": arch.name, "latency_ms": round(latency["latency_ms"], 2),
                      "gflops_paper": round(record["costs"]["gflops_paper"], 4),
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    run_main(main)
