"""What the judge sees of one tenant x route: per-pair samples, already read from the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Samples:
    """The pairs of one tenant x route in the judged window, one entry per pair, same order everywhere.

    Metric lists hold None where the pair has no value for that metric (e.g. no text to compare)."""

    tenant: str
    route: str
    keys: list[str]  # pair keys (pairs-stream entry ids), for the worst examples
    primary_ms: list[float]  # the primary's total time per pair
    candidate_ms: list[float | None]  # None where the candidate did not answer
    candidate_failed: list[bool]  # an error class, no status, or 5xx
    primary_failed: list[bool]
    # Candidate-vs-primary metrics, by METRICS name (comparators/scoring.py).
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    # The same metrics for primary-vs-secondary, where a noise-floor side exists (shorter lists).
    noise: dict[str, list[float | None]] = field(default_factory=dict)
    unscored: int = 0  # pairs the worker left unscored while behind (counted, not judged)
    # How many verdicts were already given for this tenant x route under this policy (repeated looks).
    looks: int = 0
    # A clinician's mark on a pair's critical clinical flag, by pair key: "real" or "false_alarm".
    reviews: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Corrupt or partial samples are refused in one sentence rather than judged wrongly."""
        n = len(self.keys)
        per_pair: dict[str, Sequence[object]] = {
            "primary_ms": self.primary_ms,
            "candidate_ms": self.candidate_ms,
            "candidate_failed": self.candidate_failed,
            "primary_failed": self.primary_failed,
            **{f"metric {m}": v for m, v in self.metrics.items()},
        }
        for name, values in per_pair.items():
            if len(values) != n:
                raise ValueError(
                    f"corrupt samples for {self.tenant} x {self.route}: {name} has {len(values)} values "
                    f"for {n} pairs"
                )
        if len(set(self.keys)) != n:
            raise ValueError(f"corrupt samples for {self.tenant} x {self.route}: a pair key appears twice")
        if self.unscored < 0 or self.looks < 0:
            raise ValueError(f"corrupt samples for {self.tenant} x {self.route}: negative counts")

    @property
    def n(self) -> int:
        return len(self.keys)
