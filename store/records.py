"""What the worker hands the store for one scored pair: metadata, scores per comparison, payloads apart."""

from __future__ import annotations

from dataclasses import dataclass, field

from comparators.scoring import Result


@dataclass(frozen=True, slots=True)
class SideMeta:
    """One side's metrics-only record: no body, nothing clinical."""

    status: int | None
    error: str | None
    total_ms: float
    ttfb_ms: float | None
    model: str | None = None
    model_version: str | None = None
    gpu: str | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    """The clinical content of a pair, stored apart so it can be purged on its own retention."""

    request: bytes
    primary: str | None
    candidate: str | None
    secondary: str | None = None


@dataclass(frozen=True)
class ScoredPair:
    # The pairs-stream entry id: unique per pair, and the same when a worker retries the entry, so
    # writing it twice changes nothing (idempotent).
    key: str
    exchange_id: str
    tenant: str
    route: str
    replay: str | None  # the replay run id; None for live traffic
    captured_at: float  # unix seconds
    paired_at: float | None
    primary: SideMeta
    candidate: SideMeta | None
    secondary: SideMeta | None
    # By role compared with the primary: "candidate", and "secondary" where a noise-floor side exists.
    scores: dict[str, Result] = field(default_factory=dict)
    payload: Payload | None = None
