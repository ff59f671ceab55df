"""Engines for the store: SQLite by default, PostgreSQL (psycopg 3) in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel, create_engine

import store.models  # noqa: F401  (registers the store's tables on SQLModel.metadata)

# How long a SQLite writer waits for another's lock before giving up: the worker and a replay can
# write at once, and the dashboard reads while they do.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; `postgresql://` means psycopg 3, a SQLite file's directory is created."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, **kwargs)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the dashboard read while the worker writes; SQLite leaves foreign keys off unless asked.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough under WAL, and much faster
    finally:
        cursor.close()


def init_db(engine: Engine) -> None:
    """Create the tables that are missing, and add the nullable columns a newer version added to a
    table that exists (a new metric is a new NULL-able column of `scores`: old rows simply lack it)."""
    # Every table module registers with SQLModel's metadata when imported.
    import store.audit
    import store.models
    import store.reviews
    import store.verdicts  # noqa: F401

    SQLModel.metadata.create_all(engine)
    _add_missing_columns(engine)


def _add_missing_columns(engine: Engine) -> None:
    existing = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        if not existing.has_table(table.name):
            continue
        present = {c["name"] for c in existing.get_columns(table.name)}
        missing = [c for c in table.columns if c.name not in present]
        for column in missing:
            if not column.nullable:
                raise RuntimeError(
                    f"the store's table {table.name} lacks column {column.name}, which cannot be added to "
                    "existing rows without a value: migrate it by hand"
                )
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'))


@contextmanager
def open_store(url: str) -> Iterator[Engine]:
    """An engine with every table created, disposed of on the way out: what each command needs."""
    engine = make_engine(url)
    try:
        init_db(engine)
        yield engine
    finally:
        engine.dispose()


def session(engine: Engine) -> Session:
    """A SQLModel session, for `with session(engine) as s:` in the dashboard and the gate."""
    return Session(engine)
