"""A partial params file (a profile such as configs/paper.yaml, or an ablation arm) as ``dvc exp run -S`` overrides.

``++<dotted.key>=<value>`` for every leaf (``++`` adds the key if params.yaml lacks it and overrides it otherwise;
nested mappings are merged leaf by leaf, lists replaced whole, and the mappings named by the user's sub-spaces and
students, ``search.budgets``, ``search.students`` and ``partition.grids``, replaced whole: ``-S ~key`` first).
Values are written in the override grammar without spaces, so that a shell's word splitting keeps each flag whole;
a string value with whitespace is an error.
"""

from __future__ import annotations

from .io import InputError


def _value(v, key: str) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if not v or any(c.isspace() for c in v) or any(c in v for c in ",[]{}:='\"\\"):
            raise InputError(f"{key}: string {v!r} cannot be passed as one shell word; set it in params.yaml")
        return v
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x, key) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_value(x, key)}" for k, x in v.items()) + "}"
    raise InputError(f"{key}: unsupported value {v!r}")


# Mappings keyed by the user's own names (sub-spaces, students): a profile's replaces the default's whole, so that
# a default student (or a default budget's fraction) never survives beside the profile's.
REPLACED_WHOLE = ("search.budgets", "search.students", "partition.grids")


def flags(profile: dict, base: dict | None = None, prefix: str = "") -> tuple[list[str], list[str]]:
    """(``-S`` flag list, keys absent from ``base``)."""
    out, unknown = [], []
    for key, value in profile.items():
        name = f"{prefix}{key}"
        inner = base.get(key) if isinstance(base, dict) else None
        if isinstance(base, dict) and key not in base:
            unknown.append(name)
        if name in REPLACED_WHOLE and isinstance(value, dict):
            out += ["-S", f"~{name}"]  # removed first (Hydra's delete), then written leaf by leaf
            out += flags(value, None, f"{name}.")[0]
        elif isinstance(value, dict) and value:
            # an empty mapping in params.yaml (e.g. partition.grids: {}) is free-form: its children are not checked
            sub_base = inner if isinstance(inner, dict) and inner else None
            sub_flags, sub_unknown = flags(value, sub_base, f"{name}.")
            out += sub_flags
            if isinstance(base, dict) and key in base:
                unknown += sub_unknown
        else:
            out += ["-S", f"++{name}={_value(value, name)}"]
    return out, unknown
