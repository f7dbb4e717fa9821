"""search strings keep the text as written, for :exact

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

`search_string.value` holds case-folded text (FHIR's default string match is
case-insensitive); `:exact` must compare case and all, so each row now also keeps the text as
written. Rows indexed before this revision only have the folded text, which is what they get
here; `reptrend reindex` rebuilds them from the stored resources.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("search_string") as batch:
        batch.add_column(sa.Column("exact", sa.String(), nullable=True))
    op.execute("UPDATE search_string SET exact = value")
    with op.batch_alter_table("search_string") as batch:
        batch.alter_column("exact", existing_type=sa.String(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("search_string") as batch:
        batch.drop_column("exact")
