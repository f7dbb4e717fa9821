"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exercise_session",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("procedure_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("protocol", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("utc_offset_minutes", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("based_on", sa.String(length=140), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "procedure_id"),
    )
    op.create_index(
        "ix_exercise_session_patient",
        "exercise_session",
        ["tenant", "patient_id", "protocol", "started_at"],
        unique=False,
    )

    op.create_table(
        "pain_report",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pain", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "observation_id"),
    )
    op.create_index(
        "ix_pain_report_patient",
        "pain_report",
        ["tenant", "patient_id", "local_date"],
        unique=False,
    )

    op.create_table(
        "resource",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("body", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "type", "id"),
    )
    op.create_index(
        "ix_resource_type_updated", "resource", ["tenant", "type", "last_updated"], unique=False
    )

    op.create_table(
        "resource_version",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("body", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "type", "id", "version_id"),
    )
    op.create_index(
        "ix_resource_version_updated",
        "resource_version",
        ["tenant", "type", "last_updated"],
        unique=False,
    )

    op.create_table(
        "search_date",
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("low", sa.DateTime(timezone=True), nullable=False),
        sa.Column("high", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("row"),
    )
    op.create_index(
        "ix_search_date_lookup",
        "search_date",
        ["tenant", "type", "param", "low", "high"],
        unique=False,
    )
    op.create_index(
        "ix_search_date_resource", "search_date", ["tenant", "type", "resource_id"], unique=False
    )

    op.create_table(
        "search_quantity",
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("system", sa.String(), nullable=True),
        sa.Column("code", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("row"),
    )
    op.create_index(
        "ix_search_quantity_lookup",
        "search_quantity",
        ["tenant", "type", "param", "value"],
        unique=False,
    )
    op.create_index(
        "ix_search_quantity_resource",
        "search_quantity",
        ["tenant", "type", "resource_id"],
        unique=False,
    )

    op.create_table(
        "search_reference",
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("row"),
    )
    op.create_index(
        "ix_search_reference_lookup",
        "search_reference",
        ["tenant", "type", "param", "target_id"],
        unique=False,
    )
    op.create_index(
        "ix_search_reference_resource",
        "search_reference",
        ["tenant", "type", "resource_id"],
        unique=False,
    )

    op.create_table(
        "search_string",
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("row"),
    )
    op.create_index(
        "ix_search_string_lookup",
        "search_string",
        ["tenant", "type", "param", "value"],
        unique=False,
    )
    op.create_index(
        "ix_search_string_resource",
        "search_string",
        ["tenant", "type", "resource_id"],
        unique=False,
    )

    op.create_table(
        "search_token",
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(), nullable=True),
        sa.Column("code", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("row"),
    )
    op.create_index(
        "ix_search_token_lookup",
        "search_token",
        ["tenant", "type", "param", "code", "system"],
        unique=False,
    )
    op.create_index(
        "ix_search_token_resource", "search_token", ["tenant", "type", "resource_id"], unique=False
    )

    op.create_table(
        "session_fact",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("repetition_index", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("protocol", sa.String(length=64), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pain", sa.Integer(), nullable=True),
        sa.Column("distance_cm", sa.Float(), nullable=True),
        sa.Column("form_faults", sa.String(), nullable=True),
        sa.Column("peripheral_symptoms", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "observation_id", "repetition_index"),
    )
    op.create_index(
        "ix_session_fact_patient",
        "session_fact",
        ["tenant", "patient_id", "protocol"],
        unique=False,
    )
    op.create_index(
        "ix_session_fact_procedure", "session_fact", ["tenant", "procedure_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_session_fact_procedure", table_name="session_fact")
    op.drop_index("ix_session_fact_patient", table_name="session_fact")

    op.drop_table("session_fact")
    op.drop_index("ix_search_token_resource", table_name="search_token")
    op.drop_index("ix_search_token_lookup", table_name="search_token")

    op.drop_table("search_token")
    op.drop_index("ix_search_string_resource", table_name="search_string")
    op.drop_index("ix_search_string_lookup", table_name="search_string")

    op.drop_table("search_string")
    op.drop_index("ix_search_reference_resource", table_name="search_reference")
    op.drop_index("ix_search_reference_lookup", table_name="search_reference")

    op.drop_table("search_reference")
    op.drop_index("ix_search_quantity_resource", table_name="search_quantity")
    op.drop_index("ix_search_quantity_lookup", table_name="search_quantity")

    op.drop_table("search_quantity")
    op.drop_index("ix_search_date_resource", table_name="search_date")
    op.drop_index("ix_search_date_lookup", table_name="search_date")

    op.drop_table("search_date")
    op.drop_index("ix_resource_version_updated", table_name="resource_version")

    op.drop_table("resource_version")
    op.drop_index("ix_resource_type_updated", table_name="resource")

    op.drop_table("resource")
    op.drop_index("ix_pain_report_patient", table_name="pain_report")

    op.drop_table("pain_report")
    op.drop_index("ix_exercise_session_patient", table_name="exercise_session")

    op.drop_table("exercise_session")
