"""The dependency rule: `domain/` imports only the standard library (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
FORBIDDEN = {
    "fastapi",
    "sqlmodel",
    "sqlalchemy",
    "polars",
    "fhir",
    "fhir_core",
    "pydantic",
    "psycopg",
    "httpx",
    "starlette",
    "orjson",
}


def _imported_top_level_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_domain_imports_no_framework_database_dataframe_or_fhir_library() -> None:
    sources = sorted(DOMAIN.rglob("*.py"))
    assert len(sources) >= 7, f"domain/ not found at {DOMAIN}"
    offenders = {
        str(source.relative_to(DOMAIN.parent)): sorted(
            _imported_top_level_modules(source) & FORBIDDEN
        )
        for source in sources
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_domain_imports_only_the_standard_library_and_itself() -> None:
    allowed = set(sys.stdlib_module_names) | {"domain", "__future__"}
    imported = set().union(*(_imported_top_level_modules(s) for s in DOMAIN.rglob("*.py")))
    assert imported, "no import found: the walk is broken"
    assert imported - allowed == set()
