"""GPU figures at BERT-base shapes (random weights, no downloads): what the paper-scale stages do per second.

    python bench/gpu.py [--device cuda] [--small] [--out bench/gpu.json]

- ``superlm``: SuperLM training through :func:`autodistil.train.train_superlm` (bf16 autocast, sandwich of 4
  sub-networks of a BERT-base envelope, 128-token blocks): tokens/s and MFU of the last logging window (the first
  includes start-up), from the loop's own meter;
- ``finetune``: fine-tuning a BERT-base classifier (batch 32, up to 128 tokens) through
  :func:`autodistil.finetune.finetune`: training examples per second, evaluation included;
- ``search``: seconds to score one candidate on 128 held-out blocks (:class:`autodistil.distill.HeldOut`).

``--small`` runs the same code at a small shape (checks the path on a CPU in a minute; the figures mean
nothing there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel

from autodistil.distill import DistillSpec, HeldOut
from autodistil.sampling import SubnetSampler
from autodistil.space import Envelope, SubSpace, TeacherDims
from autodistil.superlm import SuperLM, SuperLMConfig
from autodistil.train import TrainConfig, train_superlm

SEQ_LEN = 128
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
SMALL = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512)


def _teacher(shape: dict, device) -> BertModel:
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=30522, **shape), add_pooling_layer=True).to(device).eval()


def _subspace(shape: dict) -> SubSpace:
    """The upper half of the teacher's own grid (the paper's base sub-space has this shape)."""
    L, H, A = shape["num_hidden_layers"], shape["hidden_size"], shape["num_attention_heads"]
    return SubSpace.from_dict("base", {"layers": [L // 2, 3 * L // 4, L], "heads": [2 * A // 3, A],
                                       "hidden": [2 * H // 3, H], "mlp_ratio": [3.0, 4.0]})


def _blocks(n: int, seed: int = 0) -> np.ndarray:
    blocks = np.random.default_rng(seed).integers(1000, 30000, (n, SEQ_LEN)).astype(np.uint16)
    blocks[:, 0], blocks[:, -1] = 101, 102  # [CLS] ... [SEP]
    return blocks


def superlm_training(teacher, sub: SubSpace, device, batch: int, steps: int) -> dict:
    dims = TeacherDims.from_config(teacher.config)
    candidates = sub.candidates(dims)
    cfg = SuperLMConfig.from_teacher_config(teacher.config, Envelope.of(candidates), depth_rule="strided")
    superlm = SuperLM.from_teacher(teacher, cfg)
    sampler = SubnetSampler(candidates, sub.largest(dims), sub.smallest(dims), "sandwich", 2, seed=0)
    train = TrainConfig(max_steps=steps, batch_size=batch, lr=4e-5, log_every=max(1, steps // 3),
                        checkpoint_every=10**9, depth_rule="strided", device=torch.device(device).type)
    with tempfile.TemporaryDirectory() as tmp:
        result = train_superlm(superlm, teacher, _blocks(batch * steps), sampler, train, Path(tmp),
                               device=torch.device(device), progress=False)
    last = result.history[-1]
    return {"batch": batch, "steps": steps, "students_per_step": len(sampler(0)),
            "tokens_per_second": last["tokens_per_second"], "mfu": last.get("mfu"),
            "mfu_note": None if "mfu" in last else "peak unknown for this device: set superlm.peak_tflops"}


def finetuning(shape: dict, device, examples: int) -> dict:
    from autodistil.finetune import FinetuneConfig, finetune
    from autodistil.glue import TASKS, Example, prepare_task
    from autodistil.teacher import load_tokenizer

    tokenizer = load_tokenizer()  # the packaged MiniLM's: uncased WordPiece, BERT-base's vocabulary
    words = [w for w in tokenizer.vocab if w.isalpha()][:5000]
    rng = np.random.default_rng(0)
    rows = [Example((" ".join(rng.choice(words, int(rng.integers(8, 60)))),), int(rng.integers(2)))
            for _ in range(examples)]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, task_dir = Path(tmp) / "model", Path(tmp) / "SST-2"
        _teacher(shape, "cpu").save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        prepare_task(TASKS["SST-2"], {"train": rows, "dev": rows[: examples // 4]}, tokenizer, task_dir,
                     max_length=SEQ_LEN, progress=False)
        t0 = time.perf_counter()
        finetune(model_dir, task_dir, FinetuneConfig(lr=2e-5, epochs=1, batch_size=32,
                                                     device=torch.device(device).type))
        seconds = time.perf_counter() - t0
    return {"examples": examples, "batch": 32, "seconds": seconds, "examples_per_second": examples / seconds}


def search_scoring(teacher, sub: SubSpace, device, blocks: int = 128, batch: int = 32) -> dict:
    dims = TeacherDims.from_config(teacher.config)
    candidates = sub.candidates(dims)
    cfg = SuperLMConfig.from_teacher_config(teacher.config, Envelope.of(candidates), depth_rule="strided")
    superlm = SuperLM.from_teacher(teacher, cfg).to(device).eval()
    heldout = HeldOut(teacher, _blocks(blocks, seed=1), DistillSpec(relation_heads=dims.heads), batch, device)
    times = []
    for arch in [candidates[0], *candidates[: 6]]:  # the first pass warms up
        t0 = time.perf_counter()
        heldout.losses(superlm, arch)
        times.append(time.perf_counter() - t0)
    return {"blocks": blocks, "candidates_timed": len(times) - 1, "seconds_per_candidate": statistics.median(times[1:])}


def measure(device: str = "cuda", small: bool = False) -> dict:
    shape = SMALL if small else BERT_BASE
    teacher = _teacher(shape, device)
    sub = _subspace(shape)
    out = {"device": torch.cuda.get_device_name(0) if torch.device(device).type == "cuda" else device,
           "shape": shape, "seq_len": SEQ_LEN, "torch": torch.__version__}
    out["superlm"] = superlm_training(teacher, sub, device, batch=16 if small else 256, steps=3 if small else 15)
    print("superlm:", out["superlm"], flush=True)
    out["search"] = search_scoring(teacher, sub, device, blocks=32 if small else 128)
    print("search:", out["search"], flush=True)
    out["finetune"] = finetuning(shape, device, examples=64 if small else 4000)
    print("finetune:", out["finetune"], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="a small shape: checks the path (CPU), no figures")
    ap.add_argument("--out", default="bench/gpu.json")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device (run with --device cpu --small to check the code path)")
    Path(args.out).write_text(json.dumps(measure(args.device, args.small), indent=1) + "\n")


if __name__ == "__main__":
    main()
