"""Start a script under torchrun as params.yaml's ``launch`` section says: one machine (the default) or several.

    python -m autodistil.launch [--params params.yaml] [--node-rank R] <script> <script args...>

One node (``launch.nnodes: 1``): ``torchrun --standalone --nproc_per_node N`` (a free local port, nothing to
configure). Several nodes: torchrun's static rendezvous at ``launch.rdzv_endpoint`` (HOST:PORT of node 0), where
the node rank is the global rank order, so node 0 holds rank 0: the process that writes the stage's outputs.
Node 0 runs the pipeline (``dvc repro`` / ``dvc exp run``); every other node runs this command with its
``--node-rank`` (same checkout, data and params; its checkpoint folder may be empty: rank 0 sends the checkpoint).
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import LaunchParams, check
from .io import load_params, run_main


def torchrun_args(launch: LaunchParams) -> list[str]:
    """torchrun's flags for the ``launch`` section."""
    if launch.nnodes == 1:
        return ["--standalone", "--nproc_per_node", str(launch.nproc_per_node)]
    return ["--nnodes", str(launch.nnodes), "--node_rank", str(launch.node_rank),
            "--rdzv_endpoint", str(launch.rdzv_endpoint), "--nproc_per_node", str(launch.nproc_per_node)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--node-rank", type=int, default=None, help="this machine's rank (default: launch.node_rank)")
    ap.add_argument("script")
    ap.add_argument("script_args", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    raw = dict(load_params(args.params).get("launch") or {})
    if args.node_rank is not None:
        raw["node_rank"] = args.node_rank
    launch = check(LaunchParams, raw, f"{args.params}: launch")
    cmd = [sys.executable, "-m", "torch.distributed.run", *torchrun_args(launch), args.script, *args.script_args]
    print("launch:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    os.execv(sys.executable, cmd)  # torchrun takes this process's place: its workers' parent is the stage's


if __name__ == "__main__":
    run_main(main)
