"""``partition/subspaces.json``: what a partition is (grids, candidates, cost ranges, the teacher) and reading it back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from ..cost import Vocab, exact_gflops, paper_gflops, paper_params
from ..space import SearchSpaceError, SubSpace, TeacherDims
from .checks import make_subspace, skipped_pairs, unused_values
from .lattice import measure_of, ratio_json



def describe(subspaces: Sequence[SubSpace], teacher: TeacherDims, seq_len: int = 128, vocab: Vocab = Vocab()) -> dict:
    """Per sub-space: the grid, the FFN sizes, candidate and skipped counts, largest/smallest, cost bands.

    Costs in the paper convention and, for GFLOPs, the exact one (the network that runs); ``*_frac`` are
    fractions of the teacher in the same convention.
    """
    t_arch = teacher.as_arch()
    t_params = paper_params(t_arch, teacher.heads, vocab)
    t_gflops = paper_gflops(t_arch, seq_len, teacher.heads)
    t_nonemb = measure_of(t_arch, "nonembed_params", teacher, vocab, seq_len)
    t_exact = exact_gflops(t_arch, seq_len, vocab)
    out = {}
    for sub in subspaces:
        cands = sub.candidates(teacher)
        params = [paper_params(a, teacher.heads, vocab) for a in cands]
        gflops = [paper_gflops(a, seq_len, teacher.heads) for a in cands]
        nonemb = [measure_of(a, "nonembed_params", teacher, vocab, seq_len) for a in cands]
        exact = [exact_gflops(a, seq_len, vocab) for a in cands]
        out[sub.name] = {
            "layers": list(sub.layers),
            "heads": list(sub.heads),
            "hidden": list(sub.hidden),
            "mlp_ratio": [ratio_json(r) for r in sub.mlp_ratio],
            "ffn": sorted({a.ffn for a in cands}),
            "candidates": len(cands),
            "skipped": skipped_pairs(sub, teacher.head_size),
            "unused_values": unused_values(sub, teacher),
            "largest": sub.largest(teacher).to_dict(),
            "smallest": sub.smallest(teacher).to_dict(),
            "params_paper": [min(params), max(params)],
            "gflops_paper": [min(gflops), max(gflops)],
            "params_frac": [min(params) / t_params, max(params) / t_params],
            "nonembed_params_frac": [min(nonemb) / t_nonemb, max(nonemb) / t_nonemb],
            "gflops_frac": [min(gflops) / t_gflops, max(gflops) / t_gflops],
            "gflops_exact": [min(exact), max(exact)],
            "gflops_exact_frac": [min(exact) / t_exact, max(exact) / t_exact],
            **({"band": list(sub.band), "band_seq_len": sub.band_seq_len} if sub.band is not None else {}),
        }
    return out


def teacher_summary(teacher: TeacherDims, source: str, seq_len: int = 128, vocab: Vocab = Vocab()) -> dict:
    arch = teacher.as_arch()
    return {
        "source": source,
        "layers": teacher.layers,
        "heads": teacher.heads,
        "hidden": teacher.hidden,
        "ffn": teacher.ffn,
        "head_size": teacher.head_size,
        "vocab_size": vocab.size,
        "max_position_embeddings": vocab.positions,
        "type_vocab_size": vocab.token_types,
        # a family's embedding projection and pooler, where they differ from BERT's (BERT's document unchanged)
        **({"embedding_size": vocab.embedding_size} if vocab.embedding_size else {}),
        **({} if vocab.pooler else {"pooler": False}),
        "params_paper": paper_params(arch, teacher.heads, vocab),
        "gflops_paper": paper_gflops(arch, seq_len, teacher.heads),
        "gflops_exact": exact_gflops(arch, seq_len, vocab),
        "seq_len": seq_len,
    }


def subspaces_document(subspaces: Sequence[SubSpace], teacher: TeacherDims, source: str, convention: str,
                       seq_len: int = 128, vocab: Vocab = Vocab(), mode: str = "explicit", settings: Mapping | None = None
                       ) -> dict:
    """The content of ``partition/subspaces.json``."""
    return {
        "teacher": teacher_summary(teacher, source, seq_len, vocab),
        "convention": convention,
        "mode": mode,
        "settings": dict(settings or {}),
        "subspaces": describe(subspaces, teacher, seq_len, vocab),
    }


def load_subspaces(path: str | Path) -> dict[str, SubSpace]:
    """``{name: SubSpace}`` from ``partition/subspaces.json``, in the file's order (largest first)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SearchSpaceError(f"{path}: not found (run the partition stage first)") from None
    except json.JSONDecodeError as e:
        raise SearchSpaceError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("subspaces"), dict):
        raise SearchSpaceError(f"{path}: expected a mapping with a 'subspaces' mapping")
    convention = doc.get("convention", "stock")
    return {name: make_subspace(name, grid, convention) for name, grid in doc["subspaces"].items()}


