"""The yardstick: how much of the teacher's function a model keeps, in seconds, with no training and no seed noise.

Two measures of the final hidden states, for any model that maps tokens to them (a model folder, a random twin, a
SuperLM sub-network):

- ``pairs``: for each labelled sentence-pair task (MRPC, RTE, QQP, ... read from the GLUE folder), both sentences
  are embedded alone (pooled as the run pools, then L2-normalised) and the cosine of the two embeddings ranks the
  pairs. The score is the average precision of that ranking against the positive class (paraphrase, duplicate,
  entailment), MTEB's pair-classification measure, or the Spearman correlation with the gold score (STS-B). The
  headline ``pairs`` is the mean over tasks, in points (x 100); its spread is a bootstrap over pairs.
- ``agreement``: the Spearman correlation (x 100) between the model's pair cosines and the teacher's on the same
  pairs, mean over tasks: how much of the teacher's similarity function the model keeps, labels aside (the teacher
  scores 100).
- ``cka``: linear CKA between the model's and the teacher's final hidden states over held-out corpus tokens
  (1: the teacher's own function up to a rotation and a scale).

Fine-tuning scores move by points between seeds; these do not move at all for a given model, and a paired
bootstrap (:func:`paired_difference`) tells whether two models differ beyond the sampling of the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .io import InputError
from .pooling import POOLINGS, pool

# Label names that mark a pair as positive (the pair's sentences say the same thing, or one follows from the other)
POSITIVE_LABELS = ("equivalent", "duplicate", "entailment")

Encoder = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (input_ids, attention_mask) -> [B, T, H]


class StreamingCKA:
    """Streaming linear CKA between two token sets (rows: tokens) of possibly different widths, in float64 on the
    tokens' own device (one read at the end, no copy to the host per batch)."""

    def __init__(self):
        self.n, self.sx = 0, None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.reshape(-1, x.shape[-1]).double(), y.reshape(-1, y.shape[-1]).double()
        if self.sx is None:
            self.sx, self.sy = x.sum(0), y.sum(0)
            self.xx, self.yy, self.yx = x.T @ x, y.T @ y, y.T @ x
        else:
            self.sx += x.sum(0)
            self.sy += y.sum(0)
            self.xx += x.T @ x
            self.yy += y.T @ y
            self.yx += y.T @ x
        self.n += len(x)

    def value(self) -> float:
        mx, my = self.sx / self.n, self.sy / self.n  # centre: Gram of centred rows = Gram - n * outer(mean)
        xx = self.xx - self.n * torch.outer(mx, mx)
        yy = self.yy - self.n * torch.outer(my, my)
        yx = self.yx - self.n * torch.outer(my, mx)
        return float(yx.pow(2).sum() / (xx.pow(2).sum().sqrt() * yy.pow(2).sum().sqrt()))


@dataclass(frozen=True)
class PairSet:
    """One task's sentence pairs: texts, and the label each pair's similarity is scored against."""

    task: str
    first: list[str]
    second: list[str]
    labels: np.ndarray  # 0/1 (positive class) or the gold score (regression)
    metric: str  # "average_precision" | "spearman"


def pair_set(task: str, examples: Sequence, seed: int = 0, max_pairs: int | None = None) -> PairSet:
    """The :class:`PairSet` of GLUE ``task`` from its parsed ``examples`` (a seeded subset of ``max_pairs``)."""
    from .glue import cap, get_task

    spec = get_task(task)  # a sentence-pair task: load_pair_sets checks it before any file is read
    examples = cap(list(examples), max_pairs, seed)
    if spec.is_regression:
        labels, metric = np.array([e.label for e in examples], dtype=np.float64), "spearman"
    else:
        positive = [i for i, name in enumerate(spec.labels) if name in POSITIVE_LABELS]
        labels = np.array([e.label in positive for e in examples], dtype=np.float64)
        metric = "average_precision"
    return PairSet(spec.name, [e.texts[0] for e in examples], [e.texts[1] for e in examples], labels, metric)


