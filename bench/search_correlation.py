"""Does the search criterion rank candidates the way fine-tuning does? Spearman correlation, measured.

    python bench/search_correlation.py [--per-subspace 5] [--tasks SST-2 CoLA] [--window 0.5]

After `dvc repro search` (the CSVs hold every scored candidate with each criterion: loss_relation,
loss_hidden, loss_distill), this picks, in every sub-space, the candidates the search actually chooses
between (exact GFLOPs within [window x budget, budget] of the sub-space's first budget), spread over depths
and widths, slices each from its trained SuperLM
(no re-training, as the search does), fine-tunes it with the project's protocol (params.yaml: finetune.*, first
seed) and computes, with scipy, the Spearman rank correlation between each criterion (lower loss = better)
and the fine-tuned score: per task and on the tasks' mean, within each sub-space and pooled over the
sub-spaces (where cost alone already orders candidates, so the within-sub-space figures are the honest ones).

Writes bench/search_correlation.json and bench/search_correlation.png (score against each criterion).
A fine-tuning run per candidate and task: about 15 minutes for 15 candidates on SST-2 and CoLA on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

CRITERIA = ("relation", "hidden", "distill")


def pick(rows: list[dict], budget: float, window: float, n: int) -> list[dict]:
    """Up to ``n`` candidates with exact GFLOPs in [window x budget, budget], spread evenly over depths and
    widths (ordered by layers, then hidden size, then cost; both ends always included)."""
    inside = sorted((r for r in rows if window * budget <= r["gflops_exact"] <= budget),
                    key=lambda r: (int(r["layers"]), int(r["hidden"]), r["gflops_exact"]))
    if len(inside) <= n:
        return inside
    idx = np.unique(np.round(np.linspace(0, len(inside) - 1, n)).astype(int))
    return [inside[i] for i in idx]


def spearman(losses, scores) -> float | None:
    from scipy.stats import spearmanr

    if len(set(scores)) < 2 or len(set(losses)) < 2:
        return None
    return float(spearmanr(-np.asarray(losses), np.asarray(scores)).statistic)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--per-subspace", type=int, default=5)
    ap.add_argument("--tasks", nargs="+", default=["SST-2", "CoLA"])
    ap.add_argument("--window", type=float, default=0.5, help="lowest cost considered, as a fraction of the budget")
    ap.add_argument("--out", default="bench/search_correlation.json")
    args = ap.parse_args()

    import csv

    import torch

    from autodistil.export import build_student
    from autodistil.finetune import finetune
    from autodistil.config import load
    from autodistil.finetune import Protocol
    from autodistil.space import Arch
    from autodistil.superlm import SuperLM

    checked = load(args.params)
    protocol = Protocol.from_section(checked.finetune)
    cfg = dataclasses.replace(protocol.config, seed=protocol.seeds[0], device="cpu")
    results, t0 = [], time.perf_counter()
    for sub in checked.partition.names:
        search = json.loads(Path(f"metrics/search/{sub}.json").read_text())
        budget = next(iter(search["students"].values()))["budget"]["max_gflops"]
        with open(f"metrics/search/{sub}.csv") as f:
            rows = [{k: (float(v) if k.startswith(("loss", "gflops", "params")) else v) for k, v in r.items()}
                    for r in csv.DictReader(f)]
        superlm = SuperLM.load(f"models/superlm/{sub}")
        for row in pick(rows, budget, args.window, args.per_subspace):
            arch = Arch(*(int(float(row[k])) for k in ("layers", "heads", "hidden", "ffn", "head_size")))
            scores = {}
            for task in args.tasks:
                scores[task] = 100 * finetune(build_student(superlm, arch), f"data/glue/{task}", cfg)["score"]
            rec = {"subspace": sub, "arch": arch.name, "gflops_exact": row["gflops_exact"],
                   **{f"loss_{c}": row[f"loss_{c}"] for c in CRITERIA}, "scores": scores,
                   "mean": float(np.mean(list(scores.values())))}
            results.append(rec)
            print(json.dumps(rec), flush=True)

    def table(recs):
        out = {}
        for c in CRITERIA:
            losses = [r[f"loss_{c}"] for r in recs]
            out[c] = {t: spearman(losses, [r["scores"][t] for r in recs]) for t in args.tasks}
            out[c]["mean"] = spearman(losses, [r["mean"] for r in recs])
        return out

    by_sub = {s: table([r for r in results if r["subspace"] == s]) for s in checked.partition.names}
    within = {c: {k: float(np.mean([v[c][k] for v in by_sub.values() if v[c][k] is not None]))
                  for k in [*args.tasks, "mean"]} for c in CRITERIA}
    report = {"candidates": results, "spearman_pooled": table(results), "spearman_by_subspace": by_sub,
              "spearman_within_mean": within, "tasks": args.tasks, "window": args.window,
              "protocol": {k: getattr(cfg, k) for k in ("lr", "batch_size", "epochs", "seed")},
              "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    plot(results, Path(args.out).with_suffix(".png"))
    print(json.dumps({"spearman_within_mean": within, "spearman_pooled": report["spearman_pooled"]}, indent=2))


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CRITERIA), figsize=(4 * len(CRITERIA), 3.5), sharey=True)
    for ax, c in zip(axes, CRITERIA):
        for sub in dict.fromkeys(r["subspace"] for r in results):
            recs = [r for r in results if r["subspace"] == sub]
            ax.scatter([r[f"loss_{c}"] for r in recs], [r["mean"] for r in recs], label=sub, s=20)
        ax.set_xlabel(f"held-out {c} loss")
        ax.set_title(c)
    axes[0].set_ylabel("fine-tuned score (mean over tasks)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
