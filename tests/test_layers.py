"""The package's layers: every import points down, and starting up stays light.

cli -> chat -> display -> graphs -> (training | server) -> agents -> (tools | checks | memory)
-> runtime -> files -> (errors, paths). A module may import its own package and any package
below it; siblings know nothing of each other. Imports inside functions count too: a
lazy import that goes up is still a dependency that goes up.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "chorus"
LAYERS = [
    {"errors", "paths"},
    {"files"},
    {"runtime"},
    {"tools", "checks", "memory"},
    {"agents"},
    {"training", "server"},
    {"graphs"},
    {"display"},
    {"chat"},
    {"cli"},
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def _part(module: str) -> str | None:
    """'chorus.runtime.model' -> 'runtime'; the package root itself has no layer."""
    names = module.split(".")
    if names[0] != "chorus" or len(names) < 2:
        return None
    return names[1]


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _part(_module_name(path))
        if here is None:
            continue
        if here not in LEVEL:
            problems.append(f"{path}: package 'chorus.{here}' has no layer in this test")
            continue
        for line, target in _imports(path):
            there = _part(target)
            if there is None or there == here:
                continue
            if there not in LEVEL:
                problems.append(f"{path}:{line}: imports unknown package {target}")
            elif LEVEL[there] > LEVEL[here]:
                problems.append(f"{path}:{line}: {here} imports {target}, a layer above it")
            elif LEVEL[there] == LEVEL[here]:
                problems.append(f"{path}:{line}: {here} imports its sibling {target}")
    return problems


def test_every_import_points_down():
    assert _violations() == []


def test_the_check_sees_an_import_that_goes_up(tmp_path, monkeypatch):
    """The test itself: a module of runtime importing graphs is reported."""
    fake = tmp_path / "chorus"
    (fake / "runtime").mkdir(parents=True)
    (fake / "runtime" / "bad.py").write_text(
        "def f():\n    from chorus.graphs import GraphRunner\n")
    (fake / "runtime" / "good.py").write_text("from chorus.errors import ChorusError\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    problems = _violations()
    assert len(problems) == 1
    assert "bad.py:2: runtime imports chorus.graphs, a layer above it" in problems[0]


@pytest.mark.parametrize("module", ["chorus", "chorus.cli.main", "chorus.graphs",
                                    "chorus.agents", "chorus.tools", "chorus.checks"])
def test_importing_does_not_load_torch(module):
    """Commands that never touch the model start without torch, transformers or peft."""
    code = (f"import sys, {module}\n"
            "heavy = sorted({'torch', 'transformers', 'peft'} & set(sys.modules))\n"
            "print(','.join(heavy))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""


def test_a_tool_call_imports_only_what_it_uses():
    """`chorus call` (the CLI and the calling service) starts without the format checks,
    the refinement repository and the built-in tools, which only other commands use."""
    code = ("import sys, chorus.cli.main, chorus.agents.calling, chorus.tools\n"
            "unused = {'chorus.checks', 'chorus.memory.refinements', 'chorus.tools.builtin'}\n"
            "print(','.join(sorted(unused & set(sys.modules))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""
    built_in = subprocess.run([sys.executable, "-c", "from chorus.tools import calculator\n"
                               "print(calculator.name)"], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert built_in == "calculator"
