"""alembic owns the schema: the migrations build exactly what the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from store.database import create_engine
from store.errors import SchemaNotMigrated
from store.schema import downgrade, require_migrated, upgrade
from store.tables import METADATA


def test_upgrade_head_leaves_nothing_for_autogenerate_to_add(migrated_url: str) -> None:
    engine = create_engine(migrated_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), METADATA)
    engine.dispose()
    assert differences == []


def test_downgrade_base_removes_every_table(migrated_url: str) -> None:
    downgrade(migrated_url, "base")
    engine = create_engine(migrated_url)
    remaining = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    assert remaining == set()


def test_upgrade_after_downgrade_restores_the_schema(migrated_url: str) -> None:
    downgrade(migrated_url, "base")
    upgrade(migrated_url)
    engine = create_engine(migrated_url)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert set(METADATA.tables) <= tables


def test_search_strings_indexed_before_0004_keep_their_text_for_exact(migrated_url: str) -> None:
    downgrade(migrated_url, "0003")
    engine = create_engine(migrated_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO search_string (tenant, type, resource_id, param, value) "
                "VALUES ('default', 'Patient', 'p', 'family', 'peter')"
            )
        )
    upgrade(migrated_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT value, exact FROM search_string")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("peter", "peter")]


def test_an_unmigrated_database_is_refused_with_the_command_to_run(database_url: str) -> None:
    engine = create_engine(database_url)
    with pytest.raises(SchemaNotMigrated, match="reptrend migrate"):
        require_migrated(engine)
    engine.dispose()


def test_a_migrated_database_is_accepted(migrated_url: str) -> None:
    engine = create_engine(migrated_url)
    require_migrated(engine)  # raises if not at head
    engine.dispose()


def test_migrating_a_sqlite_file_in_a_folder_that_does_not_exist_yet_creates_it(
    tmp_path: Path,
) -> None:
    # A fresh clone has no ./var/: the first command must still work.
    url = f"sqlite:///{tmp_path / 'var' / 'reptrend.db'}"
    upgrade(url)
    engine = create_engine(url)
    require_migrated(engine)
    engine.dispose()


def test_search_rows_indexed_before_0007_are_numbered_within_their_resource(
    migrated_url: str,
) -> None:
    downgrade(migrated_url, "0006")
    engine = create_engine(migrated_url)
    insert = sa.text(
        "INSERT INTO search_token (tenant, type, resource_id, param, system, code) "
        "VALUES ('default', 'Patient', :rid, 'identifier', NULL, :code)"
    )
    with engine.begin() as connection:
        for rid, code in [("a", "1"), ("b", "1"), ("a", "2"), ("a", "3"), ("b", "2")]:
            connection.execute(insert, {"rid": rid, "code": code})
    upgrade(migrated_url)
    numbered = sa.text("SELECT resource_id, ordinal, code FROM search_token ORDER BY 1, 2")
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(numbered)]
    assert rows == [("a", 0, "1"), ("a", 1, "2"), ("a", 2, "3"), ("b", 0, "1"), ("b", 1, "2")]
    # And back: the serial key numbers the rows again, and a new row takes the next one.
    downgrade(migrated_url, "0006")
    with engine.begin() as connection:
        connection.execute(insert, {"rid": "c", "code": "1"})
        keys = connection.execute(sa.text("SELECT row FROM search_token ORDER BY row")).scalars()
        assert list(keys) == [1, 2, 3, 4, 5, 6]
    engine.dispose()