def load_subspace(path: str | Path, name: str) -> SubSpace:
    """Sub-space ``name`` of ``partition/subspaces.json``; a missing file or name is an :class:`InputError`."""
    from ..io import InputError

    try:
        subspaces = load_subspaces(path)
    except SearchSpaceError as e:
        raise InputError(str(e)) from None
    if name not in subspaces:
        raise InputError(f"{path}: no sub-space {name!r} (have {', '.join(subspaces)})")
    return subspaces[name]


def load_teacher_shape(path: str | Path) -> tuple[TeacherDims, Vocab]:
    """The teacher's dims and vocabulary recorded in ``partition/subspaces.json``."""
    t = json.loads(Path(path).read_text(encoding="utf-8"))["teacher"]
    emb = t.get("embedding_size")
    pooler = t.get("pooler", True)
    return (TeacherDims(int(t["layers"]), int(t["heads"]), int(t["hidden"]), int(t["ffn"]), emb, pooler),
            Vocab(t["vocab_size"], t["max_position_embeddings"], t["type_vocab_size"], emb, pooler))


def partition_metrics(doc: Mapping, seconds: float) -> dict:
    """metrics/partition.json: per sub-space, its candidates and cost ranges (also as fractions of the teacher)."""
    ranges = ("params_paper", "gflops_paper", "params_frac", "nonembed_params_frac", "gflops_exact", "gflops_exact_frac")
    return {
        "mode": doc["mode"],
        "convention": doc["convention"],
        "k": len(doc["subspaces"]),
        "teacher_params_paper": doc["teacher"]["params_paper"],
        "teacher_gflops_paper": doc["teacher"]["gflops_paper"],
        "subspaces": {
            name: {"candidates": d["candidates"], "skipped": d["skipped"],
                   **{f"{r}_{end}": d[r][i] for r in ranges for i, end in enumerate(("min", "max"))}}
            for name, d in doc["subspaces"].items()
        },
        "candidates_total": sum(d["candidates"] for d in doc["subspaces"].values()),
        "seconds": seconds,
    }


def partition_record(doc: Mapping, seconds: float, out: str | Path, metrics_path: str | Path):
    """The partition stage's work once the sub-spaces are made: ``doc`` written to ``out`` (subspaces.json), and
    its metrics (:func:`partition_metrics`) and one line per sub-space as a :class:`autodistil.record.Record`."""
    from ..io import atomic_write_json
    from ..record import Record

    atomic_write_json(out, doc)
    metrics = partition_metrics(doc, round(seconds, 3))
    lines = [f"partition: {name}: L{d['layers']} A{d['heads']} H{d['hidden']} R{d['mlp_ratio']}: "
             f"{d['candidates']} candidates ({d['skipped']} skipped), "
             f"{d['params_paper'][0] / 1e6:.2f}-{d['params_paper'][1] / 1e6:.2f} M params, "
             f"{d['gflops_exact'][0]:.3f}-{d['gflops_exact'][1]:.3f} GFLOPs "
             f"({100 * d['gflops_exact_frac'][0]:.1f}-{100 * d['gflops_exact_frac'][1]:.1f} % of the teacher's)"
             for name, d in doc["subspaces"].items()]
    lines.append(f"partition: {doc['mode']}, {doc['convention']}, K={len(doc['subspaces'])}, teacher "
                 f"{doc['teacher']['source']}, {metrics['seconds']} s")
    return Record(metrics, metrics_path, logged={"": {k: v for k, v in metrics.items() if k not in ("mode", "convention")}},
                  artifacts=[out], summary="\n".join(lines))
