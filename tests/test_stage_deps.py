"""Every DVC stage lists as deps the package modules its script runs, so editing one re-runs the stage.

The closure is computed from the source (every ``autodistil`` import, at any depth, in functions too, plus the
package ``__init__`` that any such import executes); a stage that forgets one, or lists one it never runs,
fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PACKAGE = REPO / "src" / "autodistil"


def _files_run(parts: list[str]) -> set[str]:
    """The package files importing ``autodistil.<parts...>`` runs (paths under the package): every package's
    ``__init__.py`` on the way down, then the module itself. Names that are no module (a class imported from a
    package's ``__init__``) end the walk."""
    files = {"__init__.py"}
    for i in range(1, len(parts) + 1):
        rel = "/".join(parts[:i])
        if (PACKAGE / rel).is_dir():
            files.add(f"{rel}/__init__.py")
        elif (PACKAGE / f"{rel}.py").is_file():
            files.add(f"{rel}.py")
            break
        else:
            break
    return files


def _imported_modules(path: Path) -> set[str]:
    """The package files one file runs by its imports (absolute or relative, anywhere in the file, subpackages
    included), as paths under the package."""
    inside = PACKAGE in path.parents
    here = list(path.parent.relative_to(PACKAGE).parts) if inside else []
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "autodistil":
                    found |= _files_run(parts[1:])
        elif isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level and inside:
                parts = here[:len(here) - (node.level - 1)] + module
            elif node.level == 0 and module[:1] == ["autodistil"]:
                parts = module[1:]
            else:
                continue
            found |= _files_run(parts)
            for alias in node.names:  # from autodistil(.pkg) import x: x may be a module
                found |= _files_run([*parts, alias.name])
    return found


def module_closure(script: Path) -> set[str]:
    """Every package module a script executes, as paths relative to the repository root."""
    todo, seen = list(_imported_modules(script)), set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        todo.extend(_imported_modules(PACKAGE / rel))
    return {f"src/autodistil/{rel}" for rel in seen}


def _stages() -> list[tuple[str, Path, set[str], set[str]]]:
    """(stage, its script, its deps, the package modules its cmd runs with ``python -m``, e.g. the launcher)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    out = []
    for name, stage in spec["stages"].items():
        body = stage.get("do", stage)
        tokens = body["cmd"].split()
        script = next(tok for tok in tokens if tok.startswith("stages/") and tok.endswith(".py"))
        runners = {tok.split(".", 1)[1] for tok in tokens if tok.startswith("autodistil.")}
        deps = {d for d in body.get("deps", []) if isinstance(d, str)}
        out.append((name, REPO / script, deps, runners))
    return out


@pytest.mark.parametrize("name,script,deps,runners", _stages(), ids=[s[0] for s in _stages()])
def test_stage_deps_match_its_imports(name, script, deps, runners):
    assert str(script.relative_to(REPO)) in deps, f"{name}: its own script is not a dep"
    needed = module_closure(script)
    for module in runners:  # `python -m autodistil.launch stages/...`: the launcher runs too
        needed |= {f"src/autodistil/{module}.py", "src/autodistil/__init__.py"} | module_closure(PACKAGE / f"{module}.py")
    listed = {d for d in deps if d.startswith("src/autodistil/")}
    assert not needed - listed, f"{name}: imports but does not depend on {sorted(needed - listed)}"
    assert not listed - needed, f"{name}: depends on modules it never imports {sorted(listed - needed)}"


def test_closure_sees_nested_and_relative_imports():
    # finetune.py imports .glue inside a function; glue imports .io; any import runs __init__, which
    # imports the custom model class
    closure = module_closure(REPO / "stages" / "finetune.py")
    for module in ("finetune", "glue", "io", "__init__", "modeling_autodistil_bert"):
        assert f"src/autodistil/{module}.py" in closure
    # a subpackage: its __init__ and, through it and its own relative imports, every module it runs
    closure = module_closure(REPO / "stages" / "partition.py")
    for module in ("partition/__init__", "partition/band", "partition/lattice", "cost", "space", "teacher"):
        assert f"src/autodistil/{module}.py" in closure
