"""params.yaml's ``partition`` section -> the sub-spaces and their document, every value checked first."""

from __future__ import annotations

from typing import Mapping

from ..cost import Vocab
from ..space import SearchSpaceError, SubSpace, TeacherDims
from .auto import DEFAULT_VALUES, PREFER, auto_partition
from .band import BAND_BANDS, band_partition
from .document import subspaces_document
from .explicit import explicit_partition
from .lattice import DEFAULT_FLOORS, DIMS, MEASURES, default_bands, default_names



def teacher_shape(source: str) -> tuple[TeacherDims, Vocab]:
    """The teacher's dims and vocabulary, from its config alone (:func:`autodistil.teacher.shape_config`)."""
    from ..teacher import shape_config

    config = shape_config(source)
    return TeacherDims.from_config(config), Vocab.from_config(config)


def parse_bands(bands, where: str):
    """``null`` or a list of ``[low, high]`` fractions (read with :func:`autodistil.io.number`: DVC writes small
    floats back as 5e-05, which YAML 1.1 reads as a string)."""
    from ..io import InputError, number

    if bands is None:
        return None
    try:
        if not isinstance(bands, list) or not all(isinstance(b, list) and len(b) == 2 for b in bands):
            raise ValueError
        return [[number(x) for x in b] for b in bands]
    except (TypeError, ValueError):
        raise InputError(f"{where} must be null or a list of [low, high] fractions, got {bands!r}") from None


def _auto_number(auto: Mapping, key: str, default, kind: type, src: str):
    from ..io import InputError, number

    try:
        return number(auto.get(key, default), kind)
    except (TypeError, ValueError):
        raise InputError(f"{src}: partition.auto.{key} must be {'an integer' if kind is int else 'a number'}, "
                         f"got {auto.get(key)!r}") from None


def partition_from_params(params: Mapping, source: str, src: str = "params.yaml") -> tuple[list[SubSpace], dict]:
    """The sub-spaces that params' ``partition`` section asks for, and the partition/subspaces.json document that
    describes them, for the teacher at ``source`` (its config only). The section's values are checked before the
    teacher's config is read (an :class:`InputError` names the key), and so is that the sub-spaces produced are
    ``partition.names``, which DVC iterates over."""
    from ..io import InputError, param

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
    teacher, vocab = teacher_shape(source)  # the config only
    if convention == "fixed_head":  # refused here, not after SuperLM training, at export
        from ..teacher import teacher_config

        model_type = teacher_config(source).get("model_type")
        if model_type != "bert":
            raise InputError(f"{src}: partition.convention: fixed_head students are BERT models only; the teacher "
                             f"{source!r} is a {model_type!r} model (use convention: stock)")
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
            subs = explicit_partition(grids, convention, teacher)
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
            bands = parse_bands(auto.get("bands"), f"{src}: partition.auto.bands")
            measure = auto.get("measure", "nonembed_params")
            prefer = auto.get("prefer", "depth")
            if prefer not in PREFER:
                raise InputError(f"{src}: partition.auto.prefer must be one of {list(PREFER)}, got {prefer!r}")
            if measure not in MEASURES:
                raise InputError(f"{src}: partition.auto.measure must be one of {list(MEASURES)}, got {measure!r}")
            settings.update({
                "measure": measure,
                "bands": bands if bands is not None else [list(b) for b in default_bands(k, measure)],
                "values": {**DEFAULT_VALUES, **(auto.get("values") or {})},
                "floors": {**DEFAULT_FLOORS, **(auto.get("floors") or {})},
                "min_candidates": auto.get("min_candidates", 8),
                "prefer": prefer,
            })
            subs = auto_partition(
                teacher, k, names=default_names(k) if len(names) != k else names,
                bands=bands, measure=measure, values=auto.get("values"), convention=convention,
                floors=auto.get("floors"), min_candidates=_auto_number(auto, "min_candidates", 8, int, src),
                tolerance=_auto_number(auto, "tolerance", 0.15, float, src), vocab=vocab, seq_len=seq_len,
                prefer=prefer)
        elif mode == "band":
            if k is None:
                raise InputError(f"{src}: missing key 'partition.k' (the number of sub-spaces, band mode)")
            band = get("band", {}) or {}
            if not isinstance(band, dict) or sorted(set(band) - {"bands", "floors"}):
                raise InputError(f"{src}: partition.band must be a mapping with bands and floors, got {band!r}")
            bands = parse_bands(band.get("bands"), f"{src}: partition.band.bands")
            floors = band.get("floors") or {}
            if not isinstance(floors, dict) or sorted(set(floors) - set(DIMS)):
                raise InputError(f"{src}: partition.band.floors must map some of {', '.join(DIMS)} to fractions")
            settings.update({"bands": bands if bands is not None else [list(b) for b in BAND_BANDS],
                             "floors": {**DEFAULT_FLOORS, **floors}})
            subs = band_partition(teacher, k, names=names if len(names) == k else None, bands=bands,
                                       convention=convention, floors=floors, seq_len=seq_len)
        else:
            raise InputError(f"{src}: partition.mode must be 'band', 'auto' or 'explicit', got {mode!r}")
        produced = [s.name for s in subs]
        if produced != names:
            raise InputError(f"{src}: partition.names {names} does not match the sub-spaces produced {produced}; "
                             f"set partition.names: {produced} (DVC iterates over that list)")
        doc = subspaces_document(subs, teacher, source, convention, seq_len, vocab, mode, settings)
    except SearchSpaceError as e:
        raise InputError(f"{src}: partition ({mode}): {e}") from None
    return subs, doc
