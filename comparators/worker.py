"""`shadowgate worker`: a consumer group on the pairs stream; score batches, store them, then acknowledge."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from comparators.assess import Bodies, Prepared, add_similarity, prepare, scored
from comparators.embedder import Embedder
from comparators.scoring import Side
from mirror.attribution import sampled_for
from mirror.blobs import BlobStore, body_bytes
from mirror.consumer import Entry, GroupConsumer, run_until_signalled, sleep_or, stats_dict
from mirror.consumer import check_main as heartbeat_check
from mirror.exchange import Exchange, MalformedEntry, decode_entry
from mirror.streams import Streams, redis_client
from shadowgate.crypto import CryptoError, cipher_from
from shadowgate.redact import Kind, Redactor
from shadowgate.settings import Settings
from store.records import ScoredPair
from store.writes import count_unscored, save_scored

log = logging.getLogger("shadowgate.worker")

_STORE_BACKOFF_MIN_S = 0.5
_STORE_BACKOFF_MAX_S = 5.0


@dataclass
class WorkerStats:
    read: int = 0
    scored: int = 0
    unscored: int = 0  # sampled out while behind: counted in the store, never silently dropped
    failed_batches: int = 0
    store_waits: int = 0  # retries of a scored batch while the database was unreachable
    reclaimed: int = 0
    dead: int = 0
    lag: int = 0
    behind: bool = False
    by_route: collections.Counter[str] = field(default_factory=collections.Counter)

    def line(self) -> str:
        return (
            f"{self.scored} scored, {self.unscored} left unscored while behind, {self.dead} dead-lettered, "
            f"{self.reclaimed} reclaimed, {self.failed_batches} failed batches"
        )

    def as_dict(self) -> dict[str, Any]:
        return stats_dict(self)


class ScoringWorker:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        engine: Engine,
        embedder: Embedder | Callable[[], Embedder],
        *,
        consumer: str | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._w = settings.worker
        self._engine = engine
        self._embedder_or_factory = embedder
        self._embedder: Embedder | None = embedder if isinstance(embedder, Embedder) else None
        streams = Streams(settings.stream_prefix)
        self._consumer = GroupConsumer(
            redis,
            stream=streams.pairs,
            group=streams.compare_group,
            dead_letter=streams.compare_dead_letter,
            heartbeat_key=f"{streams.prefix}:heartbeat:worker",
            consumer=consumer,
            max_deliveries=self._w.max_deliveries,
            reclaim_idle_s=self._w.reclaim_idle_s,
            maxlen=settings.limits.stream_maxlen,
        )
        self.consumer = self._consumer.consumer
        # Pairs, blobs and stored payloads are sealed with the same keys (docs/SECURITY.md).
        self._cipher = cipher_from(settings.encryption)
        self._blobs = BlobStore(settings.blob_path, self._cipher)
        self._redact = settings.redact
        self.stats = WorkerStats()
        self._stop = asyncio.Event()  # run() replaces it with the caller's

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            factory = self._embedder_or_factory
            assert callable(factory)
            self._embedder = factory()  # once per process: the model is the expensive part
        return self._embedder

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> WorkerStats:
        self._stop = stop
        await self._consumer.ensure_group()
        heartbeat = asyncio.create_task(
            self._consumer.heartbeat(stop, self._w.heartbeat_s, self.stats.as_dict), name="worker-heartbeat"
        )
        next_reclaim = 0.0
        try:
            while not stop.is_set():
                try:
                    batch: list[Entry] = []
                    if time.monotonic() >= next_reclaim:
                        batch = await self._consumer.reclaim()
                        self.stats.reclaimed += len(batch)
                        self.stats.dead = self._consumer.dead
                        next_reclaim = time.monotonic() + min(self._w.reclaim_idle_s / 2, 5.0)
                    if not batch:
                        batch = await self._consumer.read(self._w.batch, block_ms=100 if burst else 1000)
                        self.stats.read += len(batch)
                    if batch:
                        await self._process(batch)
                    elif burst and not await self._consumer.pending():
                        break
                except (RedisError, OSError) as exc:
                    log.warning("Redis unavailable (%s); retrying", type(exc).__name__)
                    await sleep_or(stop, 1.0)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        log.info("worker %s stopped: %s", self.consumer, self.stats.line())
        return self.stats

    async def _process(self, batch: list[Entry]) -> None:
        good: list[tuple[bytes, Exchange]] = []
        for entry_id, fields in batch:
            try:
                good.append((entry_id, decode_entry(fields, self._cipher)))
            except MalformedEntry as exc:
                await self._consumer.dead_letter(entry_id, fields, str(exc))
            except CryptoError as exc:  # this process lacks the pair's key: it stays pending, unread
                log.error("pair entry %s not scored: %s", entry_id.decode(), exc)
        self.stats.dead = self._consumer.dead
        if not good:
            return
        to_score, skipped = await self._sample(good)
        if await self._done(to_score, skipped, [entry_id for entry_id, _ in good]):
            return
        if self._stop.is_set() or len(to_score) < 2:
            return  # what failed stays pending: retried, then reclaimed, then dead-lettered
        # One poison pair must not hold its batch-mates back (they would be retried, reclaimed and
        # dead-lettered with it): each on its own, and only what fails again stays pending.
        kept = {entry_id for entry_id, _ in to_score}
        for entry in to_score:
            await self._done([entry], [], [entry[0]])
        if skipped:
            await self._done([], skipped, [entry_id for entry_id, _ in good if entry_id not in kept])

    async def _done(
        self, entries: list[tuple[bytes, Exchange]], skipped: list[Exchange], ids: list[bytes]
    ) -> bool:
        """Score, store and acknowledge; False (nothing acknowledged) if any of it failed."""
        try:
            items = await self._score(entries)
        except Exception:  # left pending: retried, then reclaimed, then dead-lettered
            self.stats.failed_batches += 1
            log.exception("batch of %d pairs not scored; left pending for a retry", len(entries))
            return False
        if not await self._store_held(items, skipped, ids):
            return False
        await self._consumer.ack(*ids)
        self.stats.scored += len(items)
        self.stats.unscored += len(skipped)
        for item in items:
            self.stats.by_route[item.route] += 1
        return True

    async def _store_held(self, items: list[ScoredPair], skipped: list[Exchange], ids: list[bytes]) -> bool:
        """Store a scored batch. While the database is unreachable, hold the batch, unacknowledged and
        kept ours (no delivery counted, so no reclaim or dead letter), and retry until it is back or we
        are stopped: an outage of the store must not send good pairs to the dead-letter stream."""
        backoff = _STORE_BACKOFF_MIN_S
        while True:
            try:
                await asyncio.to_thread(self._store, items, skipped)
            except (OperationalError, InterfaceError) as exc:
                self.stats.store_waits += 1
                log.warning(
                    "store unavailable (%s); holding %d pairs, retrying in %.1f s",
                    type(exc).__name__,
                    len(ids),
                    backoff,
                )
                if self._stop.is_set():
                    return False  # still pending: the next worker reclaims it
                with contextlib.suppress(RedisError, OSError):
                    await self._consumer.touch(*ids)
                await sleep_or(self._stop, backoff)
                if self._stop.is_set():
                    return False
                backoff = min(backoff * 2, _STORE_BACKOFF_MAX_S)
            except Exception:  # the batch stays pending: retried, then reclaimed, then dead-lettered
                self.stats.failed_batches += 1
                log.exception("batch of %d pairs not stored; left pending for a retry", len(ids))
                return False
            else:
                return True

    async def _sample(
        self, good: list[tuple[bytes, Exchange]]
    ) -> tuple[list[tuple[bytes, Exchange]], list[Exchange]]:
        """When the stream runs ahead by more than `max_lag`, score a sample and count the rest."""
        self.stats.lag = await self._lag()
        self.stats.behind = self.stats.lag > self._w.max_lag
        if not self.stats.behind:
            return good, []
        keep = [(e, x) for e, x in good if sampled_for(e.decode(), self._w.sample_when_behind)]
        skipped = [x for e, x in good if not sampled_for(e.decode(), self._w.sample_when_behind)]
        return keep, skipped

    async def _lag(self) -> int:
        for group in await self._redis.xinfo_groups(self._consumer.stream):
            if group.get("name") in (self._consumer.group, self._consumer.group.encode()):
                lag = group.get("lag")
                return int(lag) if lag is not None else 0
        return 0

    async def _score(self, entries: list[tuple[bytes, Exchange]]) -> list[ScoredPair]:
        loaded = [(entry_id.decode(), x, await self._bodies(x)) for entry_id, x in entries]

        def work() -> list[ScoredPair]:
            prepared = [_prepare(k, x, b, self._redact) for k, x, b in loaded]
            if loaded:
                # Loaded (and compiled) with the first batch, in this thread: heartbeats go on.
                embedder = self.embedder
                add_similarity(
                    [p for p, _ in prepared],
                    embedder.encode,
                    embedder.count_tokens,
                    embedder.window,
                    embedder.count_tokens_many,
                )
            return [scored(p, b) for p, b in prepared]

        # Scoring is CPU work (the model above all): off the loop, so heartbeats keep beating.
        return await asyncio.to_thread(work)

    async def _bodies(self, x: Exchange) -> Bodies:
        return Bodies(
            request=await body_bytes(x.request.body, self._blobs),
            primary=await body_bytes(x.primary.body, self._blobs),
            candidate=await body_bytes(x.candidate.body, self._blobs) if x.candidate else b"",
            secondary=await body_bytes(x.secondary.body, self._blobs) if x.secondary else b"",
        )

    def _store(self, items: list[ScoredPair], skipped: list[Exchange]) -> None:
        save_scored(self._engine, items, self._cipher)
        counts: collections.Counter[tuple[str, str, int]] = collections.Counter(
            (x.tenant, x.route, int(x.captured_at // 3600)) for x in skipped
        )
        for (tenant, route, hour), n in counts.items():
            count_unscored(self._engine, tenant, route, _hour(hour), n)


def _prepare(key: str, x: Exchange, bodies: Bodies, redact: Sequence[Kind]) -> tuple[Prepared, Bodies]:
    """Sides extracted and scored; with `redact`, the identifiers in the request and in every side are
    replaced first, by one redactor, so both sides get the same placeholders for the same values."""
    if not redact:
        return prepare(key, x, bodies), bodies
    redactor = Redactor(redact)
    bodies = dataclasses.replace(bodies, request=redactor.bytes(bodies.request))

    def clean(side: Side) -> Side:
        return dataclasses.replace(side, text=redactor.maybe(side.text), json=redactor.value(side.json))

    return prepare(key, x, bodies, clean), bodies


def _hour(bucket: int) -> datetime:
    return datetime.fromtimestamp(bucket * 3600, tz=UTC)


def embedder_for(settings: Settings) -> Callable[[], Embedder]:
    def load() -> Embedder:
        return Embedder(
            settings.embedding_model,
            device=settings.embedding_device,
            precision=settings.embedding_precision,
            compile=settings.embedding_compile,
        )

    return load


def run(settings: Settings, *, burst: bool = False) -> int:
    """Blocking entry of `shadowgate worker`: until SIGTERM/SIGINT (the batch in hand is finished), or
    with `burst` until nothing is pending."""
    from store.db import open_store

    async def main(stop: asyncio.Event) -> WorkerStats:
        assert settings.redis_url is not None
        redis = redis_client(settings.redis_url)
        try:
            worker = ScoringWorker(redis, settings, engine, embedder_for(settings))
            log.info(
                "worker %s: %s -> %s", worker.consumer, Streams(settings.stream_prefix).pairs, engine.url
            )
            return await worker.run(stop, burst=burst)
        finally:
            await redis.aclose()

    with open_store(settings.database_url) as engine:
        run_until_signalled(main)
    return 0


def check_main(settings: Settings) -> int:
    """`shadowgate worker --check`: 0 when a worker's heartbeat is fresh, else 1."""
    assert settings.redis_url is not None
    return heartbeat_check(settings.redis_url, f"{settings.stream_prefix}:heartbeat:worker:*", "worker")
