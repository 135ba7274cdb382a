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
from dataclasses import dataclass

from .io import InputError, load_params, number, param, run_main


@dataclass(frozen=True)
class Launch:
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None  # HOST:PORT of node 0, when nnodes > 1

    @classmethod
    def from_params(cls, p: dict, where: str = "params.yaml: launch") -> "Launch":
        unknown = sorted(set(p) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}")
        values = {}
        for key in ("nproc_per_node", "nnodes", "node_rank"):
            v = p.get(key, getattr(cls, key))
            try:
                values[key] = number(v, int)
            except (TypeError, ValueError):
                raise InputError(f"{where}.{key}: expected an integer, got {v!r}") from None
        launch = cls(**values, rdzv_endpoint=p.get("rdzv_endpoint"))
        if launch.nproc_per_node < 1 or launch.nnodes < 1:
            raise InputError(f"{where}: nproc_per_node and nnodes must be >= 1")
        if not 0 <= launch.node_rank < launch.nnodes:
            raise InputError(f"{where}.node_rank {launch.node_rank} is outside the {launch.nnodes} node(s)")
        if launch.nnodes > 1:
            host, _, port = str(launch.rdzv_endpoint or "").rpartition(":")
            if not host or not port.isdigit():
                raise InputError(f"{where}.rdzv_endpoint: with nnodes {launch.nnodes}, expected HOST:PORT of node 0 "
                                 f"(e.g. 10.0.0.1:29500), got {launch.rdzv_endpoint!r}")
        return launch

    def torchrun_args(self) -> list[str]:
        """torchrun's flags for this launch."""
        if self.nnodes == 1:
            return ["--standalone", "--nproc_per_node", str(self.nproc_per_node)]
        return ["--nnodes", str(self.nnodes), "--node_rank", str(self.node_rank),
                "--rdzv_endpoint", str(self.rdzv_endpoint), "--nproc_per_node", str(self.nproc_per_node)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--node-rank", type=int, default=None, help="this machine's rank (default: launch.node_rank)")
    ap.add_argument("script")
    ap.add_argument("script_args", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    p = dict(param(load_params(args.params), "launch", default={}, source=args.params) or {})
    if args.node_rank is not None:
        p["node_rank"] = args.node_rank
    launch = Launch.from_params(p, f"{args.params}: launch")
    cmd = [sys.executable, "-m", "torch.distributed.run", *launch.torchrun_args(), args.script, *args.script_args]
    print("launch:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    os.execv(sys.executable, cmd)  # torchrun takes this process's place: its workers' parent is the stage's


if __name__ == "__main__":
    run_main(main)
