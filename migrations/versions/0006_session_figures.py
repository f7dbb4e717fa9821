"""each exercise session keeps its packed repetition figures

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

The cohort report read every rated repetition (3M rows for 1M sessions) to compute a handful
of figures per session. The store now writes them with the session, in the transaction that
writes its repetitions (`domain.session_figures`): `rated_repetitions`, and for a regular
session (indices 1..n, n <= 16) `pain_code` and `repetition_counts`, the packed pain and
counts the report reads. NULL `rated_repetitions` means not computed: the report then reads
that session's repetitions, so sessions stored before this revision stay right without a
backfill. `reptrend reindex --session-figures` fills them, one page of sessions per
transaction.

Two partial indexes keep the report's remaining reads off whole-table scans: the sessions
whose repetitions it still reads (not computed, or not regular: none once filled), and the
repetitions with a form fault (for the counts by fault code; 3% of them in the benchmark),
which PostgreSQL then reads from the index alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("rated_repetitions", "pain_code", "repetition_counts")
_FAULTY_RATED = "form_faults IS NOT NULL AND pain IS NOT NULL"
_UNPACKED = "pain_code IS NULL AND (rated_repetitions IS NULL OR rated_repetitions > 0)"


def upgrade() -> None:
    with op.batch_alter_table("exercise_session") as batch:
        batch.add_column(sa.Column("rated_repetitions", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pain_code", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("repetition_counts", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_exercise_session_unpacked",
        "exercise_session",
        ["tenant", "procedure_id"],
        postgresql_where=sa.text(_UNPACKED),
        sqlite_where=sa.text(_UNPACKED),
    )
    op.create_index(
        "ix_session_fact_faults",
        "session_fact",
        ["tenant"],
        postgresql_include=["procedure_id", "repetition_index", "form_faults"],
        postgresql_where=sa.text(_FAULTY_RATED),
        sqlite_where=sa.text(_FAULTY_RATED),
    )


def downgrade() -> None:
    op.drop_index("ix_session_fact_faults", table_name="session_fact")
    op.drop_index("ix_exercise_session_unpacked", table_name="exercise_session")
    with op.batch_alter_table("exercise_session") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column)
