"""Stage teacher: a snapshot of the teacher as a model folder, with its costs and latency.

    python stages/teacher.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, search.seq_len, search.latency). Writes models/teacher/
(the encoder and tokenizer that ``teacher.source`` resolves to, saved with ``save_pretrained``, plus
autodistil.json: kind, source, arch, params and GFLOPs in both conventions), so that fine-tuning treats the
teacher like every other model and the report compares them on the same footing, and metrics/teacher.json
(its latency, measured like the students', kept out of the model folder so that a re-snapshot of the same
teacher is byte-identical and re-runs no fine-tuning job).
"""

import argparse
import json
import time

from autodistil.io import InputError, atomic_path, int_param, load_params, param, run_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True, help="metrics JSON: latency and the MLflow run")
    args = ap.parse_args()

    params = load_params(args.params)
    src = args.params
    source = param(params, "teacher.source", source=src)
    experiment = param(params, "mlflow.experiment", default="autodistil")
    seq_len = int_param(params, "search.seq_len", minimum=1, source=src)
    from autodistil.latency import LatencyConfig

    latency_cfg = LatencyConfig.from_params(param(params, "search.latency", default={}), f"{src}: search.latency")

    from autodistil.cost import Vocab, costs, count_params
    from autodistil.export import INFO_FILE
    from autodistil.latency import measure_latency
    from autodistil.space import Arch, TeacherDims
    from autodistil.teacher import load_teacher, load_tokenizer
    from autodistil.tracking import log_metrics, stage_run, write_metrics

    t0 = time.perf_counter()
    try:
        teacher = load_teacher(source)
        tokenizer = load_tokenizer(source)
    except (OSError, ValueError) as e:
        raise InputError(f"{src}: teacher.source {source!r} cannot be loaded: {e}".splitlines()[0]) from None
    dims = TeacherDims.from_config(teacher.config)
    arch = Arch(dims.layers, dims.heads, dims.hidden, dims.ffn, dims.hidden // dims.heads)
    with stage_run("teacher", {"teacher": {"source": source}, "search": {"seq_len": seq_len}}, experiment,
                   tags={"teacher": source}) as run:
        record = {"kind": "teacher", "source": source, "arch": arch.to_dict(), "convention": arch.convention,
                  "model_type": teacher.config.model_type,
                  "costs": costs(arch, seq_len, dims.heads, Vocab.from_config(teacher.config)),
                  "params_module": count_params(teacher)}
        with atomic_path(args.out, is_dir=True) as tmp:
            teacher.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
        latency = measure_latency(teacher, latency_cfg)
        write_metrics(args.metrics, {"arch": arch.name, "latency_ms": latency["latency_ms"], "latency": latency}, run)
        log_metrics({"latency_ms": latency["latency_ms"], **record["costs"], "params_module": record["params_module"]})
    print(json.dumps({"teacher": source, "arch": arch.name, "gflops_paper": round(record["costs"]["gflops_paper"], 4),
                      "latency_ms": round(latency["latency_ms"], 2), "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    run_main(main)
