"""A circuit breaker for the candidate: stop after N consecutive connect failures, probe, resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"  # calls flow
    OPEN = "open"  # no calls until the cooldown ends
    HALF_OPEN = "half_open"  # one probe call is allowed


class Breaker:
    """Pure state machine; the caller asks `allow()` before a call and reports the outcome."""

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        max_cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failures
        self._base = cooldown_s
        self._max = max(max_cooldown_s, cooldown_s)
        self._clock = clock
        self._consecutive = 0
        self._cooldown = cooldown_s
        self._opened_at = 0.0
        self._probing = False
        self.state = State.CLOSED
        self.opened = 0  # how many times it opened, for the summary

    def allow(self) -> bool:
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN and self._clock() - self._opened_at >= self._cooldown:
            self.state = State.HALF_OPEN
            self._probing = False
        if self.state is State.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def wait_s(self) -> float:
        """How long until a call may be allowed again (0 when closed)."""
        if self.state is State.CLOSED:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - self._clock())

    def release_probe(self) -> None:
        """The allowed probe found nothing to send: the next call may probe instead."""
        if self.state is State.HALF_OPEN:
            self._probing = False

    def success(self) -> None:
        self._consecutive = 0
        self._cooldown = self._base
        self._probing = False
        self.state = State.CLOSED

    def connect_failure(self) -> None:
        self._consecutive += 1
        if self.state is State.HALF_OPEN:
            self._cooldown = min(self._cooldown * 2, self._max)
            self._open()
        elif self.state is State.CLOSED and self._consecutive >= self._threshold:
            self._open()

    def _open(self) -> None:
        self.state = State.OPEN
        self._opened_at = self._clock()
        self._probing = False
        self.opened += 1
