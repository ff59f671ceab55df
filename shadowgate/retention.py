"""`shadowgate purge`: clinical payloads older than the retention period go — from the store, the blob
store and the Redis streams — while the metrics (pairs, scores, verdicts, the audit log) stay."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from mirror.blobs import BlobStore
from mirror.streams import Streams, redis_client
from shadowgate.settings import ConfigError, Settings
from shadowgate.when import parse_when
from store.db import open_store
from store.writes import purge_payloads


@dataclass
class Purged:
    cutoff: datetime
    store_rows: int = 0  # payload and findings rows
    blobs: int = 0  # blob files
    entries: dict[str, int] = field(default_factory=dict)  # stream -> entries trimmed
    redis_error: str | None = None  # the streams could not be trimmed

    def line(self) -> str:
        trimmed = ", ".join(f"{name} {n}" for name, n in self.entries.items()) or "none"
        if self.redis_error:
            trimmed = f"not trimmed, Redis unreachable ({self.redis_error})"
        return (
            f"purged everything captured before {self.cutoff:%Y-%m-%d %H:%M} UTC: {self.store_rows} payload "
            f"and findings rows, {self.blobs} blob files, stream entries: {trimmed}"
        )


def cutoff_ms(older_than: str | None, retention_days: float, *, now: float | None = None) -> int:
    """The purge's cutoff in unix ms: `older_than` (an age like 30d, or an ISO 8601 moment), else
    `retention_days` ago."""
    now = time.time() if now is None else now
    if older_than is None:
        return int((now - retention_days * 86_400) * 1000)
    return parse_when(older_than, now=now)


async def trim_streams(redis: Redis, streams: Streams, cutoff: int) -> dict[str, int]:
    """Delete every entry older than `cutoff` (unix ms) from the streams that hold payloads. Entry ids
    are capture (or pairing) times, so this is one exact XTRIM MINID per stream."""
    trimmed = {}
    for name in (streams.captures, streams.pairs, streams.dead_letter, streams.compare_dead_letter):
        trimmed[name] = int(await redis.xtrim(name, minid=f"{cutoff}-0", approximate=False))
    return trimmed


async def purge(settings: Settings, cutoff: int, redis: Redis | None) -> Purged:
    """Purge the store, the blob store, and (when `redis` is given) the streams."""
    when = datetime.fromtimestamp(cutoff / 1000, tz=UTC)
    result = Purged(cutoff=when)
    with open_store(settings.database_url) as engine:
        result.store_rows = await asyncio.to_thread(purge_payloads, engine, when)
    result.blobs = await asyncio.to_thread(BlobStore(settings.blob_path).purge, cutoff / 1000)
    if redis is not None:
        try:
            result.entries = await trim_streams(redis, Streams(settings.stream_prefix), cutoff)
        except (RedisError, OSError) as exc:
            result.redis_error = type(exc).__name__
    return result


def run(settings: Settings, *, older_than: str | None) -> int:
    """Blocking entry of `shadowgate purge`: 0 when everything was purged, 1 when the streams could
    not be (the store and the blobs were)."""
    from shadowgate.runtime import new_event_loop

    cutoff = cutoff_ms(older_than, settings.retention_days)
    if cutoff > time.time() * 1000:
        raise ConfigError("--older-than must be a time in the past (an age like 30d, or an ISO 8601 moment)")

    async def main() -> Purged:
        assert settings.redis_url is not None
        redis = redis_client(settings.redis_url)
        try:
            return await purge(settings, cutoff, redis)
        finally:
            await redis.aclose()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        result = runner.run(main())
    print(result.line())
    return 1 if result.redis_error else 0
