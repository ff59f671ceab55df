"""A candidate that is slow, resets, answers garbage or errors, floods, sends a gzip bomb, then dies
for a while: each recorded as the candidate error it is, in bounded memory, and the users' answers
(served by the same process: `shadowgate tap --with-dispatch`) untouched."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TEST_REDIS_URL
from tests.faults.scenarios import CANDIDATE_FAULTS, candidate_faults


async def test_candidate_faults_are_recorded_and_never_reach_the_users(tmp_path: Path, redis: object) -> None:
    limit = 4_000_000
    r = await candidate_faults(tmp_path, TEST_REDIS_URL, rate=30, body_limit=limit)
    logs = "\n".join(f"--- {name}\n{text[-1500:]}" for name, text in r.notes["logs"].items())

    # The users only ever saw the primary: every request answered, nothing dropped.
    assert r.sent > 250
    assert r.client_errors == 0, r.errors
    assert r.dropped == 0
    # Each misbehaviour is recorded as its own error class, on every pair that acted it out.
    classes = r.notes["classes"]
    for mode, error in CANDIDATE_FAULTS.items():
        if mode != "none":
            assert classes[(mode, error)] > 0, (mode, classes)
    wrong = {k: n for k, n in classes.items() if k[0] != "none" and CANDIDATE_FAULTS[k[0]] != k[1]}
    assert not wrong, wrong
    # While the candidate was dead, calls were refused (until the breaker opened) and the captures
    # waited; once it was back they were paired normally.
    none = {error: n for (mode, error), n in classes.items() if mode == "none"}
    assert none.get("connect_refused", 0) > 0, classes
    assert set(none) <= {None, "connect_refused"}, classes
    # Nothing lost or paired twice; the store has every pair, errors included.
    assert r.settled, logs
    assert r.lost == 0, logs
    assert r.duplicated == 0
    assert r.ledger.dead == 0
    # Bounded memory: the candidate pushed far more than the body limit, and its gzip bombs would
    # inflate to 1 GiB each; the tap process (which ran the dispatcher) never came near that. (The
    # worker's decoding is bounded the same way: tests/fuzz/test_decoding.py.)
    assert r.notes["candidate_sent_bytes"] > 20 * limit
    assert r.notes["tap_peak_rss_mb"] < 300, r.notes["tap_peak_rss_mb"]
    assert set(r.notes["exit_codes"].values()) == {0}, logs
