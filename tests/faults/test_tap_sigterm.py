"""`shadowgate tap` gets SIGTERM with requests in flight (slow answers, SSE streams): each of them
completes, the capture queue is flushed to the stream, and no client sees an error."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TEST_REDIS_URL
from tests.faults.scenarios import tap_sigterm


async def test_sigterm_under_load_completes_in_flight_requests_and_flushes_captures(
    tmp_path: Path, redis: object
) -> None:
    r = await tap_sigterm(tmp_path, TEST_REDIS_URL, rate=60, load_s=3)
    logs = "\n".join(f"--- {name}\n{text[-1500:]}" for name, text in r.notes["logs"].items())

    assert r.notes["in_flight_at_sigterm"] > 5, "SIGTERM should land with requests in flight"
    assert r.client_errors == 0, r.errors
    assert r.notes["tap_exit"] == 0, logs
    # Its last line accounts for every request: all served, all captured, nothing dropped.
    requests, primary_failures, captured, dropped = r.notes["summary"]
    assert (int(requests), int(primary_failures), int(captured), dropped) == (r.sent, 0, r.sent, "none")
    # The flushed queue really reached Redis: one capture per request, then one pair each.
    assert sorted(r.ledger.captured) == sorted(f"st-{n}" for n in range(r.sent))
    assert r.settled, logs
    assert r.lost == 0
    assert r.duplicated == 0
