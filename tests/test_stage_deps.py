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


def _imported_modules(path: Path) -> set[str]:
    """Names of the package modules one file imports (absolute or relative, anywhere in the file)."""
    in_package = path.parent == PACKAGE
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "autodistil":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and in_package:
                parts = ["autodistil", *module.split(".")] if module else ["autodistil"]
            elif node.level == 0:
                parts = module.split(".")
            else:
                continue
            if parts[0] != "autodistil":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from autodistil import x: x may be a module or a name of __init__
                found.add("__init__")
                found.update(a.name for a in node.names if (PACKAGE / f"{a.name}.py").is_file())
    if found:
        found.add("__init__")  # importing any submodule runs the package's __init__ first
    return found


def module_closure(script: Path) -> set[str]:
    """Every package module a script executes, as paths relative to the repository root."""
    todo, seen = list(_imported_modules(script)), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imported_modules(PACKAGE / f"{name}.py"))
    return {f"src/autodistil/{name}.py" for name in seen}


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
        needed |= {f"src/autodistil/{module}.py"} | module_closure(PACKAGE / f"{module}.py")
    listed = {d for d in deps if d.startswith("src/autodistil/")}
    assert not needed - listed, f"{name}: imports but does not depend on {sorted(needed - listed)}"
    assert not listed - needed, f"{name}: depends on modules it never imports {sorted(listed - needed)}"


def test_closure_sees_nested_and_relative_imports():
    # finetune.py imports .glue inside a function; glue imports .io; any import runs __init__, which
    # imports the custom model class
    closure = module_closure(REPO / "stages" / "finetune.py")
    for module in ("finetune", "glue", "io", "__init__", "modeling_autodistil_bert"):
        assert f"src/autodistil/{module}.py" in closure
