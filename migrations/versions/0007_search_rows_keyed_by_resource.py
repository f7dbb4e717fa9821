"""search rows are keyed by their resource and their place among its rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Every search row had a serial key of its own, and a second index on (tenant, type,
resource_id) to find a resource's rows when it is rewritten: two b-trees and a sequence step
per row before the lookup index, for a key nothing reads. An Observation has seven search
rows, so that was 14 of its 25 index insertions. The key is now (tenant, type, resource_id,
ordinal), the row's place among its resource's rows in that table: unique, and it finds a
resource's rows by its prefix, so the resource index goes.

Existing rows get their ordinals from their old serial order, so nothing needs reindexing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("search_token", "search_reference", "search_date", "search_quantity", "search_string")
_KEY = ["tenant", "type", "resource_id", "ordinal"]


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("ordinal", sa.Integer(), nullable=True))
        # UPDATE ... FROM: PostgreSQL, and SQLite from 3.33.
        op.execute(
            f"UPDATE {table} SET ordinal = numbered.ordinal FROM ("
            "SELECT row AS numbered_row, row_number() OVER "
            "(PARTITION BY tenant, type, resource_id ORDER BY row) - 1 AS ordinal "
            f"FROM {table}) AS numbered WHERE {table}.row = numbered.numbered_row"
        )
        op.drop_index(f"ix_{table}_resource", table_name=table)
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column("ordinal", existing_type=sa.Integer(), nullable=False)
            batch.drop_column("row")
            batch.create_primary_key(f"{table}_pkey", _KEY)


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(f"{table}_pkey", type_="primary")
            batch.drop_column("ordinal")
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"ALTER TABLE {table} ADD COLUMN row serial PRIMARY KEY")
        else:
            # SQLite: a table is recreated to gain a primary key; an INTEGER PRIMARY KEY is
            # its rowid, numbered as the rows are copied.
            with op.batch_alter_table(table) as batch:
                batch.add_column(sa.Column("row", sa.Integer(), nullable=True))
            op.execute(f"UPDATE {table} SET row = rowid")
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.alter_column("row", existing_type=sa.Integer(), nullable=False)
                batch.create_primary_key(f"{table}_pkey", ["row"])
        op.create_index(f"ix_{table}_resource", table, ["tenant", "type", "resource_id"])
