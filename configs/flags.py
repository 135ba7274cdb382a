"""Turn a profile (a partial params.yaml, e.g. configs/paper.yaml) into ``dvc exp run`` overrides.

    dvc exp run -n paper $(python configs/flags.py configs/paper.yaml)

Prints ``-S ++<dotted.key>=<value>`` for every leaf of the profile (``++`` adds the key if params.yaml lacks
it and overrides it otherwise; nested mappings are merged leaf by leaf, lists replaced whole, and the mappings
named by the user's sub-spaces and students, ``search.budgets``, ``search.students`` and ``partition.grids``,
replaced whole: ``-S ~key`` first). Keys that
params.yaml does not have are reported on stderr: a stage would silently ignore a misspelt knob.
Values are written in the override grammar without spaces, so the shell's word splitting keeps each flag
whole; a string value with whitespace is an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def _value(v, key: str) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if not v or any(c.isspace() for c in v) or any(c in v for c in ",[]{}:='\"\\"):
            raise SystemExit(f"error: {key}: string {v!r} cannot be passed as one shell word; set it in params.yaml")
        return v
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x, key) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_value(x, key)}" for k, x in v.items()) + "}"
    raise SystemExit(f"error: {key}: unsupported value {v!r}")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--params", default="params.yaml", help="the base params file, to report unknown keys")
    args = ap.parse_args()
    profile = yaml.safe_load(Path(args.profile).read_text(encoding="utf-8"))
    if not isinstance(profile, dict):
        raise SystemExit(f"error: {args.profile}: expected a mapping at the top level")
    base = yaml.safe_load(Path(args.params).read_text(encoding="utf-8")) if Path(args.params).exists() else None
    out, unknown = flags(profile, base if isinstance(base, dict) else None)
    for key in unknown:
        print(f"warning: {args.profile}: '{key}' is not in {args.params} (no stage reads it yet?)", file=sys.stderr)
    print(" ".join(out))


if __name__ == "__main__":
    main()
