"""Start-up cost of each stage: the seconds a fresh Python process spends importing what the stage needs.

    python bench/startup.py [--repeats 3] [--tree PATH ...] [--stages NAME ...] [--importtime] [--deep] [--json PATH]

For each stages/<name>.py, every ``import`` and ``from ... import`` in the file, found with :mod:`ast` at any
depth (the stages import their heavy modules inside ``main``, some only on one branch: all of them are counted,
so this is the stage's normal path with every branch taken), is run in a fresh ``python -c`` child, with

- ``import s``: :func:`time.perf_counter` around the imports, inside the child (the imports alone);
- ``process s``: the child's whole wall time, seen from the parent (interpreter start, site, imports, exit).

``python -c pass`` is the floor of the second. Each figure is the median over ``--repeats``. Each ``--tree`` is a
checkout (e.g. ``git worktree add /tmp/base <commit>``): its stages are read from ``<tree>/stages`` and its own
package is imported (``PYTHONPATH=<tree>/src``, ahead of the editable install), with the child in
``<tree>/stages`` as ``python stages/<name>.py`` would put it on ``sys.path``. Trees are measured interleaved
(each repeat, each stage, each tree; the trees' order flipped every other repeat) so that before and after
share the machine's noise; the ratio columns are each tree over the first. Before timing, one untimed child per
tree imports everything once: it writes the tree's ``.pyc`` files and warms the page cache, so a fresh worktree
is not charged for compiling.

``--importtime`` adds one ``-X importtime`` child per stage and tree (not timed with the others: the tracing
slows it) and lists the 8 packages that cost most: each module's self time summed over its top-level package,
so that torch imported by transformers counts as torch, not as transformers.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP = 8


def stage_imports(path: Path) -> list[str]:
    """The file's import statements, in source order, each on one line, without duplicates."""
    nodes = [n for n in ast.walk(ast.parse(path.read_text(), str(path)))
             if isinstance(n, ast.Import) or (isinstance(n, ast.ImportFrom) and n.module != "__future__")]
    nodes.sort(key=lambda n: (n.lineno, n.col_offset))
    return list(dict.fromkeys(ast.unparse(n) for n in nodes))


def deep_imports(path: Path, package: Path) -> list[str]:
    """``--deep``: the stage's imports and, followed through every ``autodistil`` module it reaches, theirs, at any
    depth (in functions too), as absolute ``import <module>`` lines: the upper bound of what the stage's path can
    import (every branch of the library taken), where :func:`stage_imports` is the lower bound (the library's
    function-level imports left out)."""
    todo, seen, modules = [path], set(), []
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        inside = package in f.parents
        parts = ["autodistil", *f.relative_to(package).with_suffix("").parts] if inside else []
        here = parts[:-1] if parts and parts[-1] != "__init__" else parts[:-1]  # the module's package
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names, attributes = [a.name for a in node.names], []
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                base = (here[:len(here) - node.level + 1] if node.level else []) + (node.module or "").split(".")
                base = ".".join(b for b in base if b)
                names, attributes = [base], [f"{base}.{a.name}" for a in node.names]  # an attribute, or a module
            else:
                continue
            for name in names + attributes:
                if not name.startswith("autodistil"):
                    if name in names:
                        modules.append(name)
                    continue
                rel = Path(*name.split(".")[1:])
                for candidate in ((package / rel).with_suffix(".py") if rel.parts else None, package / rel / "__init__.py"):
                    if candidate is not None and candidate.is_file():
                        todo.append(candidate)
                        modules.append(name)
    return [f"import {m}" for m in dict.fromkeys(modules)]


def child_code(imports: list[str]) -> str:
    return "\n".join(["import time as _t", "_t0 = _t.perf_counter()", *imports, "print(_t.perf_counter() - _t0)"])


def warm_code(imports: list[str]) -> str:
    """Every import, each allowed to fail: the warm-up must not stop at one stage that does not import."""
    return "\n".join(f"try:\n    {line}\nexcept Exception:\n    pass" for line in imports)


def run_child(tree: Path | None, code: str, importtime: bool = False) -> dict:
    env, cwd = dict(os.environ), None
    if tree is not None:
        env["PYTHONPATH"], cwd = str(tree / "src"), tree / "stages"
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", code]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        return {"error": lines[-1], "process_s": wall}
    out = {"process_s": wall, "stderr": proc.stderr}
    if proc.stdout.strip():
        out["import_s"] = float(proc.stdout.strip().splitlines()[-1])
    return out


def top_packages(importtime_stderr: str, n: int = TOP) -> list[tuple[str, float]]:
    """Self time (s) summed per top-level package, from ``-X importtime`` lines ``self | cumulative | name``."""
    per = defaultdict(int)
    for line in importtime_stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header
        per[fields[2].strip().split(".")[0]] += int(fields[0])
    return [(name, us / 1e6) for name, us in sorted(per.items(), key=lambda kv: -kv[1])[:n]]


