"""The worker's PostgreSQL down under load: it stops acknowledging, holds what it read (no dead letters),
and catches up once the database is back. A private cluster of our own is crashed, never the shared one.

The outage lasts 15 s here to keep CI short; `python bench/faults_report.py` runs it for a minute."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_REDIS_URL
from tests.faults.harness import PrivatePostgres, postgres_bin
from tests.faults.scenarios import postgres_outage


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("needs the PostgreSQL server binaries (initdb, pg_ctl) for a private cluster")
    pg = PrivatePostgres(bindir)
    try:
        pg.init()
        yield pg
    finally:
        pg.destroy()


async def test_postgres_down_holds_pairs_pending_and_catches_up(
    tmp_path: Path, private_postgres: PrivatePostgres, redis: object
) -> None:
    r = await postgres_outage(tmp_path, TEST_REDIS_URL, private_postgres, rate=20, outage_s=15)
    logs = "\n".join(f"--- {name}\n{text[-1500:]}" for name, text in r.notes["logs"].items())

    assert r.client_errors == 0, r.errors
    assert r.dropped == 0
    # While the database was down the worker held what it had read, unacknowledged...
    assert max(r.notes["pending_during_outage"]) > 0, logs
    assert "store unavailable" in r.notes["logs"]["worker-1"]
    # ...sent none of it to the dead-letter stream, and did not die.
    assert r.notes["pairs_dead_during_outage"] == 0
    assert r.notes["worker_alive_after_outage"]
    # Once it was back, everything was stored exactly once.
    assert r.settled, logs
    assert r.expected == r.sent
    assert r.lost == 0, logs
    assert r.duplicated == 0
    assert r.ledger.scores == r.sent
    assert r.ledger.pairs_dead == 0
    assert set(r.notes["exit_codes"].values()) == {0}, logs
