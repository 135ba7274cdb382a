"""Fine-tune a student (or any BERT-like encoder) on one prepared GLUE task and score its dev split(s).

The authors' protocol, made configurable: the model type's own classifier (``AutoModelForSequenceClassification``:
BERT's on the pooled [CLS], RoBERTa's and ELECTRA's on the first token; head freshly initialised; one output and
MSE for STS-B), AdamW
without decay on biases and LayerNorm, linear warm-up then linear decay, evaluation on every dev split after
each epoch (MNLI: matched and mismatched). The result keeps every epoch, the best one by the task's main
metric on the first dev split, and the last one: which of the two a report quotes is the caller's choice.
Used briefly by the search's task-proxy re-rank and in full by the finetune@<model>-<task> stage, whose work is
:func:`finetune_model`: the protocol's seeds, the score over them, the kept classifier.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import FinetuneParams
from .device import mixed_precision, resolve_device
from .io import atomic_path

REPORTED_EPOCHS = ("best", "last")
LOSS_READ_EVERY = 50  # training steps between reads of their losses (one device-to-host sync each)


@dataclass(frozen=True)
class FinetuneConfig:
    """One run's settings, as the ``finetune`` section (:class:`Protocol`) or ``search.proxy`` give them; these
    defaults serve library callers (the pipeline's are params.yaml's, :mod:`autodistil.config`)."""

    lr: float = 2e-5
    epochs: int = 1
    batch_size: int = 32
    max_steps: int | None = None  # stop after this many optimiser steps in total (None: whole epochs)
    seed: int = 42
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0  # share of the total steps spent warming up linearly from 0
    group_by_length: bool = False  # batches of similar lengths (see length_grouped_batches)
    eval_batch_size: int = 64
    device: str = "cpu"
    pooling: str = "cls"  # cls (the model type's classifier on [CLS]) | mean (MeanPoolingClassifier) | auto (the
    # model folder's own: autodistil.pooling.pooling_of_folder)


PROTOCOL_KEYS = ("lr", "batch_size", "epochs", "max_steps", "warmup_ratio", "weight_decay", "group_by_length",
                 "eval_batch_size", "device", "pooling")


@dataclass(frozen=True)
class Protocol:
    """The ``finetune`` section of params.yaml: one run's settings, the seeds it is repeated over, which epoch
    is reported, and whether the classifier is kept."""

    config: FinetuneConfig
    seeds: tuple[int, ...] = (42,)
    report: str = "best"
    keep_weights: bool = False

    @classmethod
    def from_section(cls, p: FinetuneParams) -> "Protocol":
        """The protocol of params.yaml's checked ``finetune`` section."""
        config = FinetuneConfig(**{k: getattr(p, k) for k in PROTOCOL_KEYS})
        return cls(config, tuple(p.seeds), p.report, p.keep_weights)

    def to_dict(self) -> dict:
        """As logged and written into every result: the run settings, the seeds and the reported epoch."""
        from dataclasses import asdict

        return {**asdict(self.config), "seeds": list(self.seeds), "report": self.report}


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (0 for one seed)."""
    import statistics

    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def over_seeds(per_seed: list[dict], dev_splits: list[str]) -> tuple[dict, dict]:
    """The reported score (mean and std) and every dev metric of every split at each seed's reported epoch;
    ``per_seed`` entries are ``{"seed", "epoch" (reported), "score", "epochs": [...]}``."""
    reported = [next(e for e in s["epochs"] if e["epoch"] == s["epoch"]) for s in per_seed]
    dev = {split: {m: mean_std([r[split][m] for r in reported]) for m in reported[0][split]} for split in dev_splits}
    return mean_std([s["score"] for s in per_seed]), dev


def length_grouped_batches(lengths, batch_size: int, rng: np.random.Generator, window: int = 50) -> list:
    """Shuffled batches of similar lengths (transformers' ``group_by_length`` idea).

    A random permutation is cut into windows of ``window`` batches; each window is sorted by length and cut
    into batches; the batches are shuffled. Every example is seen once per epoch, padding shrinks.
    """
    order = rng.permutation(len(lengths))
    batches = []
    for i in range(0, len(order), window * batch_size):
        chunk = sorted(order[i:i + window * batch_size], key=lambda j: -lengths[j])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def _collate(columns: dict[str, list], pad_id: int, regression: bool) -> dict[str, torch.Tensor]:
    """One padded batch from a batch of dataset columns (``dataset[indices]``: one Arrow read, not one per row)."""
    input_ids = columns["input_ids"]
    n = max(len(ids) for ids in input_ids)
    ids = torch.full((len(input_ids), n), pad_id, dtype=torch.long)
    types = torch.zeros((len(input_ids), n), dtype=torch.long)
    mask = torch.zeros((len(input_ids), n), dtype=torch.long)
    for i, (row_ids, row_types) in enumerate(zip(input_ids, columns["token_type_ids"])):
        k = len(row_ids)
        ids[i, :k] = torch.as_tensor(row_ids)
        types[i, :k] = torch.as_tensor(row_types)
        mask[i, :k] = 1
    labels = torch.tensor(columns["label"], dtype=torch.float if regression else torch.long)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels}


def token_counts(split) -> list[int]:
    """Token count of every row of a prepared split, from Arrow's list offsets: no row is read (at MNLI's 393 k
    training pairs, reading the column as Python lists takes seconds)."""
    import pyarrow.compute as pc

    return pc.list_value_length(split.with_format("arrow")["input_ids"]).to_pylist()


def to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    """The batch on ``device``; to a GPU from pinned memory, asynchronously (a copy from pageable memory would make
    the host wait for every queued kernel, i.e. a sync per step)."""
    if torch.device(device).type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


class MeanPoolingClassifier(torch.nn.Module):
    """Encoder -> mean over real tokens -> dropout -> linear: the classifier of a model whose teacher pools by the
    mean (a sentence-transformers teacher), in the interface of transformers' sequence classifiers."""

    def __init__(self, encoder, num_labels: int, regression: bool):
        super().__init__()
        self.encoder, self.config, self.regression = encoder, encoder.config, regression
        cfg = encoder.config
        p = getattr(cfg, "classifier_dropout", None)
        self.dropout = torch.nn.Dropout(cfg.hidden_dropout_prob if p is None else p)
        self.classifier = torch.nn.Linear(cfg.hidden_size, num_labels)
        self.classifier.weight.data.normal_(0.0, getattr(cfg, "initializer_range", 0.02))
        self.classifier.bias.data.zero_()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        from .pooling import pool

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        logits = self.classifier(self.dropout(pool(hidden, attention_mask, "mean")))
        loss = None
        if labels is not None:
            loss = (torch.nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float()) if self.regression
                    else torch.nn.functional.cross_entropy(logits.float(), labels))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, folder) -> None:
        """The encoder as a model folder, and the head beside it (``classifier_head.pt``)."""
        self.encoder.save_pretrained(folder)
        torch.save(self.classifier.state_dict(), Path(folder) / "classifier_head.pt")


