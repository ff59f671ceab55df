"""The counters a dispatcher and a worker put in their heartbeats survive JSON as they are."""

from __future__ import annotations

import json

from comparators.worker import WorkerStats
from mirror.dispatch import DispatchStats


def test_heartbeat_counters_round_trip_through_json() -> None:
    dispatch = DispatchStats(paired=3)
    dispatch.candidate_errors["timeout"] += 2
    dispatch.candidate_errors["http_5xx"] += 1
    got = json.loads(json.dumps(dispatch.as_dict()))
    assert got["candidate_errors"] == {"timeout": 2, "http_5xx": 1}
    assert got["paired"] == 3

    worker = WorkerStats(scored=5)
    worker.by_route["chat"] += 5
    assert json.loads(json.dumps(worker.as_dict()))["by_route"] == {"chat": 5}
