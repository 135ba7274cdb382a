"""Turn a profile (a partial params.yaml, e.g. configs/paper.yaml) into ``dvc exp run`` overrides.

    dvc exp run -n paper $(python configs/flags.py configs/paper.yaml)

Prints the ``-S`` overrides of :func:`autodistil.overrides.flags` for every leaf of the profile. Keys that
params.yaml does not have are reported on stderr: the first stage would refuse a misspelt knob (autodistil.config).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from autodistil.io import InputError, fail
from autodistil.overrides import flags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--params", default="params.yaml", help="the base params file, to report unknown keys")
    args = ap.parse_args()
    profile = yaml.safe_load(Path(args.profile).read_text(encoding="utf-8"))
    if not isinstance(profile, dict):
        raise SystemExit(f"error: {args.profile}: expected a mapping at the top level")
    base = yaml.safe_load(Path(args.params).read_text(encoding="utf-8")) if Path(args.params).exists() else None
    try:
        out, unknown = flags(profile, base if isinstance(base, dict) else None)
    except InputError as e:
        fail(f"{args.profile}: {e}")
    for key in unknown:
        print(f"warning: {args.profile}: '{key}' is not in {args.params} (every stage refuses an unknown key)", file=sys.stderr)
    print(" ".join(out))


if __name__ == "__main__":
    main()
