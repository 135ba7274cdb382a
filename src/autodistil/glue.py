"""GLUE: the task registry, strict loading (GLUE TSV folders or the hub's Parquet dataset), tokenisation,
the on-disk format the fine-tuning stage reads, and the task metrics.

Task names are the canonical GLUE folder names (``CoLA``, ``SST-2``, ``MRPC``, ``STS-B``, ``QQP``, ``MNLI``,
``QNLI``, ``RTE``, ``WNLI``); :func:`get_task` also accepts the hub config names (``sst2``, ``stsb``) and any
casing. Label ids follow the hub dataset ``nyu-mll/glue`` (e.g. MNLI: entailment 0, neutral 1,
contradiction 2), so TSV and hub sources give identical labels.

Splits written: ``train`` and the task's dev splits (``dev``; MNLI: ``dev_matched`` and ``dev_mismatched``).
Test splits are not prepared (GLUE test labels are hidden). :func:`prepare_glue` is the prepare_glue@<task>
stage's work once the task's splits are read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import Params
from .io import InputError, atomic_path

HUB_DATASET = "nyu-mll/glue"
SPEC_FILE = "task.json"


@dataclass(frozen=True)
class TaskSpec:
    """One GLUE task: where its text and labels are, in TSV files and in the hub dataset."""

    name: str  # canonical GLUE name = folder name in a GLUE directory ("SST-2")
    hub_name: str  # config name in nyu-mll/glue ("sst2")
    text_columns: tuple[str, ...]  # TSV header names of the one or two text fields
    label_column: str  # TSV header name of the label (or score)
    labels: tuple[str, ...] | None  # label names in id order; None for regression (STS-B)
    tsv_label_values: tuple[str, ...] | None  # the raw TSV label strings, in id order
    metrics: tuple[str, ...]  # metric names, the first is the task's main metric
    dev_splits: tuple[str, ...] = ("dev",)
    hub_text_columns: tuple[str, ...] = ()
    # Files without a header (CoLA): the column names, by position
    headerless_columns: tuple[str, ...] | None = None
    # split name -> hub split name
    hub_splits: dict[str, str] = field(default_factory=dict)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", *self.dev_splits)

    def tsv_file(self, split: str) -> str:
        return f"{split}.tsv"

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(num_labels=self.num_labels, is_regression=self.is_regression, main_metric=self.main_metric)
        return d


def _spec(name, hub_name, text, label, labels, values, metrics, hub_text, dev=("dev",), headerless=None):
    hub_splits = {"train": "train"}
    hub_splits.update({d: d.replace("dev", "validation") for d in dev})
    return TaskSpec(
        name=name, hub_name=hub_name, text_columns=tuple(text), label_column=label,
        labels=None if labels is None else tuple(labels), tsv_label_values=None if values is None else tuple(values),
        metrics=tuple(metrics), dev_splits=tuple(dev), hub_text_columns=tuple(hub_text),
        headerless_columns=None if headerless is None else tuple(headerless), hub_splits=hub_splits,
    )


_ACC = ("accuracy",)
TASKS: dict[str, TaskSpec] = {
    s.name: s
    for s in (
        _spec("CoLA", "cola", ["sentence"], "label", ["unacceptable", "acceptable"], ["0", "1"],
              ["matthews_correlation"], ["sentence"],
              headerless=["source", "label", "original_label", "sentence"]),
        _spec("SST-2", "sst2", ["sentence"], "label", ["negative", "positive"], ["0", "1"], _ACC, ["sentence"]),
        _spec("MRPC", "mrpc", ["#1 String", "#2 String"], "Quality", ["not_equivalent", "equivalent"], ["0", "1"],
              ["accuracy", "f1"], ["sentence1", "sentence2"]),
        _spec("STS-B", "stsb", ["sentence1", "sentence2"], "score", None, None, ["pearson", "spearmanr"],
              ["sentence1", "sentence2"]),
        _spec("QQP", "qqp", ["question1", "question2"], "is_duplicate", ["not_duplicate", "duplicate"], ["0", "1"],
              ["accuracy", "f1"], ["question1", "question2"]),
        _spec("MNLI", "mnli", ["sentence1", "sentence2"], "gold_label", ["entailment", "neutral", "contradiction"],
              ["entailment", "neutral", "contradiction"], _ACC, ["premise", "hypothesis"],
              dev=("dev_matched", "dev_mismatched")),
        _spec("QNLI", "qnli", ["question", "sentence"], "label", ["entailment", "not_entailment"],
              ["entailment", "not_entailment"], _ACC, ["question", "sentence"]),
        _spec("RTE", "rte", ["sentence1", "sentence2"], "label", ["entailment", "not_entailment"],
              ["entailment", "not_entailment"], _ACC, ["sentence1", "sentence2"]),
        _spec("WNLI", "wnli", ["sentence1", "sentence2"], "label", ["not_entailment", "entailment"], ["0", "1"],
              _ACC, ["sentence1", "sentence2"]),
    )
}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_ALIASES = {_norm(k): k for k in TASKS} | {_norm(s.hub_name): k for k, s in TASKS.items()}


def get_task(name: str) -> TaskSpec:
    """The spec of a task by GLUE name or hub name, any casing (``sst2``, ``SST-2``); unknown -> InputError."""
    key = _ALIASES.get(_norm(str(name)))
    if key is None:
        raise InputError(f"unknown GLUE task '{name}' (expected one of {', '.join(TASKS)})")
    return TASKS[key]


def check_task_names(p, where: str = "params.yaml: prepare_glue") -> None:
    """``prepare_glue.tasks`` and the keys of its per-task caps must be GLUE folder names (``SST-2``, not ``sst2``):
    DVC names the stages, the raw and the prepared folders by them, and a cap under another spelling would
    silently cap nothing."""
    named = [(f"{where}.tasks", t) for t in p.tasks] + [
        (f"{where}.{key}", t) for key in ("max_train_samples", "max_eval_samples")
        if isinstance(getattr(p, key), dict) for t in getattr(p, key) if t != "default"]
    for field_name, task in named:
        canonical = get_task(task).name
        if task != canonical:
            raise InputError(f"{field_name}: {task!r} must be written as the GLUE folder name {canonical!r}")


# ---------------------------------------------------------------------------------------------- loading
@dataclass
class Example:
    texts: tuple[str, ...]
    label: int | float


def _parse_label(spec: TaskSpec, raw: str, where: str) -> int | float:
    raw = raw.strip()
    if spec.is_regression:
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"{where}: score '{raw}' is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"{where}: score '{raw}' is not a finite number")
        return value
    try:
        return spec.tsv_label_values.index(raw)
    except ValueError:
        raise InputError(
            f"{where}: unknown label '{raw}' for {spec.name} (expected one of {', '.join(spec.tsv_label_values)})"
        ) from None


def read_tsv(spec: TaskSpec, path: str | os.PathLike) -> list[Example]:
    """Parse one labelled GLUE TSV file strictly: UTF-8 (a byte-order mark is allowed), tab-separated, no
    quoting, a header unless the task has none (CoLA), every row with the header's column count and a known
    label. Errors name ``file:line``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a TSV file") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise InputError(f"{path}: file is empty")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()

    def decode(i: int, raw: bytes) -> str:
        try:
            return raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            raise InputError(
                f"{path}:{i + 1}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
            ) from None

    if spec.headerless_columns is not None:
        columns = list(spec.headerless_columns)
        first = 0
    else:
        columns = [c.strip() for c in decode(0, lines[0]).split("\t")]
        first = 1
        missing = [c for c in (*spec.text_columns, spec.label_column) if c not in columns]
        if missing:
            raise InputError(
                f"{path}:1: header lacks column(s) {', '.join(repr(m) for m in missing)} for {spec.name} "
                f"(found {', '.join(repr(c) for c in columns)})"
            )
    text_idx = [columns.index(c) for c in spec.text_columns]
    label_idx = columns.index(spec.label_column)
    examples = []
    for i in range(first, len(lines)):
        line = decode(i, lines[i])
        where = f"{path}:{i + 1}"
        if not line.strip():
            raise InputError(f"{where}: empty line")
        cells = line.split("\t")
        if len(cells) != len(columns):
            raise InputError(
                f"{where}: expected {len(columns)} tab-separated columns, found {len(cells)}"
            )
        examples.append(Example(tuple(cells[j] for j in text_idx), _parse_label(spec, cells[label_idx], where)))
    if not examples:
        raise InputError(f"{path}: no data rows")
    return examples


