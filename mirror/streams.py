"""Stream and consumer-group names, in one place for every producer and consumer."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff


def redis_client(url: str) -> Redis:
    """A Redis client that fails fast: a slow or absent Redis must cost a writer, never a request."""
    return Redis.from_url(
        url,
        socket_timeout=5.0,
        socket_connect_timeout=1.0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=1),
    )


@dataclass(frozen=True, slots=True)
class Streams:
    prefix: str

    @property
    def captures(self) -> str:
        """Exchanges captured by the tap: request + primary side."""
        return f"{self.prefix}:captures"

    @property
    def pairs(self) -> str:
        """Exchanges with the candidate side added by dispatch."""
        return f"{self.prefix}:pairs"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def dispatch_group(self) -> str:
        return "dispatch"

    @property
    def compare_group(self) -> str:
        return "compare"

    @property
    def compare_dead_letter(self) -> str:
        return f"{self.prefix}:pairs-dead"
