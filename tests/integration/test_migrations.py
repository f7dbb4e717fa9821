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
from store.string_folding import fold_string
from store.tables import METADATA
from tests.integration.test_search_store import ids, patient, write


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


def test_search_strings_folded_before_0008_are_refolded_without_accents(
    migrated_url: str,
) -> None:
    downgrade(migrated_url, "0007")
    engine = create_engine(migrated_url)
    jose = {
        "resourceType": "Patient",
        "id": "jose",
        "name": [{"family": "García", "given": ["José"]}],
    }
    write(engine, patient("mueller", "Müller"), jose)
    # Rows as revision 0007's code left them: case folded, accents kept. Past them, more
    # rows than one batch of the migration, for resources this test never reads.
    names = ["Ødegård", "Straße", "Ångström", "ﬁnn", "Peter"]
    filler = [
        {"rid": f"f{n}", "exact": exact, "value": exact.casefold()}
        for n in range(2_500)
        for exact in [f"{names[n % len(names)]} {n}"]
    ]
    with engine.begin() as connection:
        rows = connection.execute(sa.text("SELECT resource_id, ordinal, exact FROM search_string"))
        indexed = rows.all()
        for rid, ordinal, exact in indexed:
            connection.execute(
                sa.text(
                    "UPDATE search_string SET value = :value "
                    "WHERE resource_id = :rid AND ordinal = :ordinal"
                ),
                {"value": exact.casefold(), "rid": rid, "ordinal": ordinal},
            )
        connection.execute(
            sa.text(
                "INSERT INTO search_string (tenant, type, resource_id, ordinal, param, value, "
                "exact) VALUES ('default', 'Patient', :rid, 0, 'family', :value, :exact)"
            ),
            filler,
        )
    assert ids(engine, "Patient", "family=muller") == set()

    upgrade(migrated_url)

    assert ids(engine, "Patient", "family=muller") == {"mueller"}
    assert ids(engine, "Patient", "name=MULL") == {"mueller"}
    assert ids(engine, "Patient", "given=jose") == {"jose"}
    assert ids(engine, "Patient", "family:exact=Müller") == {"mueller"}
    assert ids(engine, "Patient", "family:exact=Muller") == set()
    select = sa.text("SELECT value, exact FROM search_string")
    with engine.connect() as connection:
        folded = connection.execute(select).all()
    assert len(folded) == len(indexed) + len(filler)
    assert [value for value, _ in folded] == [fold_string(exact) for _, exact in folded]
    assert {value for value, _ in folded} >= {"ødegard 0", "strasse 1", "angstrom 2", "finn 3"}
    # And back: the folding of revision 0007 again.
    downgrade(migrated_url, "0007")
    with engine.connect() as connection:
        unfolded = connection.execute(select).all()
    engine.dispose()
    assert [value for value, _ in unfolded] == [exact.casefold() for _, exact in unfolded]
