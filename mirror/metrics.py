"""Prometheus metrics of the tap: requests, captures, drops by reason, queue depth, latency, cutover."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

DROP_REASONS = (
    "queue_full",  # the bounded capture queue was full (Redis slow or down for a while)
    "redis_error",  # a batch could not be written to Redis
    "too_large",  # a body above limits.max_capture_body_bytes
    "blob_error",  # a large body could not be written to the blob store
    "encode_error",  # the exchange could not be encoded (a bug; logged with its id)
    "shutdown",  # still queued when the shutdown grace period ran out
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60, 120, 600)


class TapMetrics:
    """One instance per tap process; a private registry so tests and workers don't collide."""

    def __init__(self, multiproc_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiproc_dir = multiproc_dir
        reg = self.registry
        self.requests = Counter(
            "shadowgate_tap_requests",
            "Requests answered by the tap, by route kind and status class.",
            ["route", "status"],
            registry=reg,
        )
        self.captured = Counter(
            "shadowgate_tap_captured",
            "Exchanges written to the captures stream.",
            ["route"],
            registry=reg,
        )
        self.dropped = Counter(
            "shadowgate_tap_capture_dropped",
            "Exchanges that were sampled but not captured, by reason.",
            ["reason"],
            registry=reg,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        self.primary_errors = Counter(
            "shadowgate_tap_primary_errors",
            "Requests the primary could not answer (the client got a 502 or 504).",
            ["cause"],
            registry=reg,
        )
        self.queue_depth = Gauge(
            "shadowgate_tap_capture_queue_depth",
            "Exchanges waiting to be written to Redis.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.primary_seconds = Histogram(
            "shadowgate_tap_primary_seconds",
            "Time from forwarding a request to the last byte of the primary's response.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        # Cutover (docs/CUTOVER.md): who answered, the fallbacks to the primary, automatic rollbacks.
        self.cutover_served = Counter(
            "shadowgate_tap_cutover_served",
            "Requests of a tenant x route in cutover, by route kind and the side that answered.",
            ["route", "served_by"],
            registry=reg,
        )
        self.fallbacks = Counter(
            "shadowgate_tap_fallbacks",
            "Cutover requests the candidate did not answer, served by the primary instead, by reason.",
            ["route", "reason"],
            registry=reg,
        )
        self.candidate_seconds = Histogram(
            "shadowgate_tap_candidate_seconds",
            "Time from forwarding a cutover request to the last byte of the candidate's response.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.rollbacks = Counter(
            "shadowgate_tap_auto_rollbacks",
            "Tenant x routes this process sent back from cutover to mirror by itself, by route kind.",
            ["route"],
            registry=reg,
        )
        self._children: dict[tuple[str, str], Counter] = {}

    def count_request(self, route: str, status: int) -> None:
        key = (route, f"{status // 100}xx")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(*key)
        child.inc()

    def track_queue(self, depth: Callable[[], int]) -> None:
        # One process: read the depth at scrape time. Several: each writes its own after every batch.
        if self._multiproc_dir is None:
            self.queue_depth.set_function(depth)

    def queue_sampled(self, depth: int) -> None:
        if self._multiproc_dir is not None:
            self.queue_depth.set(depth)

    def render(self) -> tuple[bytes, str]:
        if self._multiproc_dir is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(self._multiproc_dir))  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
