"""The library's tables as SQLAlchemy Core metadata: the newest schema.

The migrations (``migrations/versions``) build this schema step by step and never import
this module (a migration is frozen); a test checks that the two agree.

    snippets     one row per stored version of a snippet; (name, version) is the key
    executions   the execution history, newest kept (``history_limit``)
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSON as PG_JSON

# Not `alembic_version`: the database may be shared with other applications.
VERSION_TABLE = "coderunner_alembic_version"

# JSON documents, stored as the text they are (json, not jsonb, on PostgreSQL: jsonb
# reorders object keys, and a schema's property order is what clients show).  Python's
# None is SQL NULL.
JSONDocument = JSON(none_as_null=True).with_variant(PG_JSON(none_as_null=True), "postgresql")


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamp with time zone``; SQLite has no time zones, so the UTC
    wall time is stored (a fixed-width string: sorting it sorts the instants) and read
    back as UTC.  Naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(datetime.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


metadata = MetaData()

NAME = String(100)  # snippet names are at most 63 characters (SNIPPET_NAME_PATTERN)

snippets = Table(
    "snippets",
    metadata,
    Column("name", NAME, nullable=False),
    Column("version", Integer, nullable=False),
    Column("hash", String(128), nullable=False),
    Column("language", String(20), nullable=False),
    Column("code", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("input_schema", JSONDocument, nullable=False),
    Column("output_schema", JSONDocument, nullable=True),
    Column("examples", JSONDocument, nullable=False),  # [Example.stored(), ...]
    Column("tags", JSONDocument, nullable=False),  # [str, ...]
    Column("examples_passed", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The key is the unique (name, version) constraint that concurrent saves rely on.
    PrimaryKeyConstraint("name", "version", name="pk_snippets"),
)

executions = Table(
    "executions",
    metadata,
    Column("execution_id", String(64), nullable=False),
    Column("snippet", NAME, nullable=True),
    Column("version", Integer, nullable=True),
    Column("language", String(20), nullable=False),
    Column("surface", String(20), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("error_type", String(40), nullable=True),
    # ExecutionResult as JSON; when it was too large, a reduced copy (see `note`).
    Column("result", JSONDocument, nullable=False),
    Column("inputs", JSONDocument, nullable=True),
    # Set when the record was stored reduced: what was cut, in words.
    Column("note", Text, nullable=True),
    PrimaryKeyConstraint("execution_id", name="pk_executions"),
    # Listing and pruning, in (started_at, execution_id) order (0003; 0001 had started_at).
    Index("ix_executions_started_at_id", "started_at", "execution_id"),
    Index("ix_executions_snippet_started_at", "snippet", "started_at"),  # per snippet (0002)
)
