"""Pure: the candidate's outcomes in cutover, counted per second, and the rule that rolls it back.

A window's counts are `n` answers, `errors` among them, and `slow`: answers that took longer than the
policy's p95 limit. "p95 above the limit" is the same statement as "more than 5 % slower than the
limit", so three counters per second judge both the error rate and the latency, and they add up
across tap replicas without any histogram.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

# p95: more than this share of answers above the limit puts the 95th percentile above it.
P95_TAIL = 0.05

Key = tuple[str, str, str]  # tenant, route, epoch of the cutover (ModeEntry.epoch)


@dataclass(frozen=True)
class Limits:
    """One tenant x route's rollback limits, from its effective gate policy and the settings."""

    error_rate_max: float
    p95_ms_max: float
    min_requests: int


@dataclass
class Counts:
    n: int = 0
    errors: int = 0
    slow: int = 0

    def add(self, other: Counts) -> None:
        self.n += other.n
        self.errors += other.errors
        self.slow += other.slow

    @property
    def error_rate(self) -> float:
        return self.errors / self.n if self.n else 0.0

    @property
    def slow_rate(self) -> float:
        return self.slow / self.n if self.n else 0.0


@dataclass(frozen=True)
class Breach:
    rule: str  # "error_rate" or "latency"
    reason: str  # one sentence for the audit log and the log line


def breach(counts: Counts, limits: Limits, window_s: float) -> Breach | None:
    """The rollback rule: enough answers in the window, and too many errors or a p95 over the limit."""
    if counts.n < limits.min_requests:
        return None
    if counts.error_rate > limits.error_rate_max:
        return Breach(
            "error_rate",
            f"candidate error rate {counts.error_rate:.1%} ({counts.errors} of {counts.n}) over the last "
            f"{window_s:.0f} s is above the policy's {limits.error_rate_max:.1%}",
        )
    if counts.slow_rate > P95_TAIL:
        return Breach(
            "latency",
            f"candidate p95 latency over the last {window_s:.0f} s is above the policy's "
            f"{limits.p95_ms_max:.0f} ms ({counts.slow} of {counts.n} answers slower)",
        )
    return None


class Tally:
    """A replica's outcomes not yet written to Redis: counts per key and second. `record` is the hot
    path (a few dict operations); `take` hands everything over and starts afresh."""

    def __init__(self) -> None:
        self._pending: defaultdict[Key, defaultdict[int, Counts]] = defaultdict(lambda: defaultdict(Counts))

    def record(self, key: Key, second: int, *, ok: bool, slow: bool) -> None:
        c = self._pending[key][second]
        c.n += 1
        c.errors += not ok
        c.slow += slow

    def take(self) -> dict[Key, dict[int, Counts]]:
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(Counts))
        return {k: dict(v) for k, v in pending.items()}

    def __bool__(self) -> bool:
        return bool(self._pending)


def fields_of(per_second: dict[int, Counts]) -> dict[str, int]:
    """Hash fields `<second>:n|e|s` to add to the window's hash (HINCRBY each)."""
    out: dict[str, int] = {}
    for second, c in per_second.items():
        out[f"{second}:n"] = c.n
        if c.errors:
            out[f"{second}:e"] = c.errors
        if c.slow:
            out[f"{second}:s"] = c.slow
    return out


def window(fields: dict[bytes, bytes], now_s: int, window_s: float) -> tuple[Counts, list[bytes]]:
    """Sum the fields of the last `window_s` seconds; also the fields older than that, to delete."""
    total = Counts()
    old: list[bytes] = []
    first = now_s - int(window_s) + 1
    for name, value in fields.items():
        second_s, _, kind = name.partition(b":")
        try:
            second = int(second_s)
            count = int(value)
        except ValueError:
            old.append(name)
            continue
        if second < first:
            old.append(name)
            continue
        if kind == b"n":
            total.n += count
        elif kind == b"e":
            total.errors += count
        elif kind == b"s":
            total.slow += count
    return total, old