def load_classifier(model, num_labels: int, regression: bool, random_init: bool = False, pooling: str = "cls"):
    """The sequence classifier of a model folder or an in-memory encoder: with ``pooling: cls`` the model type's
    own (BERT: pooled [CLS] -> dropout -> linear), with ``mean`` a :class:`MeanPoolingClassifier`.

    ``random_init``: the folder's architecture with transformers' own random initialisation (seeded by the
    caller), the baseline that shows what the pretrained / distilled weights are worth.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    if pooling == "mean":
        if random_init:
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(model), trust_remote_code=True),
                                            trust_remote_code=True)
        elif isinstance(model, (str, Path)):
            encoder = AutoModel.from_pretrained(str(model), trust_remote_code=True)
        else:
            encoder = model
        return MeanPoolingClassifier(encoder, num_labels, regression)
    if pooling != "cls":
        raise ValueError(f"unknown pooling {pooling!r}; expected cls or mean")
    kwargs = {"num_labels": num_labels, "problem_type": "regression" if regression else "single_label_classification"}
    if random_init:
        config = AutoConfig.from_pretrained(str(model), trust_remote_code=True, **kwargs)
        return AutoModelForSequenceClassification.from_config(config, trust_remote_code=True)
    if isinstance(model, (str, Path)):
        return AutoModelForSequenceClassification.from_pretrained(str(model), trust_remote_code=True, **kwargs)
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        return AutoModelForSequenceClassification.from_pretrained(d, **kwargs)


@torch.no_grad()
def evaluate(clf, dataset, spec, batch_size: int = 64, device="cpu") -> dict[str, float]:
    from .glue import compute_metrics

    clf.eval()
    pad = clf.config.pad_token_id or 0
    preds, gold = [], []
    # longest first: batches of similar lengths pad less; the metrics do not depend on the order
    lengths = token_counts(dataset)
    order = sorted(range(len(dataset)), key=lambda j: -lengths[j])
    for i in range(0, len(order), batch_size):
        batch = _collate(dataset[order[i:i + batch_size]], pad, spec.is_regression)
        labels = batch.pop("labels")
        with mixed_precision(device):  # bf16 on CUDA; the metrics from fp32 logits
            logits = clf(**to_device(batch, device)).logits.float().cpu()
        preds.append(logits[:, 0] if spec.is_regression else logits.argmax(-1))
        gold.append(labels)
    return compute_metrics(spec, torch.cat(preds).numpy(), torch.cat(gold).numpy())


def _improves(score: float, best: float) -> bool:
    """Whether an epoch's dev score beats the best so far; NaN (an undefined metric) never wins and is always beaten,
    so one NaN epoch cannot hold the best-epoch slot for the rest of the run."""
    return not math.isnan(score) and (math.isnan(best) or score > best)


def _read_losses(pending: list, log, bar, epoch: int) -> list[float]:
    """The pending steps' losses, read from the device at once, logged with their own step numbers; empties
    ``pending``."""
    if not pending:
        return []
    values = torch.stack([loss for _, _, loss in pending]).tolist()
    for (step, lr, _), value in zip(pending, values):
        if log is not None:
            log({"train_loss": value, "lr": lr}, step)
    bar.set_postfix(loss=f"{values[-1]:.3f}", epoch=epoch + 1)
    pending.clear()
    return values


def finetune(model, task_dir, cfg: FinetuneConfig = FinetuneConfig(), log=None, random_init: bool = False,
             keep: str | None = None, progress: bool = False, desc: str = "fine-tune") -> dict:
    """Fine-tune ``model`` (a model folder or an encoder such as a built student) on ``task_dir``.

    Returns ``{"task", "main_metric", "main_split" (the first dev split), "dev_splits", "score" (best epoch), "best_epoch", "best", "last",
    "epochs": [{"epoch", "step", "train_loss", <split>: {metrics}}], "steps", "train_examples", "seconds"}``
    where ``best`` / ``last`` are entries of ``epochs``. ``log(metrics, step)`` receives the training loss
    and, after each epoch, the dev metrics. ``keep="best"|"last"`` adds ``"model"``: the classifier with
    that epoch's weights.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from .glue import load_glue

    if keep not in (None, *REPORTED_EPOCHS):
        raise ValueError(f"keep must be one of {REPORTED_EPOCHS} or None, got {keep!r}")
    t0 = time.perf_counter()
    ds, spec, _ = load_glue(task_dir)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # the classifier head (and, for random_init, every weight)
    pooling = cfg.pooling
    if pooling == "auto":
        from .pooling import pooling_of_folder

        pooling = pooling_of_folder(model) if isinstance(model, (str, Path)) else "cls"
    clf = load_classifier(model, spec.num_labels, spec.is_regression, random_init, pooling).to(device)
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
    # fused: one kernel for all tensors (10x faster steps on CPU for a MiniLM, where the optimiser step
    # over the 12 M-parameter embedding dominates short-sentence tasks); same update rule
    opt = torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    pad = clf.config.pad_token_id or 0
    rng = np.random.default_rng(cfg.seed)
    main, first = spec.main_metric, spec.dev_splits[0]
    step, history, best, best_state = 0, [], None, None
    bar = tqdm(total=total, desc=desc, disable=not progress, unit="step")
    lengths = token_counts(train)
    for epoch in range(cfg.epochs):
        clf.train()
        if cfg.group_by_length:
            batches = length_grouped_batches(lengths, cfg.batch_size, rng)
        else:
            order = rng.permutation(len(train))
            batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        losses, pending = [], []  # per-step losses stay on the device until read in one sync (LOSS_READ_EVERY)
        for rows in batches:
            if step >= total:
                break
            batch = _collate(train[[int(j) for j in rows]], pad, spec.is_regression)
            with mixed_precision(device):  # bf16 on CUDA (the loss itself is fp32 under autocast)
                loss = clf(**to_device(batch, device)).loss
            loss.backward()
            opt.step()
            sched.step()
            pending.append((step + 1, sched.get_last_lr()[0], loss.detach()))
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if len(pending) == LOSS_READ_EVERY:
                losses += _read_losses(pending, log, bar, epoch)
        losses += _read_losses(pending, log, bar, epoch)
        record = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses)) if losses else None}
        for split in spec.dev_splits:
            record[split] = evaluate(clf, ds[split], spec, cfg.eval_batch_size, device)
        history.append(record)
        if log is not None:
            log({f"{split}.{k}": v for split in spec.dev_splits for k, v in record[split].items()}
                | {"epoch": epoch + 1}, step)
        if best is None or _improves(record[first][main], best[first][main]):
            best = record
            if keep == "best":
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in clf.state_dict().items()}
        if step >= total:
            break
    bar.close()
    result = {"task": spec.name, "main_metric": main, "main_split": first, "dev_splits": list(spec.dev_splits),
              "pooling": pooling,
              "score": best[first][main], "best_epoch": best["epoch"],
              "best": best, "last": history[-1], "epochs": history, "steps": step, "train_examples": len(train),
              "seconds": time.perf_counter() - t0}
    if keep is not None:
        if keep == "best":
            clf.load_state_dict(best_state)
        result["model"] = clf.cpu().eval()
    return result


