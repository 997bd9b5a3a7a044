"""The dashboard's scripts reach the store and the database only through the service.

``app/`` and ``pages/`` are scripts (Streamlit runs them with ``app/`` on the path), not a
package, so the import-linter contracts of ``pyproject.toml`` cannot see them; this test reads
their imports with :mod:`ast` instead, lazy imports inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("app/*.py"), *ROOT.glob("pages/*.py")])
FORBIDDEN = ("allocator.store", "allocator.db")


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from allocator import store` imports the package too
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def forbidden_imports(source: str) -> list[str]:
    """``line: module`` for every import of the store or the database packages in ``source``."""
    return [
        f"{line}: {name}"
        for line, name in _imported_modules(ast.parse(source))
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]


def test_there_are_scripts_to_check():
    names = {p.name for p in SCRIPTS}
    assert {"state.py", "auth.py", "publish.py", "streamlit_app.py"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_reach_the_store_only_through_the_service(path: Path):
    assert forbidden_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "from allocator.store.base import RunStore",
        "import allocator.db.embedded",
        "from allocator import store",
        "def f():\n    from allocator.store.supabase import SupabaseStore\n",
    ],
)
def test_the_check_finds_a_direct_import(source: str):
    assert forbidden_imports(source) != []


def test_the_check_lets_the_service_through():
    assert forbidden_imports("from allocator import service\nfrom allocator.service import RunStore") == []


def test_auth_and_state_do_not_import_each_other():
    def imports(name: str) -> set[str]:
        tree = ast.parse((ROOT / "app" / name).read_text(encoding="utf-8"))
        return {module.split(".")[0] for _, module in _imported_modules(tree)}

    assert "auth" not in imports("state.py")