def load_pair_sets(source: str | Path | None, tasks: Sequence[str], splits: Sequence[str], max_pairs: int | None,
                   seed: int = 0, hub: str | None = None) -> list[PairSet]:
    """The yardstick's pair sets: for every task, its ``splits`` pooled (``train`` and/or the dev splits), then a
    seeded subset of at most ``max_pairs``; read from a GLUE TSV folder, or from the hub dataset ``hub``."""
    from .glue import get_task, load_hub_splits, load_tsv_splits

    sets = []
    for task in tasks:
        spec = get_task(task)
        if len(spec.text_columns) != 2:
            raise InputError(f"yardstick.tasks: {spec.name} is a single-sentence task; the yardstick scores sentence "
                             f"pairs (MRPC, RTE, QQP, STS-B, MNLI, QNLI, WNLI)")
        unknown = [s for s in splits if s not in spec.splits]
        if unknown:
            raise InputError(f"yardstick.splits: {spec.name} has no split {unknown[0]!r} (it has {list(spec.splits)})")
        by_split = load_hub_splits(spec, hub) if hub else load_tsv_splits(spec, source)
        sets.append(pair_set(spec.name, [e for s in splits for e in by_split[s]], seed, max_pairs))
    return sets


class TokenisedTexts:
    """Texts tokenised once (alone, truncated at ``max_length``), batched by length: every model of a run shares
    the teacher's tokenizer, so one tokenisation serves them all."""

    def __init__(self, texts: Sequence[str], tokenizer, max_length: int = 128, batch_size: int = 64):
        ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        self.n = len(ids)
        order = np.argsort([len(x) for x in ids], kind="stable")
        pad = tokenizer.pad_token_id or 0
        self.batches = []
        for i in range(0, len(order), batch_size):
            rows = order[i:i + batch_size]
            width = max(len(ids[r]) for r in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows):
                input_ids[j, :len(ids[r])] = torch.tensor(ids[r])
                mask[j, :len(ids[r])] = 1
            self.batches.append((rows, input_ids, mask))

    @torch.no_grad()
    def embed(self, encode: Encoder, pooling: str, device="cpu") -> np.ndarray:
        """[N, H] L2-normalised pooled embeddings in the texts' order (float64)."""
        out = None
        for rows, input_ids, mask in self.batches:
            input_ids, mask = input_ids.to(device), mask.to(device)
            e = torch.nn.functional.normalize(pool(encode(input_ids, mask).float(), mask, pooling), dim=-1)
            if out is None:
                out = torch.empty((self.n, e.shape[-1]), dtype=torch.float64, device=device)
            out[torch.as_tensor(rows, device=device)] = e.double()
        return out.cpu().numpy()


