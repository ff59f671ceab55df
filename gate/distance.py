"""How far a marginal metric is from a decision: about how many pairs at the current rates would settle it,
and why an interval is unbounded when it is (pure)."""

from __future__ import annotations

import math

from gate.intervals import Bounds

_MAX_PAIRS = 10_000_000  # beyond this, "no realistic number of pairs" is the honest answer


def pairs_to_bound_quantile(q: float, bounds: Bounds) -> int:
    """The fewest values that can bound the q-quantile from above: the largest value becomes a bound only
    once that many values all below the quantile would be too unlikely (for a fixed n: q^n <= alpha / 2)."""
    high = 1
    while not bounds.upper_bounded(high, q):
        high *= 2
    low = high // 2 + 1 if high > 1 else 1
    while low < high:
        mid = (low + high) // 2
        if bounds.upper_bounded(mid, q):
            high = mid
        else:
            low = mid + 1
    return high


def pairs_to_decide_rate(rate: float, n: int, limit: float, bounds: Bounds) -> int | None:
    """The fewest pairs at which the bounds around the same observed `rate` exclude `limit` (None when the
    rate sits on the limit, or only beyond any realistic count)."""
    if rate == limit:
        return None

    def decided(m: int) -> bool:
        lo, hi = bounds.rate(round(rate * m), m, limit)
        return hi <= limit if rate < limit else lo > limit

    high = max(n, 1)
    while not decided(high):
        high *= 2
        if high > _MAX_PAIRS:
            return None
    low = max(n, 1)
    while low < high:
        mid = (low + high) // 2
        if decided(mid):
            high = mid
        else:
            low = mid + 1
    return high


def pairs_by_width(n: int, value: float, lo: float, hi: float, limit: float) -> int | None:
    """About how many pairs would bring the interval's near end past `limit`, assuming its half-width
    shrinks as 1/sqrt(n) and the value stays (None when the value sits on the limit)."""
    gap = abs(value - limit)
    half = (hi - value) if value < limit else (value - lo)
    if gap == 0 or not math.isfinite(half) or n <= 0:
        return None
    needed = math.ceil(n * (half / gap) ** 2)
    return needed if needed <= _MAX_PAIRS else None


def sentence(n: int, needed: int | None) -> str:
    """The distance in words, for a verdict's reason."""
    if needed is None:
        return " At the current rate no realistic number of pairs decides it: the value sits on its limit."
    more = max(needed - n, 1)
    return f" At the current rate about {more:,} more pairs ({needed:,} in all) would decide it."
