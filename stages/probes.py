"""Stage probes: a fixed set of probe architectures scored in the trained SuperLMs (the ablations' yardstick).

    python stages/probes.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, probes.*), partition/subspaces.json, every SuperLM of
models/superlm/ and the held-out corpus blocks. The probe set depends on the teacher and the probes section only
(not on K or the partition: see src/autodistil/probes.py); each probe is scored by its held-out relation loss
(KL, whatever the SuperLMs trained with) and the linear CKA of its final hidden states to the teacher's. Writes
metrics/probes.json (every probe, the means over all probes and per band) and an MLflow run.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's library, in `dvc exp` copies too

from autodistil.config import load
from autodistil.io import run_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--subspaces", required=True)
    ap.add_argument("--superlm", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    params = load(args.params)

    # the probe set, every SuperLM and the held-out blocks: checked before anything heavy runs
    from autodistil.probes import plan_probes

    plan = plan_probes(params, args.subspaces, args.superlm, args.corpus, args.params)

    from autodistil.probes import probes_job
    from autodistil.record import record, tracked

    with tracked("probes", params, plan.logged) as run:
        record(run, probes_job(plan, args.metrics))


if __name__ == "__main__":
    run_main(main)
