"""Fire-and-forget capture: a bounded queue on the hot path, one writer task batching XADDs to Redis."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mirror.blobs import BlobStore, offload_bodies
from mirror.exchange import Exchange, encode_entry
from mirror.metrics import TapMetrics
from mirror.streams import Streams
from shadowgate.crypto import Cipher
from shadowgate.settings import Limits

log = logging.getLogger("shadowgate.capture")

_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 2.0

Fields = dict[str, bytes | str | int]
# What waits in the queue: an exchange already encoded (route, entry fields), which the garbage
# collector does not track, so a full queue costs no GC pauses; or, rarely, an exchange whose large
# bodies must first go to the blob store.
Queued = tuple[str, Fields] | Exchange


class CaptureWriter:
    """`submit` never waits; `run` drains the queue in pipelined batches; `close` flushes for a grace period.

    When Redis is slow or down the queue fills and new exchanges are dropped and counted; the writer
    keeps trying with a capped backoff and resumes by itself when Redis answers again.
    """

    def __init__(
        self,
        redis: Redis,
        streams: Streams,
        limits: Limits,
        blobs: BlobStore,
        metrics: TapMetrics,
        cipher: Cipher | None = None,
    ) -> None:
        self._redis = redis
        self._cipher = cipher  # seals each entry's record; the blob store seals large bodies itself
        self._stream = streams.captures
        self._limits = limits
        self._blobs = blobs
        self._metrics = metrics
        self._queue: asyncio.Queue[Queued] = asyncio.Queue(limits.capture_queue)
        self._closing = False
        self._inflight = 0
        self._linger_s = limits.capture_linger_ms / 1000
        self.captured = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        metrics.track_queue(self._queue.qsize)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n
        self._metrics.dropped.labels(reason).inc(n)

    def submit(self, exchange: Exchange) -> None:
        if self._closing:
            self.drop("shutdown")
            return
        if self._queue.full():
            self.drop("queue_full")
            return
        item: Queued
        if _largest_body(exchange) > self._limits.inline_body_bytes:
            item = exchange
        else:
            try:
                item = (exchange.route, encode_entry(exchange, self._cipher))
            except (msgspec.EncodeError, TypeError, ValueError):
                log.exception("cannot encode exchange %s", exchange.id)
                self.drop("encode_error")
                return
        self._queue.put_nowait(item)

    async def run(self) -> None:
        backoff = _BACKOFF_MIN_S
        while True:
            batch = [await self._queue.get()]
            if self._linger_s and self._queue.qsize() < self._limits.capture_batch:
                # Let a few more arrive: one pipeline for many entries costs the event loop (which
                # also serves the users) far less than one per request.
                await asyncio.sleep(self._linger_s)
            while len(batch) < self._limits.capture_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._inflight = len(batch)
            try:
                ok = await self._write(batch)
            finally:
                self._inflight = 0
                for _ in batch:
                    self._queue.task_done()
            self._metrics.queue_sampled(self._queue.qsize())
            if ok:
                backoff = _BACKOFF_MIN_S
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _write(self, batch: list[Queued]) -> bool:
        entries: list[tuple[str, Fields]] = []
        for item in batch:
            if not isinstance(item, Exchange):
                entries.append(item)
                continue
            exchange = item
            try:
                stored = await offload_bodies(exchange, self._blobs, self._limits.inline_body_bytes)
                entries.append((stored.route, encode_entry(stored, self._cipher)))
            except OSError:
                log.warning("blob store write failed for exchange %s", exchange.id)
                self.drop("blob_error")
            except (msgspec.EncodeError, TypeError, ValueError):
                log.exception("cannot encode exchange %s", exchange.id)
                self.drop("encode_error")
        if not entries:
            return True
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for _, fields in entries:
                    pipe.xadd(
                        self._stream,
                        fields,  # type: ignore[arg-type]
                        maxlen=self._limits.stream_maxlen,
                        approximate=True,
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("capture batch of %d lost: Redis %s", len(entries), type(exc).__name__)
            self.drop("redis_error", len(entries))
            return False
        self.captured += len(entries)
        for route, _ in entries:
            self._metrics.captured.labels(route).inc()
        return True

    async def close(self, grace_s: float) -> None:
        """Stop taking new exchanges, give the writer `grace_s` to flush, then count what is left."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace_s)
        left = self._queue.qsize() + self._inflight
        if left:
            self.drop("shutdown", left)


def _largest_body(exchange: Exchange) -> int:
    # A cutover capture also carries the candidate's answer (mirror/cutover.py).
    candidate = exchange.candidate.body.size if exchange.candidate is not None else 0
    return max(exchange.request.body.size, exchange.primary.body.size, candidate)
