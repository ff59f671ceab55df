"""Fixtures for integration tests: a fresh store on SQLite and on the real PostgreSQL, one test each."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from store.db import init_db, make_engine

TEST_PG_URL = os.environ.get(
    "SHADOWGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An initialized, empty store: a SQLite file, then a PostgreSQL database of its own (dropped after)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'store' / 'shadowgate.db'}")
        init_db(engine)
        yield engine
        engine.dispose()
        return

    # A database per test: tests never see each other's rows, and dropping it leaves nothing behind.
    name = f"sg_{uuid.uuid4().hex[:16]}"
    admin = make_engine(TEST_PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:  # a clear sentence instead of a wall of tracebacks
        admin.dispose()
        pytest.fail(f"these tests need PostgreSQL at {TEST_PG_URL}: {exc}")
    engine = make_engine(make_url(TEST_PG_URL).set(database=name).render_as_string(hide_password=False))
    try:
        init_db(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
