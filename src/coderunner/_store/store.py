"""The library's storage: snippets (named, versioned) and the execution history.

One `Store` over SQLAlchemy Core, on SQLite (one node, the default) or PostgreSQL (several
nodes sharing one library).  Every method is synchronous and thread-safe (one engine, a
connection per call); every database failure is a `StoreUnavailable` naming the database
(password masked) and what failed.

Concurrency: a save reads the latest version and inserts the next one in one write
transaction, serialised per database (SQLite: BEGIN IMMEDIATE, with a busy timeout) or per
name (PostgreSQL: an advisory transaction lock); the (name, version) key and a retry are the
safety net, so concurrent saves never lose or duplicate a version.  A batch (`save_many`, an
import) is one such transaction over all its snippets: stored whole or not at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import random
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from pydantic import BaseModel
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from .._errors import InvalidRequest, StoreUnavailable
from .._models import (
    Example,
    ExecutionRecord,
    ExecutionResult,
    ExecutionSummary,
    Language,
    Snippet,
    SnippetSummary,
)
from .tables import VERSION_TABLE, executions, snippets

log = logging.getLogger("coderunner.store")

AnyRow: TypeAlias = Row[*tuple[Any, ...]]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_FILE = "coderunner.db"
SQLITE_BUSY_TIMEOUT_S = 15.0  # a write waits this long for another writer, then fails
PG_CONNECT_TIMEOUT_S = 10
SAVE_ATTEMPTS = 10
# History records are kept bounded: a result whose JSON is larger than RESULT_LIMIT is
# stored without its value, stdout and stderr cut to OUTPUT_LIMIT each (and the error's
# text to ERROR_LIMIT); inputs larger than RESULT_LIMIT are not stored.
RESULT_LIMIT = 256 * 1024
OUTPUT_LIMIT = 64 * 1024
ERROR_LIMIT = 16 * 1024
# PostgreSQL advisory locks (two int4 keys): class "code" for saves (second key: the
# name's hash), class "codf" for the schema migration and for pruning the history.
_SAVE_LOCK = 0x636F6465
_ADMIN_LOCK = 0x636F6466
_MIGRATE_KEY = 1
_PRUNE_KEY = 2
_WRITE = "coderunner_write"  # execution option: this SQLite transaction writes

try:
    import psycopg

    _DB_ERRORS: tuple[type[BaseException], ...] = (
        SQLAlchemyError,
        sqlite3.Error,
        psycopg.Error,
        CommandError,
        OSError,
    )
except ImportError:  # pragma: no cover - psycopg is a dependency
    _DB_ERRORS = (SQLAlchemyError, sqlite3.Error, CommandError, OSError)


# -- URLs -----------------------------------------------------------------------------------

ACCEPTED = "'' (SQLite in the data directory), sqlite:///<path> or postgresql://..."


def database_url_for(database_url: str, data_dir: str) -> str:
    """The SQLAlchemy URL of the library's database.

    '' → ``sqlite:///<data_dir>/coderunner.db`` (creating data_dir, mode 0700: when that
    fails, `Store.open` says why); ``postgresql://...`` or ``postgres://...`` → the URL for
    psycopg 3 (``postgresql+psycopg://...``); ``sqlite:///<path>`` is kept; anything else is
    a ValueError naming what is accepted.
    """
    database_url = database_url.strip()
    if not database_url:
        directory = os.path.abspath(os.path.expanduser(data_dir or "."))
        with contextlib.suppress(OSError):  # Store.open reports it, readably
            os.makedirs(directory, mode=0o700, exist_ok=True)
        return f"sqlite:///{os.path.join(directory, SQLITE_FILE)}"
    _normalized(database_url)  # refuses what is not accepted
    return _with_driver(database_url)


def _with_driver(url: str) -> str:
    """`url` with postgres:// or postgresql:// spelled for psycopg 3; the rest as written."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return url


def _normalized(url: str) -> URL:
    """`url` parsed, PostgreSQL on psycopg 3; ValueError unless SQLite or PostgreSQL."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("postgres", "postgresql", "postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        raise ValueError(f"unsupported database URL {_masked_text(url)!r}: use {ACCEPTED}")
    try:
        parsed = make_url(_with_driver(url))
    except ArgumentError:
        raise ValueError(f"malformed database URL {_masked_text(url)!r}: use {ACCEPTED}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError(f"SQLite needs a file (sqlite:///<path>), not {_masked_text(url)!r}")
    return parsed


def _masked_text(url: str) -> str:
    """A URL as text with any password replaced by ***, even when it does not parse."""
    return re.sub(r"(://[^:/?#@]*:)[^@/?#]*@", r"\1***@", url)


def _shown(url: URL) -> str:
    """The URL for messages and logs: password masked, driver name left out."""
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


@dataclasses.dataclass(frozen=True)
class NewVersion:
    """One snippet version for `Store.save_many` (the fields of `Store.save`)."""

    name: str
    language: Language
    code: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    examples: list[Example]
    tags: list[str]
    hash: str
    examples_passed: int


# -- the store ------------------------------------------------------------------------------


class Store:
    """The library's snippets and the execution history in one database.

    Open it with `Store.open` (which migrates the schema); `url` is the database's URL
    with any password masked.
    """

    def __init__(self, url: str, *, history_limit: int = 10_000) -> None:
        if history_limit < 0:
            raise ValueError("history_limit must not be negative")
        self._url = _normalized(url)
        self.url = _shown(self._url)
        self.history_limit = history_limit
        self._postgres = self._url.get_backend_name() == "postgresql"
        self._closed = False
        self._engine = self._create_engine()

    @classmethod
    def open(cls, url: str, *, history_limit: int = 10_000) -> Store:
        """Connect and migrate to the newest schema (in-process Alembic "upgrade head");
        StoreUnavailable with a readable message (which database, what failed) when it
        cannot connect or migrate."""
        store = cls(url, history_limit=history_limit)
        try:
            store.migrate("head")
        except BaseException:
            store.close()
            raise
        return store

    # -- connections ----------------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if not self._postgres:
            engine = create_engine(
                self._url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            )
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        return create_engine(
            self._url,
            pool_pre_ping=True,  # a server that restarted: stale connections are replaced
            pool_size=5,
            max_overflow=10,
            pool_timeout=30,
            connect_args={
                "connect_timeout": PG_CONNECT_TIMEOUT_S,
                "application_name": "coderunner",
                # A server that vanished without closing the connection (a host or network
                # gone) is noticed within a minute or so instead of hanging a call forever.
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            },
        )

    @contextlib.contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        """Every database error inside is a StoreUnavailable saying what failed."""
        if self._closed:
            raise StoreUnavailable(f"the library database {self.url} is closed")
        try:
            yield
        except _DB_ERRORS as exc:
            raise StoreUnavailable(
                f"the library database {self.url} failed while {doing}: {self._reason(exc)}"
            ) from exc

    def _reason(self, exc: BaseException) -> str:
        """What went wrong, in one line: the driver's message, without SQL or password."""
        orig = getattr(exc, "orig", None)
        cause = orig if isinstance(orig, BaseException) else exc
        message = str(cause)
        message = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", message)
        message = message.split("\n[SQL:", 1)[0]
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        reason = "; ".join(lines[:3]) or type(cause).__name__
        if not self._postgres and isinstance(cause, sqlite3.Error):
            path = Path(self._url.database or "")
            if "unable to open" in reason or "readonly" in reason or "read-only" in reason:
                reason += f" (is {path.parent} an existing directory this user can write to?)"
        password = self._url.password
        if password:
            reason = reason.replace(str(password), "***")
        return reason

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction, committed at the end (BEGIN IMMEDIATE on SQLite)."""
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to `revision` (tests also stop at an older one)."""
        with self._failures(f"migrating its schema to {revision}"):
            with self._write() as conn:
                if self._postgres:  # nodes starting together migrate one after the other
                    conn.execute(
                        text(f"SELECT pg_advisory_xact_lock({_ADMIN_LOCK}, {_MIGRATE_KEY})")
                    )
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
                config.set_main_option("path_separator", "os")
                config.attributes["connection"] = conn
                current = MigrationContext.configure(
                    conn, opts={"version_table": VERSION_TABLE}
                ).get_current_revision()
                scripts = ScriptDirectory.from_config(config)
                known = {script.revision for script in scripts.walk_revisions()}
                if current is not None and current not in known:
                    raise StoreUnavailable(
                        f"the library database {self.url} has schema revision {current}, newer "
                        f"than this coderunner knows (its newest is {scripts.get_current_head()}): "
                        "upgrade coderunner on this node"
                    )
                command.upgrade(config, revision)

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards."""
        self._closed = True
        self._engine.dispose()

    def ping(self) -> None:
        """StoreUnavailable unless the database answers now."""
        with self._failures("answering a ping"), self._read() as conn:
            conn.execute(text("SELECT 1"))

    # -- the library ----------------------------------------------------------------------

    def save(
        self,
        name: str,
        *,
        language: Language,
        code: str,
        description: str,
        input_schema: dict[str, Any],
        output_schema: dict[str, Any] | None,
        examples: list[Example],
        tags: list[str],
        hash: str,
        examples_passed: int,
    ) -> tuple[Snippet, bool]:
        """Store a new version (latest + 1), or, when the latest version has this same
        hash, return the latest unchanged: (snippet, created).

        Concurrent saves of one name get distinct, consecutive versions.  InvalidRequest
        when a text holds a NUL character or a lone surrogate, or a number is NaN or
        infinite (PostgreSQL stores none of them).
        """
        item = NewVersion(
            name=name,
            language=language,
            code=code,
            description=description,
            input_schema=input_schema,
            output_schema=output_schema,
            examples=examples,
            tags=tags,
            hash=hash,
            examples_passed=examples_passed,
        )
        rows = [_version_row(item)]
        [saved] = self._save_rows(rows, f"saving snippet {name!r}")
        return saved

    def save_many(self, items: Sequence[NewVersion]) -> list[tuple[Snippet, bool]]:
        """Save every item as `save` does, all in ONE transaction: all are stored, or,
        when anything fails, none is (an import).

        Each item is compared with the latest version at that point of the batch (an
        earlier item of the same name included).  InvalidRequest naming the snippet when
        an item cannot be stored (checked before anything is written); StoreUnavailable
        when the database fails, after which the store is as it was.
        """
        rows = []
        for item in items:
            try:
                rows.append(_version_row(item))
            except InvalidRequest as exc:
                raise InvalidRequest(f"snippet {item.name!r}: {exc}") from None
        if not rows:
            return []
        names = ", ".join(dict.fromkeys(row["name"] for row in rows))
        return self._save_rows(rows, f"saving {len(rows)} snippets ({names})")

    def _save_rows(self, rows: list[dict[str, Any]], doing: str) -> list[tuple[Snippet, bool]]:
        """Store the rows (each a new version unless its hash is the latest's) in one write
        transaction, tried again as a whole when a concurrent save took a version."""
        with self._failures(doing):
            for attempt in range(1, SAVE_ATTEMPTS + 1):
                try:
                    with self._write() as conn:
                        self._lock_names(conn, [row["name"] for row in rows])
                        return [self._save_row(conn, row) for row in rows]
                except IntegrityError as exc:
                    if not _lost_race(exc) or attempt == SAVE_ATTEMPTS:
                        raise
                    log.debug("%s lost a race (attempt %d); retrying", doing, attempt)
                    time.sleep(random.uniform(0.001, 0.01 * attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _lock_names(self, conn: Connection, names: list[str]) -> None:
        """PostgreSQL: wait for every other save of these names (SQLite's BEGIN IMMEDIATE
        already serialises every write).  The locks are taken in one order, by key, so two
        batches naming the same snippets never wait for each other in a circle."""
        if not self._postgres:
            return
        distinct = sorted(set(names))
        if len(distinct) == 1:  # one save: one round trip
            conn.execute(
                text(f"SELECT pg_advisory_xact_lock({_SAVE_LOCK}, hashtext(:n))"),
                {"n": distinct[0]},
            )
            return
        query = (
            "SELECT DISTINCT hashtext(n) AS k FROM unnest(CAST(:names AS text[])) AS n ORDER BY k"
        )
        for key in conn.execute(text(query), {"names": distinct}).scalars().all():
            conn.execute(
                text(f"SELECT pg_advisory_xact_lock({_SAVE_LOCK}, CAST(:k AS integer))"),
                {"k": key},
            )

    def _save_row(self, conn: Connection, row: dict[str, Any]) -> tuple[Snippet, bool]:
        latest = conn.execute(
            select(snippets)
            .where(snippets.c.name == row["name"])
            .order_by(snippets.c.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.hash == row["hash"]:
            return _snippet(latest), False
        values = {
            **row,
            "version": 1 if latest is None else latest.version + 1,
            "created_at": datetime.datetime.now(datetime.UTC),
        }
        conn.execute(insert(snippets).values(**values))
        return _snippet_from(values, values["examples"]), True

    def get(self, name: str, version: int | None = None) -> Snippet | None:
        """One version of a snippet (the latest when `version` is None), or None."""
        query = select(snippets).where(snippets.c.name == name)
        if version is None:
            query = query.order_by(snippets.c.version.desc()).limit(1)
        else:
            query = query.where(snippets.c.version == version)
        with self._failures(f"reading snippet {name!r}"), self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _snippet(row)

    def versions(self, name: str) -> list[Snippet]:
        """Every version of a snippet, newest first; [] when there is none."""
        query = select(snippets).where(snippets.c.name == name).order_by(snippets.c.version.desc())
        with self._failures(f"reading the versions of {name!r}"), self._read() as conn:
            rows = conn.execute(query).all()
        return [_snippet(row) for row in rows]

    def search(self, q: str | None = None) -> list[SnippetSummary]:
        """The latest version of every snippet, by name; `q` (when given) must occur,
        case-insensitively, in the name, the description or one of the tags."""
        latest = (
            select(snippets.c.name, func.max(snippets.c.version).label("version"))
            .group_by(snippets.c.name)
            .subquery()
        )
        query = select(
            snippets.c.name,
            snippets.c.version,
            snippets.c.language,
            snippets.c.description,
            snippets.c.tags,
        ).join(
            latest,
            and_(snippets.c.name == latest.c.name, snippets.c.version == latest.c.version),
        )
        with self._failures("searching the library"), self._read() as conn:
            rows = conn.execute(query).all()
        # Matched and sorted here, not in SQL: the same answer on every backend (SQLite's
        # lower() is ASCII-only; PostgreSQL sorts by its locale).
        needle = q.casefold() if q else None
        found = [
            SnippetSummary(
                name=row.name,
                version=row.version,
                language=Language(row.language),
                description=row.description,
                tags=list(row.tags),
            )
            for row in rows
            if needle is None
            or needle in row.name.casefold()
            or needle in row.description.casefold()
            or any(needle in str(tag).casefold() for tag in row.tags)
        ]
        return sorted(found, key=lambda s: s.name)

    def delete(self, name: str) -> bool:
        """Delete every version of a snippet; False when there was none."""
        with self._failures(f"deleting snippet {name!r}"), self._write() as conn:
            deleted = conn.execute(delete(snippets).where(snippets.c.name == name)).rowcount
        return bool(deleted)

    # -- the history ----------------------------------------------------------------------

    def add_executions(self, records: list[ExecutionRecord]) -> None:
        """Record executions in one transaction (an id already recorded is skipped), then
        keep only the newest `history_limit` records (by started_at)."""
        if not records:
            return
        rows = [_execution_row(record) for record in records]
        dialect_insert = postgresql.insert if self._postgres else sqlite.insert
        statement = dialect_insert(executions).on_conflict_do_nothing(
            index_elements=[executions.c.execution_id]
        )
        with self._failures(f"recording {len(rows)} executions"), self._write() as conn:
            conn.execute(statement, rows)
            self._prune(conn)

    def _prune(self, conn: Connection) -> None:
        if self._postgres:  # one node prunes at a time; the others skip this round
            locked = conn.execute(
                text(f"SELECT pg_try_advisory_xact_lock({_ADMIN_LOCK}, {_PRUNE_KEY})")
            ).scalar()
            if not locked:
                return
        c = executions.c
        cutoff = conn.execute(
            select(c.started_at, c.execution_id)
            .order_by(c.started_at.desc(), c.execution_id.desc())
            .offset(self.history_limit)
            .limit(1)
        ).first()
        if cutoff is not None:
            conn.execute(
                delete(executions).where(
                    or_(
                        c.started_at < cutoff.started_at,
                        and_(
                            c.started_at == cutoff.started_at,
                            c.execution_id <= cutoff.execution_id,
                        ),
                    )
                )
            )

    def executions(self, *, snippet: str | None = None, limit: int = 50) -> list[ExecutionSummary]:
        """The newest recorded executions first, of one snippet when `snippet` is given."""
        c = executions.c
        query = select(
            c.execution_id,
            c.snippet,
            c.version,
            c.language,
            c.surface,
            c.started_at,
            c.duration_ms,
            c.ok,
            c.error_type,
        )
        if snippet is not None:
            query = query.where(c.snippet == snippet)
        query = query.order_by(c.started_at.desc(), c.execution_id.desc()).limit(max(limit, 0))
        with self._failures("reading the history"), self._read() as conn:
            rows = conn.execute(query).all()
        return [ExecutionSummary(**_summary_fields(row)) for row in rows]

    def execution(self, execution_id: str) -> ExecutionRecord | None:
        """One recorded execution with its result and inputs, or None.

        A record stored reduced (see RESULT_LIMIT) has ``result.result`` None, its stdout
        and stderr cut (with their ``*_truncated`` flags), and a note at the end of its
        stderr saying what was left out.
        """
        query = select(executions).where(executions.c.execution_id == execution_id)
        with self._failures(f"reading execution {execution_id!r}"), self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        result = ExecutionResult.model_validate(_known(ExecutionResult, row.result))
        fields: dict[str, Any] = {**_summary_fields(row), "inputs": row.inputs}
        if row.note:
            if "note" in ExecutionRecord.model_fields:  # pragma: no cover - not (yet) a field
                fields["note"] = row.note
            else:
                separator = "\n" if result.stderr and not result.stderr.endswith("\n") else ""
                result.stderr += f"{separator}[coderunner history: {row.note}]\n"
        return ExecutionRecord(**fields, result=result)


# -- SQLite transactions --------------------------------------------------------------------


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (_sqlite_begin): pysqlite's own transaction handling
    # would defer it and cannot take the write lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers do not block the writer.  Switching a new database to it needs an
        # exclusive lock, which SQLite does not wait for: nodes opening it at once retry.
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
        while True:
            try:
                if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.02))
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A write transaction takes the write lock now (waiting up to the busy timeout), so
    # that its reads see the latest version and no other writer can slip in between.
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# -- rows and models ------------------------------------------------------------------------


def _snippet(row: AnyRow) -> Snippet:
    return Snippet(
        name=row.name,
        version=row.version,
        hash=row.hash,
        language=Language(row.language),
        code=row.code,
        description=row.description,
        input_schema=row.input_schema,
        output_schema=row.output_schema,
        examples=[Example.model_validate(_known(Example, example)) for example in row.examples],
        tags=list(row.tags),
        created_at=row.created_at,
        examples_passed=row.examples_passed,
    )


def _version_row(item: NewVersion) -> dict[str, Any]:
    """The row of a new version (without version and created_at); InvalidRequest when a
    field holds what no backend stores."""
    row: dict[str, Any] = {
        "name": item.name,
        "hash": item.hash,
        "language": Language(item.language).value,
        "code": item.code,
        "description": item.description,
        "input_schema": item.input_schema,
        "output_schema": item.output_schema,
        "examples": [example.stored() for example in item.examples],
        "tags": list(item.tags),
        "examples_passed": item.examples_passed,
    }
    for field in ("name", "hash", "code", "description", "input_schema", "output_schema",
                  "examples", "tags"):  # fmt: skip
        _refuse_unstorable(field, row[field])
    return row


def check_storable(item: NewVersion) -> None:
    """InvalidRequest when a field of the version holds what no backend stores (a NUL
    character, a lone surrogate, a non-finite number)."""
    _version_row(item)


def _lost_race(exc: IntegrityError) -> bool:
    """Whether the error is the (name, version) key taken by a concurrent save (anything
    else the database refuses is not tried again)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL: unique_violation
        return True
    return isinstance(orig, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(orig)


def _snippet_from(values: dict[str, Any], examples: list[dict[str, Any]]) -> Snippet:
    return Snippet(
        **{k: v for k, v in values.items() if k != "examples"},
        examples=[Example.model_validate(example) for example in examples],
    )


def _known(model: type[BaseModel], stored: dict[str, Any]) -> dict[str, Any]:
    """The stored fields the model still has: a record written by an older or newer
    coderunner (a field since removed) still loads."""
    return {k: v for k, v in stored.items() if k in model.model_fields}


def _summary_fields(row: AnyRow) -> dict[str, Any]:
    return {
        "execution_id": row.execution_id,
        "snippet": row.snippet,
        "version": row.version,
        "language": Language(row.language),
        "surface": row.surface,
        "started_at": row.started_at,
        "duration_ms": row.duration_ms,
        "ok": row.ok,
        "error_type": row.error_type,
    }


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and surrogates (never UTF-8)


def _refuse_unstorable(field: str, value: Any) -> None:
    if _unstorable(value):
        raise InvalidRequest(
            f"the snippet's {field} contains a NUL character (U+0000), a lone surrogate or a "
            "non-finite number, which cannot be stored"
        )


def _unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_unstorable(v) for v in value)
    return False


def _storable(value: Any) -> Any:
    """`value` as JSON every backend stores: NUL characters and lone surrogates become
    U+FFFD, NaN and infinities null (PostgreSQL's JSON types hold none of them; the history
    is a record of what happened, not the snippet's answer)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def _json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (as `model_dump_json` writes it)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _cut(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` bytes of UTF-8 (never inside a character)."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text, False
    return encoded[:limit].decode("utf-8", "ignore"), True


def _execution_row(record: ExecutionRecord) -> dict[str, Any]:
    """A history row; results and inputs larger than RESULT_LIMIT are reduced (`note`)."""
    # A result whose JSON text (the runner's) is over twice the limit cannot come under it
    # (storing at most halves an escape: six bytes become U+FFFD's three): it is not
    # dumped and walked just to be dropped.
    text = record.result.result_json()
    far_over = text is not None and len(text) > 2 * RESULT_LIMIT
    exclude = {"result"} if far_over else None
    result: dict[str, Any] = _storable(record.result.model_dump(mode="json", exclude=exclude))
    notes: list[str] = []
    if text is not None and far_over:
        size = _json_size(result) + len(b',"result":') + len(text)
    else:
        size = _json_size(result)
    if size > RESULT_LIMIT:
        result["result"] = None
        for stream in ("stdout", "stderr"):
            result[stream], cut = _cut(result[stream], OUTPUT_LIMIT)
            result[f"{stream}_truncated"] = result[f"{stream}_truncated"] or cut
        error = result.get("error")
        if isinstance(error, dict):
            for key in ("message", "traceback"):
                if isinstance(error.get(key), str):
                    error[key] = _cut(error[key], ERROR_LIMIT)[0]
        notes.append(
            f"the result was not kept ({size} bytes of JSON, over the history's limit of "
            f"{RESULT_LIMIT}); stdout and stderr are cut to {OUTPUT_LIMIT} bytes each"
        )
    inputs = None if record.inputs is None else _storable(record.inputs)
    if inputs is not None:
        inputs_size = _json_size(inputs)
        if inputs_size > RESULT_LIMIT:
            inputs = None
            notes.append(
                f"the inputs were not kept ({inputs_size} bytes of JSON, over the history's "
                f"limit of {RESULT_LIMIT})"
            )
    return {
        "execution_id": record.execution_id,
        "snippet": record.snippet,
        "version": record.version,
        "language": Language(record.language).value,
        "surface": record.surface,
        "started_at": record.started_at,
        "duration_ms": record.duration_ms,
        "ok": record.ok,
        "error_type": record.error_type,
        "result": result,
        "inputs": inputs,
        "note": "; ".join(notes) or None,
    }
