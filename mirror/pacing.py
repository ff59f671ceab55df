"""Pacing: send captured requests with their original spacing, sped up, or at a fixed rate (pure)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """`delay(ts)` says how long to wait before sending the event captured at `ts` (unix seconds).

    With `rate`, events go out 1/rate apart. Otherwise the first event anchors the schedule and each
    later one is due `(ts - first_ts) / speed` after it. A pacer that falls more than
    `reanchor_after_s` behind starts a new schedule from now instead of catching up in a burst; one
    that would wait longer than `max_delay_s` (an event stamped far ahead of the schedule: a tap whose
    clock jumped, or a bogus entry) starts a new schedule too, instead of stalling everything behind it.
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        rate: float | None = None,
        reanchor_after_s: float | None = None,
        max_delay_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self._speed = speed
        self._rate = rate
        self._reanchor = reanchor_after_s
        self._max_delay = max_delay_s
        self._clock = clock
        self._anchor: tuple[float, float] | None = None  # (clock at anchor, event ts at anchor)
        self._next_at: float | None = None

    def delay(self, ts: float) -> float:
        now = self._clock()
        if self._rate is not None:
            due = now if self._next_at is None else max(self._next_at, now - 1.0 / self._rate)
            self._next_at = due + 1.0 / self._rate
            return max(0.0, due - now)
        if self._anchor is None:
            self._anchor = (now, ts)
            return 0.0
        wall0, ts0 = self._anchor
        due = wall0 + (ts - ts0) / self._speed
        behind = self._reanchor is not None and now - due > self._reanchor
        too_far = self._max_delay is not None and due - now > self._max_delay
        if behind or too_far:
            self._anchor = (now, ts)
            return 0.0
        return max(0.0, due - now)
