"""stop-rule fold state per patient and protocol

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Ingest used to re-read and re-fold a pair's whole session history for every transaction that
touched it, so each bundle cost more as histories grew. `stop_rule_fold` keeps the fold state
after a pair's latest session; a later session continues from it. It is a derived cache:
empty after this revision, filled by the next session of each pair, and safe to delete at any
time (the next session then folds the whole history once).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stop_rule_fold",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("protocol", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column(
            "state", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_table("stop_rule_fold")