def pair_metric(similarity: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """Average precision of ``similarity`` ranking the positive pairs, or its Spearman correlation with the gold
    score; in points (x 100)."""
    if metric == "spearman":
        from scipy.stats import spearmanr

        rho = spearmanr(similarity, labels).statistic
        return 0.0 if not np.isfinite(rho) else 100.0 * float(rho)
    from sklearn.metrics import average_precision_score

    return 100.0 * float(average_precision_score(labels, similarity))


def bootstrap_rows(sizes: Sequence[int], n: int, seed: int) -> list[np.ndarray]:
    """``n`` bootstrap resamples of each set's rows, [n, size] per set (the same draws for every model)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, size, size=(n, size)) for size in sizes]


@dataclass
class PairScores:
    """One model's cosine similarity per pair of every set, and what follows from them."""

    sets: list[PairSet]
    similarity: list[np.ndarray]

    def per_task(self, rows: Sequence[np.ndarray] | None = None) -> dict[str, float]:
        """Each task's score (on the resample ``rows``, one index array per set, when given)."""
        out = {}
        for i, (s, sim) in enumerate(zip(self.sets, self.similarity)):
            r = slice(None) if rows is None else rows[i]
            out[s.task] = pair_metric(sim[r], s.labels[r], s.metric)
        return out

    def mean(self, rows: Sequence[np.ndarray] | None = None) -> float:
        return float(np.mean(list(self.per_task(rows).values())))

    def replicates(self, draws: Sequence[np.ndarray]) -> np.ndarray:
        """The mean score on every bootstrap replicate of ``draws`` (:func:`bootstrap_rows`)."""
        return np.array([self.mean([d[b] for d in draws]) for b in range(len(draws[0]))])


def paired_difference(a: PairScores, b: PairScores, draws: Sequence[np.ndarray]) -> dict[str, float]:
    """``a - b`` on the same pairs, with the 2.5 and 97.5 percentiles of the difference over the bootstrap
    replicates ``draws``: a difference whose interval excludes 0 is beyond the sampling of the pairs."""
    diff = a.replicates(draws) - b.replicates(draws)
    return {"difference": a.mean() - b.mean(), "low": float(np.percentile(diff, 2.5)),
            "high": float(np.percentile(diff, 97.5))}


class Yardstick:
    """The pair sets tokenised once and the teacher's held-out hidden states, for scoring many models."""

    def __init__(self, sets: Sequence[PairSet], tokenizer, pooling: str = "mean", max_length: int = 128,
                 batch_size: int = 64, bootstrap: int = 1000, seed: int = 0, cka_blocks: np.ndarray | None = None,
                 teacher: Encoder | None = None, device="cpu"):
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        self.sets, self.pooling, self.device = list(sets), pooling, device
        self.texts = [(TokenisedTexts(s.first, tokenizer, max_length, batch_size),
                       TokenisedTexts(s.second, tokenizer, max_length, batch_size)) for s in self.sets]
        self.draws = bootstrap_rows([len(s.labels) for s in self.sets], bootstrap, seed) if bootstrap else None
        self.cka_batches, self.cka_targets = [], []
        self.teacher_sims = None if teacher is None else self.pair_scores(teacher).similarity
        if cka_blocks is not None and teacher is not None:
            blocks = torch.as_tensor(np.asarray(cka_blocks, dtype=np.int64))
            for i in range(0, len(blocks), batch_size):
                ids = blocks[i:i + batch_size].to(device)
                mask = torch.ones_like(ids)
                self.cka_batches.append((ids, mask))
                with torch.no_grad():
                    self.cka_targets.append(teacher(ids, mask).float())

    def pair_scores(self, encode: Encoder) -> PairScores:
        sims = []
        for first, second in self.texts:
            a, b = first.embed(encode, self.pooling, self.device), second.embed(encode, self.pooling, self.device)
            sims.append((a * b).sum(-1))
        return PairScores(self.sets, sims)

    @torch.no_grad()
    def cka(self, encode: Encoder) -> float | None:
        if not self.cka_batches:
            return None
        acc = StreamingCKA()
        for (ids, mask), target in zip(self.cka_batches, self.cka_targets):
            acc.add(encode(ids, mask).float(), target)
        return acc.value()

    def score(self, encode: Encoder) -> tuple[dict, PairScores]:
        """The record of one model (``pairs``, its bootstrap interval, each task, ``cka``) and its pair scores."""
        scores = self.pair_scores(encode)
        record = {"pairs": scores.mean(), **{f"pairs_{t}": v for t, v in scores.per_task().items()}}
        if self.draws is not None:
            reps = scores.replicates(self.draws)
            record.update(pairs_low=float(np.percentile(reps, 2.5)), pairs_high=float(np.percentile(reps, 97.5)))
        if self.teacher_sims is not None:
            record["agreement"] = float(np.mean([pair_metric(sim, t, "spearman") for sim, t in
                                                 zip(scores.similarity, self.teacher_sims)]))
        cka = self.cka(encode)
        if cka is not None:
            record["cka"] = cka
        return record, scores


def retention(model: float, teacher: float, twin: float) -> float | None:
    """(model - twin) / (teacher - twin); None when the teacher does not beat the twin."""
    gap = teacher - twin
    return None if gap <= 0 else (model - twin) / gap


# ------------------------------------------------------------------------------------------- encoders
def hf_encoder(model) -> Encoder:
    """A transformers encoder (``AutoModel``) in eval mode as an :data:`Encoder`."""
    model.eval()

    def encode(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return encode


def subnet_encoder(superlm, arch) -> Encoder:
    """Sub-network ``arch`` of a SuperLM (eval mode) as an :data:`Encoder`."""
    superlm.eval()

    def encode(input_ids, attention_mask):
        return superlm(input_ids, attention_mask, arch=arch, distill_layer=None).last_hidden_state

    return encode


def load_encoder(folder: str | Path, random_init: bool = False, seed: int = 0):
    """The encoder of an exported model folder (a student, the teacher) or, with ``random_init``, its architecture
    freshly initialised by transformers (seeded): the random twin."""
    from transformers import AutoConfig, AutoModel

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: no config.json (not a model folder)")
    if random_init:
        torch.manual_seed(seed)
        return AutoModel.from_config(AutoConfig.from_pretrained(str(folder), trust_remote_code=True),
                                     trust_remote_code=True)
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise InputError(f"{folder}: no weights (*.safetensors or *.bin) in the model folder")
    return AutoModel.from_pretrained(str(folder), trust_remote_code=True)


# ------------------------------------------------------------------------------------------- the stage
def yardstick_job(params, models_dir: str | Path, corpus: str | Path, metrics_path: str | Path):
    """The yardstick stage's work: every model of ``finetune.models`` (teacher, students, random twins, as their
    folders in ``models_dir`` hold them; a twin initialised with ``yardstick.seed``) scored by one
    :class:`Yardstick` built around the teacher snapshot, with each student's retention against its twin (on
    ``pairs`` and ``agreement``) and the paired bootstrap of student minus twin; as a
    :class:`autodistil.record.Record`."""
    import time

    from transformers import AutoTokenizer

    from .corpus import load_blocks
    from .export import read_info
    from .pooling import pooling_of_folder, resolve_pooling
    from .record import Record

    t0, y, models_dir = time.perf_counter(), params.yardstick, Path(models_dir)
    folders = {m: models_dir / m for m in params.finetune.models}
    for m, folder in folders.items():
        if not folder.is_dir():
            raise InputError(f"{folder}: no model folder for {m!r} of finetune.models (run `dvc repro`)")
    infos = {m: read_info(f) for m, f in folders.items()}
    teacher_name = next((m for m, i in infos.items() if i.get("kind") == "teacher"), None)
    if teacher_name is None:
        raise InputError("finetune.models: the yardstick needs the teacher among the models (its reference)")
    teacher_dir = folders[teacher_name]
    setting = params.finetune.pooling
    pooling = pooling_of_folder(teacher_dir) if setting == "auto" else resolve_pooling(setting, "")
    sets = load_pair_sets(params.prepare_glue.source, y.tasks, y.splits, y.max_pairs, y.seed, params.prepare_glue.hub)
    teacher = load_encoder(teacher_dir)
    heldout = load_blocks(corpus, "heldout")[: y.cka_blocks]
    stick = Yardstick(sets, AutoTokenizer.from_pretrained(str(teacher_dir)), pooling, y.max_length, y.batch_size,
                      y.bootstrap, y.seed, heldout, hf_encoder(teacher))
    records, scores = {}, {}
    from tqdm.auto import tqdm

    for m in tqdm(folders, desc="yardstick", unit="model"):
        kind = infos[m].get("kind", "student")
        encoder = teacher if m == teacher_name else load_encoder(folders[m], kind == "random", y.seed)
        records[m], scores[m] = stick.score(hf_encoder(encoder))
        records[m]["kind"] = kind
    retention_, vs_twin = {}, {}
    for m, info in infos.items():
        twin = f"random-{m}"
        if info.get("kind") == "student" and twin in records:
            retention_[m] = {k: retention(records[m][k], records[teacher_name][k], records[twin][k])
                             for k in ("pairs", "agreement")}
            if stick.draws is not None:
                vs_twin[m] = paired_difference(scores[m], scores[twin], stick.draws)
    metrics = {"tasks": list(y.tasks), "pooling": pooling, "pairs_per_task": {s.task: len(s.labels) for s in sets},
               "models": records, "retention": retention_, "student_minus_twin": vs_twin,
               "seconds": round(time.perf_counter() - t0, 1)}
    logged = {f"{m}.": {k: v for k, v in r.items() if isinstance(v, float)} for m, r in records.items()}
    summary = {m: {"pairs": round(r["pairs"], 2), "agreement": round(r.get("agreement", float("nan")), 2),
                   "cka": round(r.get("cka", float("nan")), 3)} for m, r in records.items()}
    return Record(metrics, metrics_path, logged=logged, summary=summary)
