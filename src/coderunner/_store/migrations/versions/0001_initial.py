"""The library and the history: snippets and executions.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSON as PG_JSON

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# json, not jsonb: jsonb reorders object keys (see tables.py)
JSON = sa.JSON(none_as_null=True).with_variant(PG_JSON(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "snippets",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("language", sa.String(20), nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("input_schema", JSON, nullable=False),
        sa.Column("output_schema", JSON, nullable=True),
        sa.Column("examples", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("examples_passed", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_snippets"),
    )
    op.create_table(
        "executions",
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("snippet", sa.String(100), nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("language", sa.String(20), nullable=False),
        sa.Column("surface", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Double, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error_type", sa.String(40), nullable=True),
        sa.Column("result", JSON, nullable=False),
        sa.Column("inputs", JSON, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("execution_id", name="pk_executions"),
    )
    op.create_index("ix_executions_started_at", "executions", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_executions_started_at", table_name="executions")
    op.drop_table("executions")
    op.drop_table("snippets")
