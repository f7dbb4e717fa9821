"""`reptrend reindex` rebuilds the search index from the stored resources."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cli.main import main
from tests.integration.test_search_store import delete, ids, patient, write


def _rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_reindex_rebuilds_lost_and_stale_rows_from_the_stored_bodies(
    engine: Engine,
    migrated_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write(engine, patient("peter", "Peter"), patient("ann", "Ann"), patient("gone", "Gone"))
    write(engine, patient("other", "Peter"), tenant="clinic-b")
    delete(engine, "Patient", "gone")
    indexed = {table: _rows(engine, table) for table in ("search_string", "search_token")}
    with engine.begin() as connection:
        # Rows as an older release left them: folded text only, and a token row lost.
        connection.execute(sa.text("UPDATE search_string SET exact = value"))
        connection.execute(sa.text("DELETE FROM search_token"))
    assert ids(engine, "Patient", "family:exact=Peter") == set()

    monkeypatch.setenv("REPTREND_DATABASE_URL", migrated_url)
    assert main(["reindex"]) == 0

    assert capsys.readouterr().out.splitlines() == [
        "clinic-b: 1 resources reindexed",
        "default: 2 resources reindexed",
    ]
    assert {table: _rows(engine, table) for table in indexed} == indexed
    assert ids(engine, "Patient", "family:exact=Peter") == {"peter"}
    assert ids(engine, "Patient", "family:exact=Peter", tenant="clinic-b") == {"other"}


def test_reindex_refuses_an_unknown_type(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPTREND_DATABASE_URL", migrated_url)
    assert main(["reindex", "--type", "Spaceship"]) == 2
