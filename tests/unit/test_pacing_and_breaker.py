"""The pacer (replay and backlog spacing) and the candidate's circuit breaker, on a fake clock."""

from __future__ import annotations

import pytest

from mirror.breaker import Breaker, State
from mirror.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_original_spacing_sped_up() -> None:
    clock = Clock()
    pacer = Pacer(speed=4, clock=clock)
    assert pacer.delay(50.0) == 0.0  # the first event anchors the schedule
    assert pacer.delay(54.0) == pytest.approx(1.0)  # 4 s of capture at 4x is 1 s
    clock.now += 1.0
    assert pacer.delay(58.0) == pytest.approx(1.0)
    clock.now += 5.0  # we fell behind: send at once, without re-anchoring by default
    assert pacer.delay(60.0) == 0.0


def test_reanchor_turns_a_backlog_into_production_spacing_not_a_burst() -> None:
    clock = Clock()
    pacer = Pacer(reanchor_after_s=1.0, clock=clock)
    pacer.delay(0.0)
    clock.now += 100.0  # an outage: the next captures are long overdue
    assert pacer.delay(1.0) == 0.0  # re-anchored here
    assert pacer.delay(1.5) == pytest.approx(0.5)  # and spaced as they were captured
    assert pacer.delay(3.0) == pytest.approx(2.0)


def test_fixed_rate() -> None:
    clock = Clock()
    pacer = Pacer(rate=50, clock=clock)
    delays = [pacer.delay(0.0) for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])


def test_bad_pacing_is_refused() -> None:
    with pytest.raises(ValueError, match="speed"):
        Pacer(speed=0)
    with pytest.raises(ValueError, match="rate"):
        Pacer(rate=-1)


def test_breaker_opens_after_consecutive_connect_failures_and_probes() -> None:
    clock = Clock()
    breaker = Breaker(failures=3, cooldown_s=5, max_cooldown_s=20, clock=clock)
    breaker.connect_failure()
    breaker.connect_failure()
    breaker.success()  # an answer in between resets the count
    for _ in range(2):
        breaker.connect_failure()
    assert breaker.state is State.CLOSED
    breaker.connect_failure()
    assert breaker.state is State.OPEN
    assert not breaker.allow()
    assert breaker.wait_s() == pytest.approx(5)
    clock.now += 5
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # and only one
    breaker.connect_failure()  # the probe failed: open again, for twice as long
    assert breaker.state is State.OPEN
    assert breaker.wait_s() == pytest.approx(10)
    clock.now += 10
    assert breaker.allow()
    breaker.release_probe()  # nothing to probe with: the next call may probe
    assert breaker.allow()
    breaker.success()
    assert breaker.state is State.CLOSED
    assert breaker.allow()
    assert breaker.opened == 2


def test_breaker_cooldown_is_capped() -> None:
    clock = Clock()
    breaker = Breaker(failures=1, cooldown_s=5, max_cooldown_s=12, clock=clock)
    breaker.connect_failure()
    for _ in range(5):
        clock.now += breaker.wait_s()
        assert breaker.allow()
        breaker.connect_failure()
    assert breaker.wait_s() == pytest.approx(12)
