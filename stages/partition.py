"""Stage partition: the teacher's shape + params -> K disjoint sub-space grids.

    python stages/partition.py

Reads params.yaml (teacher.source, mlflow.experiment, partition.*) and the teacher's config (no weights),
writes partition/subspaces.json and metrics/partition.json, both atomically. Bad input: one line on
stderr, exit 1, nothing written.
"""

import argparse
import time

from autodistil.io import InputError, load_params, param, run_main

DIMS = ("layers", "heads", "hidden", "mlp_ratio")


def _teacher(source: str):
    """The teacher's dims and vocabulary from its config alone (no weights are loaded).

    A local folder's config.json is read directly (fast: no transformers import); a hub id goes through
    ``AutoConfig``.
    """
    import json
    from pathlib import Path
    from types import SimpleNamespace

    from autodistil.cost import Vocab
    from autodistil.space import TeacherDims
    from autodistil.teacher import resolve_source

    try:
        resolved = resolve_source(source)
        config_file = Path(resolved) / "config.json"
        if config_file.is_file():
            raw = json.loads(config_file.read_text(encoding="utf-8"))
            keys = ("num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size",
                    "vocab_size", "max_position_embeddings", "type_vocab_size")
            missing = [k for k in keys if k not in raw]
            if missing:
                raise ValueError(f"{config_file} lacks {', '.join(missing)} (not a BERT-like config)")
            config = SimpleNamespace(**{k: raw[k] for k in keys})
        else:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(resolved)
        return TeacherDims.from_config(config), Vocab.from_config(config)
    except (OSError, ValueError, AttributeError, ImportError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"teacher.source {source!r}: cannot read the teacher's config ({msg})") from None


