"""Alembic's environment: run in-process by `Store.open` (no alembic.ini, no command line).

The caller hands over a connection already inside its transaction
(``config.attributes["connection"]``): on SQLite a write transaction (BEGIN IMMEDIATE),
on PostgreSQL one holding an advisory lock, so that nodes starting together migrate one
after the other and the later ones find the schema already at head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from coderunner._store.tables import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("coderunner's migrations run online only, on a connection given in")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    compare_type=True,
)
with context.begin_transaction():  # the caller's transaction: a no-op here
    context.run_migrations()
