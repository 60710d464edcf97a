"""The package's import graph (module-level and in-function imports) has no circle, and library
code never imports a command module."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
COMMANDS = {"runbook.cli", "runbook.audit_cli", "runbook.sandbox.commands", "runbook.backends.commands",
            "runbook.__main__", "runbook.tasks"}


def modules(package: str) -> dict[str, Path]:
    base = REPO / package
    out = {}
    for path in base.rglob("*.py"):
        if "template" in path.relative_to(base).parts:
            continue                     # the files `init` writes into a new project: data, not the engine
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``name`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph(*packages: str) -> dict[str, set[str]]:
    mods: dict[str, Path] = {}
    for p in packages:
        mods.update(modules(p))
    known = set(mods)
    return {m: {t for t in imports_of(m, p, known) if not m.startswith(t + ".")} for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_engine_package_has_no_import_circle() -> None:
    assert cycles(graph("runbook")) == []


def test_the_reliability_modules_import_one_way() -> None:
    assert cycles(graph("reliability")) == []


def test_library_code_never_imports_a_command_module() -> None:
    g = graph("runbook")
    offenders = {m: sorted(t for t in targets if t in COMMANDS) for m, targets in g.items() if m not in COMMANDS}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_no_module_over_600_lines_and_no_class_over_25_methods() -> None:
    """The rooms stay small (issue #25): a module that grows past 600 lines, or a class past 25
    methods, is split along its seams before it grows further."""
    big, wide = [], []
    for name, path in modules("runbook").items():
        text = path.read_text()
        if text.count("\n") > 600:
            big.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                count = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in node.body)
                if count > 25:
                    wide.append(f"{name}.{node.name}: {count} methods")
    assert big == [] and wide == []