def _bands(bands, where: str):
    """``null`` or a list of ``[low, high]`` fractions (float(): DVC writes small floats back as 5e-05, which
    YAML 1.1 reads as a string)."""
    if bands is None:
        return None
    try:
        if not isinstance(bands, list) or not all(isinstance(b, list) and len(b) == 2 for b in bands):
            raise ValueError
        return [[float(x) for x in b] for b in bands]
    except (TypeError, ValueError):
        raise InputError(f"{where} must be null or a list of [low, high] fractions, got {bands!r}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="partition/subspaces.json")
    ap.add_argument("--metrics", default="metrics/partition.json")
    args = ap.parse_args()

    params = load_params(args.params)
    src = args.params

    def get(key, default=...):
        return param(params, f"partition.{key}", source=src) if default is ... else \
            param(params, f"partition.{key}", default, source=src)

    p = param(params, "partition", source=src)
    if not isinstance(p, dict):
        raise InputError(f"{src}: 'partition' must be a mapping")
    mode = get("mode")
    names = get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise InputError(f"{src}: partition.names must be a non-empty list of sub-space names, got {names!r}")
    convention = get("convention", "stock")
    seq_len = get("seq_len", 128)
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise InputError(f"{src}: partition.seq_len must be a positive integer, got {seq_len!r}")
    k = get("k", None)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InputError(f"{src}: partition.k must be a positive integer, got {k!r}")
    source = str(param(params, "teacher.source", source=src))

    from autodistil import partition as part
    from autodistil.space import SearchSpaceError

    teacher, vocab = _teacher(source)
    t0 = time.perf_counter()
    settings: dict = {"k": k}
    try:
        if mode == "explicit":
            grids = get("grids")
            if not isinstance(grids, dict) or not grids:
                raise InputError(f"{src}: partition.grids must map each sub-space name to its grid "
                                 f"({', '.join(DIMS)}), got {grids!r}")
            if k is not None and k != len(grids):
                raise InputError(f"{src}: partition.k={k} but partition.grids has {len(grids)} sub-spaces "
                                 f"{list(grids)}")
            subs = part.explicit_partition(grids, convention, teacher)
        elif mode == "auto":
            if k is None:
                raise InputError(f"{src}: missing key 'partition.k' (the number of sub-spaces, auto mode)")
            auto = get("auto", {}) or {}
            if not isinstance(auto, dict):
                raise InputError(f"{src}: partition.auto must be a mapping, got {auto!r}")
            unknown = sorted(set(auto) - {"measure", "bands", "values", "floors", "min_candidates", "tolerance",
                                          "prefer"})
            if unknown:
                raise InputError(f"{src}: unknown keys under partition.auto: {unknown}")
            for key in ("values", "floors"):
                if auto.get(key) is not None and not isinstance(auto[key], dict):
                    raise InputError(f"{src}: partition.auto.{key} must map {', '.join(DIMS)} to numbers")
                bad = sorted(set(auto.get(key) or {}) - set(DIMS))
                if bad:
                    raise InputError(f"{src}: partition.auto.{key} has unknown dimensions {bad}; expected {DIMS}")
            bands = _bands(auto.get("bands"), f"{src}: partition.auto.bands")
            measure = auto.get("measure", "nonembed_params")
            prefer = auto.get("prefer", "depth")
            if prefer not in part.PREFER:
                raise InputError(f"{src}: partition.auto.prefer must be one of {list(part.PREFER)}, got {prefer!r}")
            if measure not in part.MEASURES:
                raise InputError(f"{src}: partition.auto.measure must be one of {list(part.MEASURES)}, got {measure!r}")
            settings.update({
                "measure": measure,
                "bands": bands if bands is not None else [list(b) for b in part.default_bands(k, measure)],
                "values": {**part.DEFAULT_VALUES, **(auto.get("values") or {})},
                "floors": {**part.DEFAULT_FLOORS, **(auto.get("floors") or {})},
                "min_candidates": auto.get("min_candidates", 8),
                "prefer": prefer,
            })
            subs = part.auto_partition(
                teacher, k, names=part.default_names(k) if len(names) != k else names,
                bands=bands, measure=measure, values=auto.get("values"), convention=convention,
                floors=auto.get("floors"), min_candidates=int(auto.get("min_candidates", 8)),
                tolerance=float(auto.get("tolerance", 0.15)), vocab=vocab, seq_len=seq_len, prefer=prefer)
        elif mode == "band":
            if k is None:
                raise InputError(f"{src}: missing key 'partition.k' (the number of sub-spaces, band mode)")
            band = get("band", {}) or {}
            if not isinstance(band, dict) or sorted(set(band) - {"bands", "floors"}):
                raise InputError(f"{src}: partition.band must be a mapping with bands and floors, got {band!r}")
            bands = _bands(band.get("bands"), f"{src}: partition.band.bands")
            floors = band.get("floors") or {}
            if not isinstance(floors, dict) or sorted(set(floors) - set(DIMS)):
                raise InputError(f"{src}: partition.band.floors must map some of {', '.join(DIMS)} to fractions")
            settings.update({"bands": bands if bands is not None else [list(b) for b in part.BAND_BANDS],
                             "floors": {**part.DEFAULT_FLOORS, **floors}})
            subs = part.band_partition(teacher, k, names=names if len(names) == k else None, bands=bands,
                                       convention=convention, floors=floors, seq_len=seq_len)
        else:
            raise InputError(f"{src}: partition.mode must be 'band', 'auto' or 'explicit', got {mode!r}")
        produced = [s.name for s in subs]
        if produced != names:
            raise InputError(f"{src}: partition.names {names} does not match the sub-spaces produced {produced}; "
                             f"set partition.names: {produced} (DVC iterates over that list)")
        doc = part.subspaces_document(subs, teacher, source, convention, seq_len, vocab, mode, settings)
    except SearchSpaceError as e:
        raise InputError(f"{src}: partition ({mode}): {e}") from None
    seconds = round(time.perf_counter() - t0, 3)

    from autodistil.io import atomic_write_json
    from autodistil.tracking import log_metrics, stage_run, write_metrics

    metrics = {
        "mode": mode,
        "convention": convention,
        "k": len(subs),
        "teacher_params_paper": doc["teacher"]["params_paper"],
        "teacher_gflops_paper": doc["teacher"]["gflops_paper"],
        "subspaces": {
            name: {
                "candidates": d["candidates"],
                "skipped": d["skipped"],
                "params_paper_min": d["params_paper"][0],
                "params_paper_max": d["params_paper"][1],
                "gflops_paper_min": d["gflops_paper"][0],
                "gflops_paper_max": d["gflops_paper"][1],
                "params_frac_min": d["params_frac"][0],
                "params_frac_max": d["params_frac"][1],
                "nonembed_params_frac_min": d["nonembed_params_frac"][0],
                "nonembed_params_frac_max": d["nonembed_params_frac"][1],
                "gflops_exact_min": d["gflops_exact"][0],
                "gflops_exact_max": d["gflops_exact"][1],
                "gflops_exact_frac_min": d["gflops_exact_frac"][0],
                "gflops_exact_frac_max": d["gflops_exact_frac"][1],
            }
            for name, d in doc["subspaces"].items()
        },
        "candidates_total": sum(d["candidates"] for d in doc["subspaces"].values()),
        "seconds": seconds,
    }
    logged = {"teacher": params.get("teacher", {}), "partition": p}
    with stage_run("partition", logged, param(params, "mlflow.experiment", default="autodistil")) as run:
        atomic_write_json(args.out, doc)
        log_metrics({k_: v for k_, v in metrics.items() if k_ not in ("mode", "convention")})
        write_metrics(args.metrics, metrics, run)
        import mlflow

        mlflow.log_dict(doc, "subspaces.json")
    for name, d in doc["subspaces"].items():
        print(f"partition: {name}: L{d['layers']} A{d['heads']} H{d['hidden']} R{d['mlp_ratio']}: "
              f"{d['candidates']} candidates ({d['skipped']} skipped), "
              f"{d['params_paper'][0] / 1e6:.2f}-{d['params_paper'][1] / 1e6:.2f} M params, "
              f"{d['gflops_exact'][0]:.3f}-{d['gflops_exact'][1]:.3f} GFLOPs "
              f"({100 * d['gflops_exact_frac'][0]:.1f}-{100 * d['gflops_exact_frac'][1]:.1f} % of the teacher's)")
    print(f"partition: {mode}, {convention}, K={len(subs)}, teacher {source}, {seconds} s")


if __name__ == "__main__":
    run_main(main)
