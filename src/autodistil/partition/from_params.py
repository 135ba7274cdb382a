"""params.yaml's ``partition`` section -> the sub-spaces and their document, every value checked first."""

from __future__ import annotations

from ..config import Params
from ..cost import Vocab
from ..space import SearchSpaceError, SubSpace, TeacherDims
from .auto import DEFAULT_VALUES, auto_partition
from .band import band_bands, band_partition
from .document import subspaces_document
from .explicit import explicit_partition
from .lattice import DEFAULT_FLOORS, default_bands, default_names



def teacher_shape(source: str) -> tuple[TeacherDims, Vocab]:
    """The teacher's dims and vocabulary, from its config alone (:func:`autodistil.teacher.shape_config`)."""
    from ..teacher import shape_config

    config = shape_config(source)
    return TeacherDims.from_config(config), Vocab.from_config(config)


def partition_from_params(params: Params, src: str = "params.yaml") -> tuple[list[SubSpace], dict]:
    """The sub-spaces that params' checked ``partition`` section asks for, and the partition/subspaces.json document
    that describes them, for the teacher of ``params.teacher.source`` (its config only). The sub-spaces produced
    must be ``partition.names``, which DVC iterates over."""
    from ..io import InputError

    p, source = params.partition, params.teacher.source
    teacher, vocab = teacher_shape(source)  # the config only
    if p.convention == "fixed_head":  # refused here, not after SuperLM training, at export
        from ..teacher import teacher_config

        model_type = teacher_config(source).get("model_type")
        if model_type != "bert":
            raise InputError(f"{src}: partition.convention: fixed_head students are BERT models only; the teacher "
                             f"{source!r} is a {model_type!r} model (use convention: stock)")
    settings: dict = {"k": p.k}
    try:
        if p.mode == "explicit":
            subs = explicit_partition(p.grids, p.convention, teacher)
        elif p.mode == "auto":
            auto = p.auto
            settings.update({
                "measure": auto.measure,
                "bands": auto.bands if auto.bands is not None else [list(b) for b in default_bands(p.k, auto.measure)],
                "values": {**DEFAULT_VALUES, **auto.values},
                "floors": {**DEFAULT_FLOORS, **auto.floors},
                "min_candidates": auto.min_candidates,
                "prefer": auto.prefer,
            })
            subs = auto_partition(
                teacher, p.k, names=default_names(p.k) if len(p.names) != p.k else p.names,
                bands=auto.bands, measure=auto.measure, values=auto.values or None, convention=p.convention,
                floors=auto.floors or None, min_candidates=auto.min_candidates, tolerance=auto.tolerance,
                vocab=vocab, seq_len=p.seq_len, prefer=auto.prefer)
        else:  # band
            band = p.band
            settings.update({"bands": band.bands if band.bands is not None else [list(b) for b in band_bands(p.k)],
                             "floors": {**DEFAULT_FLOORS, **band.floors}})
            subs = band_partition(teacher, p.k, names=p.names if len(p.names) == p.k else None, bands=band.bands,
                                  convention=p.convention, floors=band.floors, seq_len=p.seq_len)
        produced = [s.name for s in subs]
        if produced != p.names:
            raise InputError(f"{src}: partition.names {p.names} does not match the sub-spaces produced {produced}; "
                             f"set partition.names: {produced} (DVC iterates over that list)")
        doc = subspaces_document(subs, teacher, source, p.convention, p.seq_len, vocab, p.mode, settings)
    except SearchSpaceError as e:
        raise InputError(f"{src}: partition ({p.mode}): {e}") from None
    return subs, doc
