"""Test databases: every one is built by running the real alembic migrations.

`database_url` runs each test on SQLite and, when REPTREND_TEST_POSTGRES_URL is set, on
PostgreSQL too, each in a fresh schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.database import create_engine, normalize_url
from store.schema import upgrade

POSTGRES_ENV = "REPTREND_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"{POSTGRES_ENV} is not set: PostgreSQL store tests skipped"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def postgres_base_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def _with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def scratch_postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new, empty schema, dropped afterwards."""
    base = postgres_base_url()
    if base is None:
        pytest.skip(POSTGRES_SKIP)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_search_path(normalize_url(base), schema)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with scratch_postgres_schema() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'reptrend.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend (not migrated)."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file built by the real migrations, copied for each test that needs it."""
    template = tmp_path_factory.mktemp("template") / "reptrend.db"
    upgrade(f"sqlite:///{template}")
    return template


@pytest.fixture
def migrated_url(database_url: str, request: pytest.FixtureRequest) -> str:
    if database_url.startswith("sqlite:///"):
        template: Path = request.getfixturevalue("migrated_sqlite_template")
        shutil.copyfile(template, database_url.removeprefix("sqlite:///"))
    else:
        upgrade(database_url)
    return database_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = create_engine(migrated_url)
    yield engine
    engine.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many PostgreSQL tests ran, so CI shows the real database was exercised."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in counts:
        for report in terminalreporter.stats.get(outcome, []):
            if "postgres" in getattr(report, "keywords", {}) and report.when in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                counts[outcome] += 1
    terminalreporter.write_line(
        f"PostgreSQL tests: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped"
    )