def finetune_model(protocol: Protocol, model: str, task: str, model_dir: Path, task_dir: Path, info: dict,
                   out_root: str | Path, metrics_root: str | Path, progress: bool = True):
    """The finetune@<model>-<task> stage's work: the model folder ``model_dir`` (``info``: its autodistil.json)
    fine-tuned on ``task_dir`` once per seed of ``protocol``, each step's loss and each epoch's dev metrics logged
    to the active MLflow run as ``seed<seed>.<metric>``; the first seed's classifier saved to
    ``<out_root>/<model>/<task>/`` when the protocol keeps weights (else a note there); the score over the seeds,
    every dev metric and each seed's epochs as a :class:`autodistil.record.Record` for
    ``<metrics_root>/<model>/<task>.json``."""
    import dataclasses

    from .record import Record
    from .tracking import log_step

    kind = info.get("kind", "student")
    t0 = time.perf_counter()
    per_seed, kept = [], None
    for i, seed in enumerate(protocol.seeds):
        res = finetune(model_dir, task_dir, dataclasses.replace(protocol.config, seed=seed),
                       log=lambda m, step, seed=seed: log_step({f"seed{seed}.{k}": v for k, v in m.items()}, step),
                       random_init=kind == "random",
                       keep=protocol.report if protocol.keep_weights and i == 0 else None,
                       progress=progress, desc=f"{model} {task} seed {seed}")
        kept = res.pop("model", kept)
        chosen = res[protocol.report]
        per_seed.append({"seed": seed, "epoch": chosen["epoch"],
                         "score": chosen[res["main_split"]][res["main_metric"]], "best_epoch": res["best_epoch"],
                         "epochs": res["epochs"], "steps": res["steps"], "seconds": round(res["seconds"], 2)})
    main, splits = res["main_metric"], res["dev_splits"]
    score, dev = over_seeds(per_seed, splits)
    metrics = {
        "model": model, "kind": kind, "task": task, "main_metric": main,
        "main_split": splits[0], "report": protocol.report, "seeds": list(protocol.seeds),
        "score": score["mean"], "score_std": score["std"], "dev": dev,
        "arch": info.get("arch"), "costs": info.get("costs"),
        "params_module": info.get("params_module"),
        **({"student": info["student"]} if kind == "random" else {}),
        "protocol": {**protocol.to_dict(), "train_examples": res["train_examples"]},
        "pooling": res["pooling"],
        "per_seed": per_seed, "seconds": round(time.perf_counter() - t0, 2),
    }
    with atomic_path(Path(out_root) / model / task, is_dir=True) as tmp:
        if kept is not None:
            kept.save_pretrained(tmp)
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp)
        else:
            (tmp / "README.md").write_text(
                f"Weights of finetune@{model}-{task} are not kept (finetune.keep_weights: false); "
                f"the scores are in {metrics_root}/{model}/{task}.json.\n")
    return Record(metrics, Path(metrics_root) / model / f"{task}.json",
                  logged={"": {"score": score["mean"], "score_std": score["std"], "seconds": metrics["seconds"],
                               **dev}},
                  summary={"model": model, "task": task, main: round(score["mean"], 4), "std": round(score["std"], 4),
                           "report": protocol.report, "seconds": metrics["seconds"]})
