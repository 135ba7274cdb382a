"""Fine-tune a student (or any BERT-like encoder) on one prepared GLUE task and score its dev split(s).

The authors' protocol, made configurable: a classifier on the pooled [CLS]
(``AutoModelForSequenceClassification``, head freshly initialised), AdamW, linear decay after
``warmup_steps``, evaluation on every dev split after each epoch; the result keeps every epoch and the best
one by the task's main metric (on the first dev split). Used briefly by the search's task-proxy re-rank and
in full by the GLUE fine-tuning stage.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .io import InputError


@dataclass(frozen=True)
class FinetuneConfig:
    lr: float = 2e-5
    epochs: int = 1
    batch_size: int = 32
    max_steps: int | None = None  # stop after this many optimiser steps in total (None: whole epochs)
    seed: int = 42
    weight_decay: float = 0.0
    warmup_steps: int = 0
    eval_batch_size: int = 64
    device: str = "cpu"

    @classmethod
    def from_params(cls, p: dict, where: str = "params.yaml: finetune") -> "FinetuneConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(p) - set(known))
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}")
        out = {}
        for k, v in p.items():
            if v is None and k == "max_steps":
                out[k] = None
                continue
            try:
                if k in ("lr", "weight_decay"):
                    out[k] = float(v)  # dvc -S writes 5e-05, which YAML 1.1 reads as a string
                elif k == "device":
                    out[k] = str(v)
                else:
                    if isinstance(v, bool) or int(v) != v:
                        raise ValueError
                    out[k] = int(v)
            except (TypeError, ValueError):
                raise InputError(f"{where}.{k}: expected a {'number' if k in ('lr', 'weight_decay') else 'integer'}, "
                                 f"got {v!r}") from None
        cfg = cls(**out)
        if cfg.lr <= 0 or cfg.epochs < 1 or cfg.batch_size < 1 or (cfg.max_steps is not None and cfg.max_steps < 1):
            raise InputError(f"{where}: lr, epochs, batch_size (and max_steps if set) must be positive")
        return cfg


def _collate(rows, pad_id: int, regression: bool) -> dict[str, torch.Tensor]:
    n = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    types = torch.zeros((len(rows), n), dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        k = len(r["input_ids"])
        ids[i, :k] = torch.as_tensor(r["input_ids"])
        types[i, :k] = torch.as_tensor(r["token_type_ids"])
        mask[i, :k] = 1
    labels = torch.tensor([r["label"] for r in rows], dtype=torch.float if regression else torch.long)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels}


def _load_classifier(model, num_labels: int, regression: bool):
    """A sequence classifier from a model folder or from an in-memory encoder (saved to a temporary folder)."""
    from transformers import AutoModelForSequenceClassification

    kwargs = {"num_labels": num_labels, "problem_type": "regression" if regression else "single_label_classification"}
    if isinstance(model, (str, Path)):
        return AutoModelForSequenceClassification.from_pretrained(str(model), **kwargs)
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        return AutoModelForSequenceClassification.from_pretrained(d, **kwargs)


@torch.no_grad()
def evaluate(clf, dataset, spec, batch_size: int = 64, device="cpu") -> dict[str, float]:
    from .glue import compute_metrics

    clf.eval()
    pad = clf.config.pad_token_id or 0
    preds, gold = [], []
    for i in range(0, len(dataset), batch_size):
        rows = [dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]
        batch = _collate(rows, pad, spec.is_regression)
        labels = batch.pop("labels")
        logits = clf(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
        preds.append(logits[:, 0] if spec.is_regression else logits.argmax(-1))
        gold.append(labels)
    return compute_metrics(spec, torch.cat(preds).numpy(), torch.cat(gold).numpy())


def finetune(model, task_dir, cfg: FinetuneConfig = FinetuneConfig(), log=None) -> dict:
    """Fine-tune ``model`` (a model folder or an encoder such as a built student) on ``task_dir``.

    Returns ``{"task", "main_metric", "score" (best epoch, first dev split), "best_epoch", "epochs":
    [{"epoch", "step", <split>: {metrics}}], "steps", "seconds"}``. ``log(record, step)`` gets the loss.
    """
    from transformers import get_linear_schedule_with_warmup

    from .glue import load_glue

    t0 = time.perf_counter()
    ds, spec, _ = load_glue(task_dir)
    torch.manual_seed(cfg.seed)
    clf = _load_classifier(model, spec.num_labels, spec.is_regression).to(cfg.device)
    train = ds["train"]
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in clf.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in clf.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = get_linear_schedule_with_warmup(opt, cfg.warmup_steps, total)
    pad = clf.config.pad_token_id or 0
    rng = np.random.default_rng(cfg.seed)
    step, history = 0, []
    for epoch in range(cfg.epochs):
        clf.train()
        order = rng.permutation(len(train))
        for i in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            batch = _collate([train[int(j)] for j in order[i:i + cfg.batch_size]], pad, spec.is_regression)
            loss = clf(**{k: v.to(cfg.device) for k, v in batch.items()}).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if log is not None:
                log({"finetune_loss": loss.item()}, step)
        record = {"epoch": epoch + 1, "step": step}
        for split in spec.dev_splits:
            record[split] = evaluate(clf, ds[split], spec, cfg.eval_batch_size, cfg.device)
        history.append(record)
        if step >= total:
            break
    main = spec.main_metric
    best = max(history, key=lambda r: r[spec.dev_splits[0]][main])
    return {"task": spec.name, "main_metric": main, "score": best[spec.dev_splits[0]][main],
            "best_epoch": best["epoch"], "epochs": history, "steps": step,
            "seconds": time.perf_counter() - t0}
