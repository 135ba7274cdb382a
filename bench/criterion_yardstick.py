"""Does the search criterion rank candidates the way the yardstick does? Spearman with a bootstrap interval.

    python bench/criterion_yardstick.py [--per-subspace 20] [--max-pairs 1000]

After `dvc repro search` (every candidate's held-out losses in metrics/search/<sub>.csv), this takes up to
``--per-subspace`` candidates of every sub-space, spread evenly by cost (all of them when fewer), slices each from
its trained SuperLM (no re-training, as the search does), scores it on the yardstick (params.yaml: yardstick, with
its pairs capped at ``--max-pairs`` for time) and on the relation loss with both relation splits (``heads``: whole
heads aligned; ``fixed``: the paper's 12 pieces), and computes the Spearman correlation between each criterion
(lower loss = better) and each yardstick measure within every sub-space, with a 95 % bootstrap interval over the
candidates. "Before" is the paper's criterion (relation loss, fixed split), "after" the default (the training
objective: head-aligned relation loss + hidden_weight x the final hidden-state error).

Writes bench/criterion_yardstick.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

MEASURES = ("pairs", "agreement", "cka")


def spread(rows: list[dict], n: int) -> list[dict]:
    rows = sorted(rows, key=lambda r: float(r["gflops_exact"]))
    if len(rows) <= n:
        return rows
    return [rows[i] for i in np.unique(np.round(np.linspace(0, len(rows) - 1, n)).astype(int))]


def spearman_ci(loss: np.ndarray, score: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Spearman of -loss with score, and the 2.5 / 97.5 percentiles over bootstrap resamples of the candidates."""
    from scipy.stats import spearmanr

    rho = float(spearmanr(-loss, score).statistic)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        i = rng.integers(0, len(loss), len(loss))
        if len(set(loss[i])) > 1 and len(set(score[i])) > 1:
            reps.append(spearmanr(-loss[i], score[i]).statistic)
    return {"rho": rho, "low": float(np.percentile(reps, 2.5)), "high": float(np.percentile(reps, 97.5)),
            "n": len(loss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--per-subspace", type=int, default=20)
    ap.add_argument("--max-pairs", type=int, default=1000)
    ap.add_argument("--out", default="bench/criterion_yardstick.json")
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer

    from autodistil.config import load
    from autodistil.corpus import load_blocks
    from autodistil.distill import HeldOut
    from autodistil.pooling import resolve_pooling
    from autodistil.search import load_superlm_and_teacher
    from autodistil.space import Arch, TeacherDims
    from autodistil.teacher import load_teacher, tokenizer_source
    from autodistil.yardstick import Yardstick, hf_encoder, load_pair_sets, subnet_encoder

    params = load(args.params)
    y, source = params.yardstick, params.teacher.source
    sets = load_pair_sets(params.prepare_glue.source, y.tasks, y.splits, args.max_pairs, y.seed)
    blocks = load_blocks("data/corpus", "heldout")
    teacher = load_teacher(source)
    stick = Yardstick(sets, AutoTokenizer.from_pretrained(tokenizer_source(source)),
                      resolve_pooling(params.finetune.pooling, source), y.max_length, y.batch_size, 0, y.seed,
                      blocks[: y.cka_blocks], hf_encoder(teacher))
    dims = TeacherDims.from_config(teacher.config)
    results, t0 = {}, time.perf_counter()
    for sub in params.partition.names:
        with open(f"metrics/search/{sub}.csv") as f:
            rows = spread(list(csv.DictReader(f)), args.per_subspace)
        archs = [Arch(*(int(float(r[k])) for k in ("layers", "heads", "hidden", "ffn", "head_size"))) for r in rows]
        superlm, teacher = load_superlm_and_teacher(Path(f"models/superlm/{sub}"), source, dims, archs)
        spec = params.superlm.spec(superlm.config.relation_heads)
        fixed = HeldOut(teacher, blocks[: params.search.eval_blocks], dataclasses.replace(spec, relation_split="fixed"),
                        params.search.batch_size)
        heads = HeldOut(teacher, blocks[: params.search.eval_blocks], dataclasses.replace(spec, relation_split="heads"),
                        params.search.batch_size)
        recs = []
        for arch in archs:
            h = heads.losses(superlm, arch)
            record, _ = stick.score(subnet_encoder(superlm, arch))
            recs.append({"arch": arch.name, "relation_fixed": fixed.losses(superlm, arch)["relation"],
                         "relation_heads": h["relation"], "hidden": h["hidden"],
                         "distill": h["relation"] + spec.hidden_weight * h["hidden"],
                         **{m: record[m] for m in MEASURES}})
            print(json.dumps({"subspace": sub, **recs[-1]}), flush=True)
        table = {}
        for crit in ("relation_fixed", "relation_heads", "hidden", "distill"):
            loss = np.array([r[crit] for r in recs])
            table[crit] = {m: spearman_ci(loss, np.array([r[m] for r in recs])) for m in MEASURES}
            table[crit]["ties"] = len(loss) - len(set(loss.tolist()))
        results[sub] = {"candidates": recs, "spearman": table}
    report = {"subspaces": results, "hidden_weight": params.superlm.hidden_weight, "max_pairs": args.max_pairs,
              "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    for sub, r in results.items():
        for crit, t in r["spearman"].items():
            print(sub, crit, "ties", t["ties"], {m: f"{t[m]['rho']:+.2f} ({t[m]['low']:+.2f}, {t[m]['high']:+.2f})"
                                                  for m in MEASURES})


if __name__ == "__main__":
    main()