def load_tsv_splits(spec: TaskSpec, glue_dir: str | os.PathLike) -> dict[str, list[Example]]:
    """``{split: examples}`` for ``train`` and the dev splits of ``<glue_dir>/<task>/``."""
    task_dir = Path(glue_dir) / spec.name
    if not task_dir.is_dir():
        raise InputError(f"{task_dir}: no folder for task {spec.name} in GLUE directory {glue_dir}")
    out = {}
    for split in spec.splits:
        path = task_dir / spec.tsv_file(split)
        if not path.is_file():
            raise InputError(f"{path}: missing split '{split}' of {spec.name}")
        out[split] = read_tsv(spec, path)
    return out


def load_hub_splits(spec: TaskSpec, hub: str = HUB_DATASET) -> dict[str, list[Example]]:
    """``{split: examples}`` from the Parquet GLUE dataset: a hub id (``nyu-mll/glue``, needs the network) or a
    local folder laid out like that hub repository (``<config>/<hub split>-*.parquet``)."""
    import datasets

    local = Path(hub).expanduser()
    if local.is_dir():
        files = {}
        for split, hub_split in spec.hub_splits.items():
            found = sorted((local / spec.hub_name).glob(f"{hub_split}-*.parquet"))
            if not found:
                raise InputError(f"{local / spec.hub_name}: missing split '{hub_split}' ({hub_split}-*.parquet)")
            files[hub_split] = [str(p) for p in found]
        dsd = datasets.load_dataset("parquet", data_files=files)
    else:
        try:
            dsd = datasets.load_dataset(hub, spec.hub_name)
        except (FileNotFoundError, ConnectionError, ValueError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"hub dataset '{hub}' config '{spec.hub_name}': {first_line}") from None
    out = {}
    for split, hub_split in spec.hub_splits.items():
        where = f"{hub}:{spec.hub_name}/{hub_split}"
        if hub_split not in dsd:
            raise InputError(f"{where}: missing split '{hub_split}'")
        ds = dsd[hub_split]
        missing = [c for c in (*spec.hub_text_columns, "label") if c not in ds.column_names]
        if missing:
            raise InputError(f"{where}: missing column(s) {', '.join(missing)} (found {', '.join(ds.column_names)})")
        if len(ds) == 0:
            raise InputError(f"{where}: no rows")
        cols = [ds[c] for c in spec.hub_text_columns]
        examples = []
        for i, label in enumerate(ds["label"]):
            row = f"{where} row {i}"
            if spec.is_regression:
                if label is None or not math.isfinite(float(label)):
                    raise InputError(f"{row}: score {label!r} is not a finite number")
                label = float(label)
            elif not isinstance(label, int) or not 0 <= label < spec.num_labels:
                raise InputError(f"{row}: unknown label {label!r} (expected 0..{spec.num_labels - 1})")
            texts = tuple(c[i] for c in cols)
            if any(not isinstance(t, str) for t in texts):
                raise InputError(f"{row}: text is missing")
            examples.append(Example(texts, label))
        out[split] = examples
    return out