def commit_of(tree: Path) -> str | None:
    proc = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or None


def measure(trees: list[Path], repeats: int, only: list[str] | None, importtime: bool, deep: bool = False) -> dict:
    collect = (lambda p, t: deep_imports(p, t / "src" / "autodistil")) if deep else (lambda p, t: stage_imports(p))
    imports = {str(t): {p.stem: collect(p, t) for p in sorted((t / "stages").glob("*.py"))} for t in trees}
    stages = sorted({s for per in imports.values() for s in per})
    if only:
        stages = [s for s in stages if s in only]
    for t in trees:  # untimed: .pyc files and page cache
        run_child(t, warm_code(list(dict.fromkeys(line for s in stages for line in imports[str(t)].get(s, [])))))

    floor: list[float] = []
    cells = {s: {str(t): {"imports": imports[str(t)].get(s), "import_s": [], "process_s": []} for t in trees}
             for s in stages}
    for r in range(repeats):
        floor.append(run_child(None, "pass")["process_s"])
        for s in stages:
            for t in (trees if r % 2 == 0 else trees[::-1]):
                cell = cells[s][str(t)]
                if cell["imports"] is None or "error" in cell:
                    continue  # no such stage in this tree, or it does not import: no point repeating
                got = run_child(t, child_code(cell["imports"]))
                if "error" in got:
                    cell["error"] = got["error"]
                    continue
                cell["import_s"].append(got["import_s"])
                cell["process_s"].append(got["process_s"])
            print(f"repeat {r + 1}/{repeats}: {s}", file=sys.stderr, flush=True)

    for s in stages:
        for t in trees:
            cell = cells[s][str(t)]
            if cell["process_s"]:
                cell["median_import_s"] = statistics.median(cell["import_s"])
                cell["median_process_s"] = statistics.median(cell["process_s"])
            if importtime and cell["imports"] is not None and "error" not in cell:
                got = run_child(t, child_code(cell["imports"]), importtime=True)
                cell["top"] = top_packages(got.get("stderr", ""))

    # Totals over the stages that every tree measured, so that the ratio compares like with like.
    common = [s for s in stages if all("median_process_s" in cells[s][str(t)] for t in trees)]
    totals = {str(t): {key: sum(cells[s][str(t)][key] for s in common)
                       for key in ("median_import_s", "median_process_s")} for t in trees}
    return {"python": sys.version.split()[0], "repeats": repeats, "deep": deep,
            "trees": [{"path": str(t), "commit": commit_of(t)} for t in trees],
            "floor_process_s": floor, "median_floor_process_s": statistics.median(floor),
            "stages": cells, "total_stages": common, "totals": totals}


def ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}" if a and b is not None else "-"


def table(result: dict) -> str:
    trees = [t["path"] for t in result["trees"]]
    head = ["stage", "tree", "median import s", "median process s"]
    if len(trees) > 1:
        head += ["x import", "x process"]
    tops = any("top" in cell for per in result["stages"].values() for cell in per.values())
    if tops:
        head.append("top packages (s, -X importtime)")
    rows = [head, ["---"] * len(head)]

    def row(stage: str, tree: str, cell: dict, first: dict) -> list[str]:
        if "error" in cell:
            out = [stage, tree, "error", cell["error"]]
        elif "median_process_s" not in cell:
            out = [stage, tree, "absent", "absent"]
        else:
            out = [stage, tree, f"{cell['median_import_s']:.2f}", f"{cell['median_process_s']:.2f}"]
        if len(trees) > 1:
            out += ["", ""] if tree == trees[0] else [ratio(first.get(k), cell.get(k))
                                                       for k in ("median_import_s", "median_process_s")]
        if tops:
            out.append(", ".join(f"{name} {s:.2f}" for name, s in cell.get("top", [])))
        return out

    for stage, per in result["stages"].items():
        for tree in trees:
            rows.append(row(stage, tree, per[tree], per[trees[0]]))
    for tree in trees:
        rows.append(row(f"total ({len(result['total_stages'])} stages)", tree, result["totals"][tree],
                        result["totals"][trees[0]]))
    floor = ["python -c pass", "", "", f"{result['median_floor_process_s']:.2f}"]
    rows.append(floor + [""] * (len(head) - len(floor)))
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tree", type=Path, action="append",
                    help="a checkout whose stages to measure (repeatable); default: this repository")
    ap.add_argument("--stages", nargs="+", help="only these stages (names without .py)")
    ap.add_argument("--importtime", action="store_true", help="also list the packages that dominate each stage")
    ap.add_argument("--deep", action="store_true",
                    help="follow the library's own imports, in functions too (the upper bound of a stage's path)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    trees = list(dict.fromkeys(t.resolve() for t in (args.tree or [REPO])))
    for t in trees:
        if not (t / "stages").is_dir():
            ap.error(f"{t} has no stages/ folder")
    result = measure(trees, args.repeats, args.stages, args.importtime, args.deep)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
