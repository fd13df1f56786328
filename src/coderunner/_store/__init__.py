"""The library's storage: named, versioned snippets and the execution history, in SQLite
(one node) or PostgreSQL (several nodes sharing one library), migrated by Alembic."""

from __future__ import annotations

from .._errors import StoreUnavailable
from .history import HistoryWriter
from .store import NewVersion, Store, check_storable, database_url_for

__all__ = [
    "HistoryWriter",
    "NewVersion",
    "Store",
    "StoreUnavailable",
    "check_storable",
    "database_url_for",
]