def cap(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """At most ``limit`` examples: a seeded random subset kept in file order (all if ``limit`` is None)."""
    if limit is None or limit >= len(examples):
        return examples
    if limit < 0:
        raise InputError(f"sample cap must be >= 0 or null, got {limit}")
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return [examples[i] for i in keep]


# ----------------------------------------------------------------------------------------- tokenising
def tokenize(
    spec: TaskSpec, examples: Sequence[Example], tokenizer, max_length: int = 128, batch_size: int = 1000,
    desc: str | None = None,
) -> dict[str, list]:
    """Columns ``input_ids``, ``token_type_ids``, ``attention_mask`` (unpadded, truncated to ``max_length``,
    pairs truncated longest-first) and ``label``; also ``n_truncated``."""
    from tqdm.auto import tqdm

    cols: dict[str, list] = {"input_ids": [], "token_type_ids": [], "attention_mask": [], "label": []}
    n_truncated = 0
    for start in tqdm(range(0, len(examples), batch_size), desc=desc, unit="batch", disable=desc is None):
        batch = examples[start:start + batch_size]
        args = [[ex.texts[j] for ex in batch] for j in range(len(spec.text_columns))]
        full = tokenizer(*args, truncation=False, verbose=False)["input_ids"]
        n_truncated += sum(len(ids) > max_length for ids in full)
        enc = tokenizer(*args, truncation=True, max_length=max_length, return_token_type_ids=True,
                        return_attention_mask=True)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            cols[key].extend(enc[key])
        cols["label"].extend(ex.label for ex in batch)
    cols["n_truncated"] = n_truncated
    return cols


def _features(spec: TaskSpec):
    import datasets

    return datasets.Features(
        input_ids=datasets.Sequence(datasets.Value("int32")),
        token_type_ids=datasets.Sequence(datasets.Value("int8")),
        attention_mask=datasets.Sequence(datasets.Value("int8")),
        label=datasets.Value("float32") if spec.is_regression else datasets.ClassLabel(names=list(spec.labels)),
    )


def split_stats(spec: TaskSpec, cols: dict[str, list], n_source: int) -> dict[str, Any]:
    lengths = [len(ids) for ids in cols["input_ids"]]
    stats: dict[str, Any] = {
        "examples": len(lengths),
        "source_examples": n_source,
        "tokens": sum(lengths),
        "mean_length": round(sum(lengths) / max(len(lengths), 1), 2),
        "max_length": max(lengths, default=0),
        "truncated": cols["n_truncated"],
    }
    if spec.is_regression:
        labels = cols["label"]
        stats["label_mean"] = round(sum(labels) / max(len(labels), 1), 4)
    else:
        stats["label_counts"] = {name: cols["label"].count(i) for i, name in enumerate(spec.labels)}
    return stats


def prepare_task(
    spec: TaskSpec,
    splits: dict[str, list[Example]],
    tokenizer,
    out_dir: str | os.PathLike,
    max_length: int = 128,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 0,
    extra_meta: dict | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Cap, tokenise and save all splits of one task into ``out_dir`` atomically; returns per-split stats.

    ``out_dir`` holds a ``datasets`` DatasetDict (``save_to_disk``) and ``task.json`` (the spec and counts).
    """
    import datasets

    stats: dict[str, Any] = {}
    dsd = {}
    for split, examples in splits.items():
        limit = max_train_samples if split == "train" else max_eval_samples
        kept = cap(examples, limit, seed)
        cols = tokenize(spec, kept, tokenizer, max_length, desc=f"{spec.name}/{split}" if progress else None)
        stats[split] = split_stats(spec, cols, len(examples))
        data = {k: cols[k] for k in ("input_ids", "token_type_ids", "attention_mask", "label")}
        dsd[split] = datasets.Dataset.from_dict(data, features=_features(spec), split=split)
    meta = {"task": spec.to_json(), "max_length": max_length, "splits": stats, **(extra_meta or {})}
    with atomic_path(out_dir, is_dir=True) as tmp:
        datasets.DatasetDict(dsd).save_to_disk(str(tmp))
        (tmp / SPEC_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return stats


def prepare_glue(params: Params, spec: TaskSpec, splits: dict[str, list[Example]], out_dir: str | os.PathLike,
                 metrics_path: str | os.PathLike, started: float):
    """The prepare_glue@<task> stage's work once ``splits`` are read (and so checked): capped, tokenised by the
    teacher's tokenizer and saved into ``out_dir`` (:func:`prepare_task`, as ``prepare_glue`` of ``params``
    says), and the per-split stats as a :class:`autodistil.record.Record`; ``started`` (``time.perf_counter``
    when the stage began reading the splits) starts its ``seconds``."""
    import time

    from .record import Record
    from .teacher import load_tokenizer

    p, teacher = params.prepare_glue, params.teacher.source
    tokenizer = load_tokenizer(teacher)
    stats = prepare_task(
        spec, splits, tokenizer, out_dir,
        max_length=p.max_length,
        max_train_samples=p.cap("max_train_samples", spec.name),
        max_eval_samples=p.cap("max_eval_samples", spec.name),
        seed=p.seed,
        extra_meta={"source": p.hub or p.source, "tokenizer": teacher},
    )
    metrics = {"task": spec.name, "source": p.hub or p.source, "num_labels": spec.num_labels,
               **stats, "seconds": round(time.perf_counter() - started, 2)}
    counts = ", ".join(f"{k} {v['examples']}" for k, v in stats.items())
    return Record(metrics, metrics_path, logged={"": {k: v for k, v in metrics.items() if k not in ("task", "source")}},
                  summary=f"prepare_glue {spec.name}: {counts} examples ({metrics['seconds']} s)")


def load_glue(directory: str | os.PathLike):
    """Load a prepared task folder: ``(DatasetDict, TaskSpec, meta)``. Columns: input_ids, token_type_ids,
    attention_mask (unpadded), label (ClassLabel, or float32 for STS-B)."""
    import datasets

    directory = Path(directory)
    meta_path = directory / SPEC_FILE
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: not found (run the prepare_glue stage first)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    spec = get_task(meta["task"]["name"])
    return datasets.load_from_disk(str(directory)), spec, meta


# -------------------------------------------------------------------------------------------- metrics
def compute_metrics(spec: TaskSpec | str, predictions: Iterable, labels: Iterable) -> dict[str, float]:
    """The task's metrics from predictions (class ids, or scores for STS-B) and gold labels."""
    import numpy as np

    spec = get_task(spec) if isinstance(spec, str) else spec
    preds, gold = np.asarray(list(predictions)), np.asarray(list(labels))
    out: dict[str, float] = {}
    for name in spec.metrics:
        if name == "accuracy":
            out[name] = float((preds == gold).mean())
        elif name == "f1":
            from sklearn.metrics import f1_score

            out[name] = float(f1_score(gold, preds))
        elif name == "matthews_correlation":
            from sklearn.metrics import matthews_corrcoef

            out[name] = float(matthews_corrcoef(gold, preds))
        elif name in ("pearson", "spearmanr") and (np.ptp(preds) == 0 or np.ptp(gold) == 0):
            # a constant prediction (a collapsed regressor) has no correlation: 0, as sklearn's MCC reports for a
            # constant classifier, rather than scipy's NaN, which no later epoch could beat or average away
            out[name] = 0.0
        elif name == "pearson":
            from scipy.stats import pearsonr

            out[name] = float(pearsonr(preds, gold)[0])
        elif name == "spearmanr":
            from scipy.stats import spearmanr

            out[name] = float(spearmanr(preds, gold)[0])
        else:  # pragma: no cover - registry and this function are kept in step by the tests
            raise ValueError(f"unknown metric {name}")
    return out
