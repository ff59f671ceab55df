"""What every route is scored on: status agreement, latency, time to first token and generation speed."""

from __future__ import annotations

from comparators.scoring import Comparison, Result, Side


def score_common(c: Comparison) -> Result:
    p, o = c.primary, c.other
    metrics = {
        "status_match": float(status_class(p.status) == status_class(o.status)),
        "latency_delta_ms": o.total_ms - p.total_ms,
    }
    if p.total_ms > 0:
        metrics["latency_ratio"] = o.total_ms / p.total_ms
    if p.ttfb_ms is not None and o.ttfb_ms is not None:
        metrics["ttfb_delta_ms"] = o.ttfb_ms - p.ttfb_ms
    for side, suffix in ((o, ""), (p, "_primary")):
        if side.completion_tokens is not None:
            metrics[f"completion_tokens{suffix}"] = float(side.completion_tokens)
        rate = tokens_per_s(side)
        if rate is not None:
            metrics[f"tokens_per_s{suffix}"] = rate
    return Result(metrics=metrics)


def status_class(status: int | None) -> int | None:
    """2 for 2xx, 4 for 4xx, 5 for 5xx; None when no status came back (a timeout, a reset)."""
    return None if status is None else status // 100


def tokens_per_s(side: Side) -> float | None:
    """Completion tokens over the seconds spent generating them: after the first token on a stream
    (extract leaves ttfb_ms unset on anything else), the whole call otherwise. None when unknown."""
    if side.completion_tokens is None:
        return None
    generating_ms = side.total_ms - side.ttfb_ms if side.ttfb_ms is not None else side.total_ms
    if generating_ms <= 0:
        return None  # the whole answer in one chunk: no time to divide by
    return side.completion_tokens / (generating_ms / 1000)
