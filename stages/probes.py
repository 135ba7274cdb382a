"""Stage probes: a fixed set of probe architectures scored in the trained SuperLMs (the ablations' yardstick).

    python stages/probes.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, probes.*), partition/subspaces.json, every SuperLM of
models/superlm/ and the held-out corpus blocks. The probe set depends on the teacher and the probes section only
(not on K or the partition: see src/autodistil/probes.py); each probe is scored by its held-out relation loss
(KL, whatever the SuperLMs trained with) and the linear CKA of its final hidden states to the teacher's. Writes
metrics/probes.json (every probe, the means over all probes and per band) and an MLflow run.
"""

import argparse
import json
from pathlib import Path

from autodistil.io import InputError, load_params, param, run_main

KNOWN = {"bands", "per_band", "floors", "convention", "seq_len", "eval_blocks", "batch_size", "device"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--subspaces", required=True)
    ap.add_argument("--superlm", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    p = dict(param(params, "probes", source=args.params))
    unknown = sorted(set(p) - KNOWN)
    if unknown:
        raise InputError(f"{args.params}: probes: unknown key(s) {', '.join(unknown)}")
    if p.get("device", "auto") not in ("auto", "cpu", "cuda"):
        raise InputError(f"{args.params}: probes.device must be auto, cpu or cuda, got {p.get('device')!r}")
    source = param(params, "teacher.source", source=args.params)
    experiment = param(params, "mlflow.experiment", default="autodistil")

    from autodistil.corpus import load_blocks
    from autodistil.io import number
    from autodistil.partition import load_subspaces, load_teacher_shape, parse_bands
    from autodistil.probes import probe_set
    from autodistil.space import SearchSpaceError

    try:
        per_band, seq_len, eval_blocks, batch_size = (number(p.get(k, d), int) for k, d in (
            ("per_band", 4), ("seq_len", 128), ("eval_blocks", 128), ("batch_size", 32)))
    except (TypeError, ValueError):
        raise InputError(f"{args.params}: probes.per_band, seq_len, eval_blocks and batch_size must be "
                         "integers") from None
    subspaces = load_subspaces(args.subspaces)
    dims, _ = load_teacher_shape(args.subspaces)
    try:  # the probe set: the teacher and this section only, whatever the partition
        probes = probe_set(dims, parse_bands(p.get("bands"), f"{args.params}: probes.bands"), per_band, p.get("floors"),
                           p.get("convention", "stock"), seq_len)
    except (SearchSpaceError, ValueError, TypeError) as e:
        raise InputError(f"{args.params}: probes: {e}") from None
    missing = [n for n in subspaces if not (Path(args.superlm) / n / "superlm.pt").is_file()]
    if missing:
        raise InputError(f"{args.superlm}: no trained SuperLM for {', '.join(missing)} (run `dvc repro superlm`)")
    heldout_blocks = load_blocks(args.corpus, "heldout")
    if len(heldout_blocks) < eval_blocks:
        raise InputError(f"{args.corpus}/heldout.npy has {len(heldout_blocks)} blocks, probes.eval_blocks asks "
                         f"for {eval_blocks}")
    score(args, subspaces, dims, probes, heldout_blocks[:eval_blocks], batch_size, source, experiment, p)


def score(args, subspaces, dims, probes, blocks, batch_size, source, experiment, logged) -> None:
    import time

    from autodistil.device import resolve_device
    from autodistil.distill import DistillSpec, HeldOut
    from autodistil.probes import home_subspace, score_probes, summarise
    from autodistil.search import load_superlm_and_teacher
    from autodistil.tracking import log_metrics, stage_run, write_metrics

    device = resolve_device(logged.get("device", "auto"))
    candidates = {n: set(sub.candidates(dims)) for n, sub in subspaces.items()}  # each SuperLM's envelope is theirs
    homes = {pr.name: home_subspace(pr.arch, candidates) for pr in probes}
    t0 = time.perf_counter()
    with stage_run("probes", {"teacher": {"source": source}, "probes": logged}, experiment) as run:
        scorers = {}
        for name in sorted({h for h in homes.values() if h is not None}):
            superlm, teacher = load_superlm_and_teacher(Path(args.superlm) / name, source, dims, [], device,
                                                        args.subspaces)
            spec = DistillSpec(loss="kl", relation_heads=superlm.config.relation_heads)  # the same yardstick for all
            scorers[name] = (superlm, HeldOut(teacher, blocks, spec, batch_size, device))
        rows = score_probes(probes, scorers, homes)
        summary = summarise(rows)
        metrics = {"probes": rows, **summary, "heldout_blocks": len(blocks),
                   "seconds": round(time.perf_counter() - t0, 1)}
        log_metrics({"relation": summary["all"]["relation"], "cka": summary["all"]["cka"]})
        for band, m in summary["by_band"].items():
            log_metrics({"relation": m["relation"], "cka": m["cka"]}, prefix=f"{band}.")
        write_metrics(Path(args.metrics), metrics, run)
    print(json.dumps({"relation": summary["all"]["relation"], "cka": summary["all"]["cka"],
                      "by_band": {b: {k: m[k] for k in ("relation", "cka")} for b, m in summary["by_band"].items()}}))


if __name__ == "__main__":
    run_main(main)
