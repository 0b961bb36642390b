"""The house rules on size and documentation, for the package, the tests and the tools:
modules of at most 400 lines, functions of at most 80, a docstring at the top of every
module, and no reference to a document that is not in the repository (a user's checkout
has only what is in it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("zoomviewer", "tests", "tools") for p in (ROOT / folder).rglob("*.py"))
C_SOURCES = sorted((ROOT / "zoomviewer").rglob("*.c"))
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", SOURCES + C_SOURCES, ids=rel)
def test_modules_are_at_most_400_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{rel(path)} has {lines} lines: split it by job"


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_functions_are_at_most_80_lines(path):
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{rel(path)}: {', '.join(long)}"


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "__init__.py" or p.stat().st_size], ids=rel)
def test_every_module_says_what_lives_there(path):
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{rel(path)} has no module docstring"


DOCUMENT = re.compile(r"[\w./-]*\b[\w-]+\.md\b")


@pytest.mark.parametrize("path", SOURCES + C_SOURCES + [ROOT / "README.md"], ids=rel)
def test_every_document_cited_is_in_the_repository(path):
    cited = set(DOCUMENT.findall(path.read_text(encoding="utf-8")))
    missing = sorted(c for c in cited if not (ROOT / c).is_file() and not c.startswith(("http", "../shared")))
    assert not missing, f"{rel(path)} cites {missing}, which the repository does not have (cite docs/...)"
