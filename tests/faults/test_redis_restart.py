"""Redis SIGKILLed under load and started again: clients see nothing, drops are counted, capture,
dispatch and the worker resume by themselves, and nothing Redis had acknowledged is lost."""

from __future__ import annotations

from pathlib import Path

from tests.faults.scenarios import redis_restart


async def test_redis_killed_and_restarted_under_load(tmp_path: Path) -> None:
    r = await redis_restart(tmp_path, rate=40, before_s=3, down_s=3, after_s=3)
    logs = "\n".join(f"--- {name}\n{text[-1500:]}" for name, text in r.notes["logs"].items())

    # The clients never noticed.
    assert r.sent > 300
    assert r.client_errors == 0, r.errors
    # The tap counted what it could not write, and every request is either captured or counted.
    tap = r.notes["tap"]
    assert tap["requests"] == r.sent
    assert r.dropped > 0, "the outage should have cost some captures"
    assert tap["capture"]["captured"] + r.dropped == r.sent
    # Every capture Redis acknowledged to the tap is in the stream after the restart (append-only file)...
    assert len(r.ledger.captured) >= tap["capture"]["captured"]
    # ...capture resumed by itself: requests sent after the restart were captured...
    after = {f"rr-{n}" for n in range(r.notes["restarted_after"] + 40, r.sent)}
    assert after & set(r.ledger.captured), "capture did not resume after the restart"
    # ...and dispatch and the worker resumed too: each capture paired and stored exactly once.
    assert r.settled, logs
    assert r.lost == 0, logs
    assert r.duplicated == 0
    assert r.ledger.scores == len(r.ledger.stored or [])
    assert r.ledger.dead == 0
    assert r.ledger.pairs_dead == 0
    # Nobody crashed or needed a restart; each ended cleanly on SIGTERM.
    assert all(r.notes["alive"].values()), logs
    assert set(r.notes["exit_codes"].values()) == {0}, logs
