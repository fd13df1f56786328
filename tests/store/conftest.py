"""Real databases for the store's tests: SQLite files, and the PostgreSQL server of
`tests/_postgres.py` (its fixtures, `postgres` and `own_postgres`, are in tests/conftest.py).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from _postgres import PostgresServer

_numbers = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"test_{os.getpid()}_{next(_numbers)}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)
