"""The package's plan holds: imports only go down the stages, no cycles, no private imports.

Stages, top to bottom: commands → api → timing → html_report/render → analysis →
frontends → layers → ir/errors.
Read with the standard library's ``ast`` over every module of ``analyzer/`` (imports inside
functions count too: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "analyzer"

# The rank of each part of the package: a module may import only parts of a lower rank,
# or modules of its own part. Where a part is a single module, its name is the part.
RANK = {
    "ir": 0, "errors": 0,
    "layers": 1, "frontends": 2,
    "analysis": 3,
    "termtable": 4, "render": 5,  # text renderers; termtable fits a table to a terminal
    "charts": 5, "html_report": 6,  # the HTML report and the SVG charts it draws
    "timing": 7,
    "api": 8,  # the Python API: analysis, render and (with a device) timing
    "commands": 9,
    "__main__": 10,
}
# the package's __init__ re-exports the API lazily (inside __getattr__)
LAZY_EXPORTS = {"analyzer"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def part(module: str) -> str:
    """``analyzer.timing.fit`` → ``timing``; ``analyzer`` → ``analyzer``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every analyzer import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "analyzer":
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names
                    if a.name.split(".")[0] == "analyzer"]
    return out


def resolve(module: str, name: str, known: dict[str, Path]) -> str:
    """``from analyzer.timing import fit`` imports the module ``analyzer.timing.fit``."""
    return f"{module}.{name}" if f"{module}.{name}" in known else module


def edges() -> list[tuple[str, str, str, int]]:
    known = modules()
    out = []
    for mod, path in known.items():
        for target, names, line in imports(path):
            for t in {resolve(target, n, known) for n in names} or {target}:
                out.append((mod, t, path.name, line))
    return out


def test_every_part_of_the_package_has_a_rank():
    assert {part(m) for m in modules()} - set(RANK) == {"analyzer"}


def test_imports_only_go_down_the_stages():
    wrong = []
    for src, dst, _, line in edges():
        a, b = part(src), part(dst)
        if a in LAZY_EXPORTS or b == "analyzer" or a == b:
            continue  # the package root (only __version__), or a module of its own part
        if RANK[b] >= RANK[a]:
            wrong.append(f"{src} (line {line}) imports {dst}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules():
    graph: dict[str, set[str]] = {}
    for src, dst, _, _ in edges():
        if src != "analyzer" and dst != "analyzer":
            graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n] if n in stack else [m, n]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_module_imports_another_modules_private_names():
    known = modules()
    private = [f"{src} (line {line}) imports {dst}.{n}"
               for src, path in known.items()
               for dst, names, line in imports(path)
               for n in names
               if n.startswith("_") and not n.startswith("__") and dst != src]
    assert not private, "\n".join(private)


def test_every_sub_package_says_what_it_holds_and_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in doc.lower(), f"{init} has no docstring saying what it may import"
