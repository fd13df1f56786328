"""An index for one snippet's history, newest first: executions(snippet, started_at).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_executions_snippet_started_at", "executions", ["snippet", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_executions_snippet_started_at", table_name="executions")
