"""One node of a multi-node SuperLM training test: `python -m autodistil.launch --node-rank R tests/ddp_node.py
--checkpoints DIR --out FILE [--stop-after-checkpoints N]` (tests/test_train.py starts two on localhost)."""

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from autodistil.train import init_distributed, train_superlm
from tiny import StopTraining, stop_after_checkpoints, training_blocks, training_setup


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoints", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-after-checkpoints", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = init_distributed("cpu")
    if args.stop_after_checkpoints:
        stop_after_checkpoints(args.stop_after_checkpoints)
    teacher, superlm, sampler, cfg = training_setup()
    try:
        result = train_superlm(superlm, teacher, training_blocks(), sampler, cfg, Path(args.checkpoints), d=d,
                               progress=False)
    except StopTraining:
        return 3
    finally:
        dist.destroy_process_group()
    if d.master:
        torch.save(superlm.state_dict(), Path(args.out) / "weights.pt")
        (Path(args.out) / "result.json").write_text(json.dumps({"resumed_from": result.resumed_from,
                                                               "world": d.world}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
