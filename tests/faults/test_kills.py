"""Under live load, the dispatcher (twice) and the worker are SIGKILLed while each holds a batch it has
read and not acknowledged, and started again: nothing is lost and nothing is counted twice.

(tests/integration covers one kill of each on a preloaded stream; this is the same promise with the
whole pipeline running, the kills timed to land mid-batch.)"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import TEST_REDIS_URL
from tests.faults.scenarios import kills


async def test_dispatcher_and_worker_killed_mid_batch_lose_nothing_and_count_nothing_twice(
    tmp_path: Path, redis: object
) -> None:
    r = await kills(tmp_path, TEST_REDIS_URL, rate=25, dispatch_kills=2, worker_kills=1)
    logs = "\n".join(f"--- {name}\n{text[-1500:]}" for name, text in r.notes["logs"].items())

    assert r.client_errors == 0, r.errors
    assert r.dropped == 0
    # Each kill landed while the process held entries read and not yet acknowledged.
    assert len(r.notes["dispatch_held"]) == 2
    assert len(r.notes["worker_held"]) == 1
    assert all(held > 0 for held in r.notes["dispatch_held"] + r.notes["worker_held"])
    # Their successors took those entries over (the last dispatcher and worker say how many)...
    dispatch_reclaimed = re.findall(r"dispatch \S+ stopped: .* (\d+) reclaimed", logs)
    worker_reclaimed = re.findall(r"worker \S+ stopped: .* (\d+) reclaimed", logs)
    assert int(dispatch_reclaimed[-1]) > 0, logs
    assert int(worker_reclaimed[-1]) > 0, logs
    # ...and every request became exactly one capture, one pair, one stored row with one score.
    assert r.settled, logs
    assert r.expected == r.sent
    assert sorted(r.ledger.captured) == sorted(f"kl-{n}" for n in range(r.sent))
    assert r.lost == 0, logs
    assert r.duplicated == 0
    assert len(r.ledger.stored or []) == r.sent
    assert r.ledger.scores == r.sent
    assert r.ledger.dead == r.ledger.pairs_dead == 0
