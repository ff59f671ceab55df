"""Dispatch: a consumer group on the captures stream; each capture is sent to the candidate and paired."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mirror.attribution import sampled_for
from mirror.blobs import BlobStore, body_bytes, offload_bodies
from mirror.breaker import Breaker, State
from mirror.candidate import CONNECT_FAILURES, CallLimits, Target, call, identify
from mirror.consumer import Entry, GroupConsumer, any_heartbeat, run_until_signalled, sleep_or, stats_dict
from mirror.consumer import check_main as heartbeat_check
from mirror.exchange import Exchange, MalformedEntry, decode_entry, encode_entry
from mirror.modes import ModeStore
from mirror.pacing import Pacer
from mirror.streams import Streams, redis_client
from shadowgate.crypto import CryptoError, cipher_from
from shadowgate.settings import Route, Settings

log = logging.getLogger("shadowgate.dispatch")

# The longest a dispatcher waits to reproduce production's spacing: quieter gaps in a backlog shrink to it.
_MAX_PACING_WAIT_S = 10.0

# Acknowledge the capture and write its pair in one step, and only if this consumer is the one
# that acknowledges it: a pair is never lost between the two writes, and never written twice.
_PAIR_AND_ACK = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
return 1
"""


@dataclass
class DispatchStats:
    read: int = 0
    paired: int = 0
    duplicates: int = 0  # another consumer had already paired it
    stale: int = 0
    dead: int = 0
    reclaimed: int = 0
    failed: int = 0  # processing failed; left pending for a retry
    secondary: int = 0
    primary_shadow: int = 0  # cutover captures whose primary side was asked for by dispatch
    candidate_errors: collections.Counter[str] = field(default_factory=collections.Counter)

    def line(self) -> str:
        errors = ", ".join(f"{k}={v}" for k, v in sorted(self.candidate_errors.items())) or "none"
        return (
            f"{self.paired} paired, {self.stale} stale skipped, {self.dead} dead-lettered, "
            f"{self.reclaimed} reclaimed, {self.failed} failed attempts, {self.duplicates} duplicates "
            f"avoided; candidate errors: {errors}"
        )

    def as_dict(self) -> dict[str, Any]:
        return stats_dict(self)


def call_limits(settings: Settings) -> CallLimits:
    return CallLimits(
        timeout_s=settings.candidate_timeout_s,
        max_body_bytes=settings.limits.max_capture_body_bytes,
        shadow_header=settings.shadow_header,
        model_version_header=settings.model_version_header,
        gpu_header=settings.gpu_header,
    )


def candidate_session(settings: Settings) -> aiohttp.ClientSession:
    """The dispatcher's own connection pool, capped at its concurrency: never shared with the tap's."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.dispatch.concurrency * 2, keepalive_timeout=30),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )


class Dispatcher:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        consumer: str | None = None,
        candidate: Target | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._d = settings.dispatch
        self._session = session
        self._streams = Streams(settings.stream_prefix)
        self._group = self._streams.dispatch_group
        self._consumer = GroupConsumer(
            redis,
            stream=self._streams.captures,
            group=self._group,
            dead_letter=self._streams.dead_letter,
            heartbeat_key=f"{self._streams.prefix}:heartbeat:dispatch",
            consumer=consumer,
            max_deliveries=self._d.max_deliveries,
            reclaim_idle_s=self._d.reclaim_idle_s,
            maxlen=settings.limits.stream_maxlen,
        )
        self.consumer = self._consumer.consumer
        # Captures and pairs are sealed with the same keys; the blob store seals large bodies itself.
        self.cipher = cipher_from(settings.encryption)
        self._blobs = BlobStore(settings.blob_path, self.cipher)
        self._limits = call_limits(settings)
        self._fixed_target = candidate is not None
        self._candidate = candidate or Target(
            "candidate", str(settings.candidate_url), settings.candidate_api_key
        )
        secondary_url = settings.secondary_url or settings.primary_url
        self._secondary = Target("secondary", str(secondary_url), settings.secondary_api_key)
        # Shadow calls to the primary for cutover captures the candidate served (own key, not the client's).
        self._primary = Target("primary", str(settings.primary_url), settings.cutover.primary_api_key)
        self._routes: dict[str, Route] = {r.prefix: r for r in settings.routes}
        self._breaker = Breaker(
            self._d.breaker_failures, self._d.breaker_cooldown_s, self._d.breaker_max_cooldown_s
        )
        self._script = redis.register_script(_PAIR_AND_ACK)
        self._modes = ModeStore(redis, settings.stream_prefix)
        # Waits are bounded: a capture stamped far ahead (a tap's clock, a bogus entry) stalls nothing.
        self._pacer = Pacer(reanchor_after_s=1.0, max_delay_s=_MAX_PACING_WAIT_S)
        self._in_flight: dict[bytes, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(self._d.concurrency)
        self.stats = DispatchStats()

    @property
    def breaker_state(self) -> State:
        return self._breaker.state

    async def ensure_group(self) -> None:
        await self._consumer.ensure_group()

    async def run(self, stop: asyncio.Event, *, burst: bool = False, grace_s: float = 10.0) -> DispatchStats:
        """Dispatch until `stop` is set (or, with `burst`, until nothing is pending); then drain."""
        await self.ensure_group()
        # Its own event, set on the way out: a cancel that lands while redis-py is still connecting can be
        # swallowed, and a heartbeat waiting only on `stop` would then beat forever after a burst.
        beat_stop = asyncio.Event()
        heartbeat = asyncio.create_task(
            self._consumer.heartbeat(beat_stop, self._d.heartbeat_s, self._beat), name="dispatch-heartbeat"
        )
        next_reclaim = next_kill_check = 0.0
        killed = False
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_kill_check:
                        killed = await self._modes.killed()
                        next_kill_check = time.monotonic() + 1.0
                    if killed:  # the kill switch (docs/CUTOVER.md): nothing more goes to the candidate
                        if burst:
                            break
                        await sleep_or(stop, 0.5)
                        continue
                    if time.monotonic() >= next_reclaim:
                        for entry in await self._consumer.reclaim(busy=self._in_flight.__contains__):
                            self.stats.reclaimed += 1
                            self._spawn(entry)
                        self.stats.dead = self._consumer.dead
                        next_reclaim = time.monotonic() + min(self._d.reclaim_idle_s / 2, 5.0)
                    if self._breaker.state is not State.CLOSED:
                        if not self._breaker.allow():
                            await sleep_or(stop, min(max(self._breaker.wait_s(), 0.05), 1.0))
                            continue
                        room = 1  # the probe
                    else:
                        room = self._d.concurrency - len(self._in_flight)
                    if room <= 0:
                        await asyncio.wait(set(self._in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
                        continue
                    entries = await self._read(min(room, self._d.batch), block_ms=100 if burst else 1000)
                    if self._breaker.state is State.HALF_OPEN and not entries:
                        self._breaker.release_probe()
                    for entry in entries:
                        # A backlog goes out with production's spacing, never as one burst.
                        await sleep_or(stop, self._pacer.delay(_ts(entry[1])))
                        self._spawn(entry)
                    if burst and not entries and not self._in_flight and not await self._consumer.pending():
                        break
                except (RedisError, OSError) as exc:
                    log.warning("Redis unavailable (%s); retrying", type(exc).__name__)
                    await sleep_or(stop, 1.0)
        finally:
            await self._drain(grace_s)
            beat_stop.set()  # it deletes its key and ends; cancelled only if Redis holds it up
            if not (await asyncio.wait({heartbeat}, timeout=2.0))[0]:
                heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        log.info("dispatch %s stopped: %s", self.consumer, self.stats.line())
        return self.stats

    async def _read(self, count: int, block_ms: int) -> list[Entry]:
        entries = await self._consumer.read(count, block_ms)
        self.stats.read += len(entries)
        return entries

    def _spawn(self, entry: Entry) -> None:
        entry_id = entry[0]
        task = asyncio.create_task(self._handle(entry), name=f"dispatch-{entry_id!r}")
        self._in_flight[entry_id] = task
        task.add_done_callback(lambda _t: self._in_flight.pop(entry_id, None))

    async def _handle(self, entry: Entry) -> None:
        entry_id, fields = entry
        try:
            exchange = decode_entry(fields, self.cipher)
        except MalformedEntry as exc:
            await self._dead_letter(entry_id, fields, str(exc))
            return
        except CryptoError as exc:  # this process lacks the entry's key: it stays pending, unread
            self.stats.failed += 1
            log.error("capture %s (entry %s) not paired: %s", _id(fields), entry_id.decode(), exc)
            return
        try:
            if time.time() - exchange.captured_at > self._d.max_age_s:
                self.stats.stale += 1
                await self._consumer.ack(entry_id)
                return
            async with self._slots:
                pair = await self.pair(exchange)
            written = await self._script(
                keys=[self._streams.captures, self._streams.pairs],
                args=[
                    self._group,
                    entry_id,
                    self._settings.limits.stream_maxlen,
                    *_flat(encode_entry(pair, self.cipher)),
                ],
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one entry's failure must not stop the others; it stays pending
            self.stats.failed += 1
            log.warning(
                "capture %s (entry %s) not paired: %s", _id(fields), entry_id.decode(), type(exc).__name__
            )
            return
        if written:
            self.stats.paired += 1
        else:
            self.stats.duplicates += 1

    async def pair(self, exchange: Exchange, *, candidate: Target | None = None) -> Exchange:
        """Call the candidate (and, for a sampled share, the secondary) and return the pair."""
        body = await body_bytes(exchange.request.body, self._blobs)
        route = self._routes.get(exchange.route_prefix)
        second = route is not None and sampled_for(f"{exchange.id}:secondary", route.secondary_rate)
        # A cutover capture (docs/CUTOVER.md) already holds the candidate's live side: the answer it
        # served, or its failed attempt before the primary answered. One the candidate served gets the
        # primary as its shadow, so every pair still compares primary with candidate.
        # Replay (a target given here or to the constructor) asks the candidate afresh every time.
        live = exchange.candidate if candidate is None and not self._fixed_target else None
        shadow_primary = exchange.served_by == "candidate"
        calls = []
        if live is None:
            target = candidate or self._candidate
            calls.append(call(self._session, target, exchange.request, body, self._limits))
        if shadow_primary:
            calls.append(call(self._session, self._primary, exchange.request, body, self._limits))
        if second:
            calls.append(call(self._session, self._secondary, exchange.request, body, self._limits))
        sides = iter(await asyncio.gather(*calls))
        if live is None:
            cand = next(sides)
            if cand.error in CONNECT_FAILURES:
                self._breaker.connect_failure()
            else:
                self._breaker.success()
        else:
            cand = identify(live, self._limits)
        primary = next(sides) if shadow_primary else identify(exchange.primary, self._limits)
        if cand.error:
            self.stats.candidate_errors[cand.error] += 1
        if shadow_primary:
            self.stats.primary_shadow += 1
        if second:
            self.stats.secondary += 1
        pair = msgspec.structs.replace(
            exchange,
            primary=primary,
            candidate=cand,
            secondary=next(sides) if second else None,
            paired_at=time.time(),
        )
        return await offload_bodies(pair, self._blobs, self._settings.limits.inline_body_bytes)

    async def _dead_letter(self, entry_id: bytes, fields: dict[bytes, bytes], reason: str) -> None:
        await self._consumer.dead_letter(entry_id, fields, reason)
        self.stats.dead = self._consumer.dead

    async def _drain(self, grace_s: float) -> None:
        tasks = set(self._in_flight.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace_s)
        for task in late:
            task.cancel()  # stays pending in Redis; another dispatcher reclaims it
        await asyncio.gather(*late, return_exceptions=True)

    def _beat(self) -> dict[str, Any]:
        return {"breaker": self._breaker.state.value, **self.stats.as_dict()}


async def check(redis: Redis, prefix: str) -> bool:
    """True when at least one dispatcher has beaten its heart recently (`shadowgate dispatch --check`)."""
    return await any_heartbeat(redis, f"{prefix}:heartbeat:dispatch:*")


def _flat(fields: dict[str, bytes | str | int]) -> list[bytes | str | int]:
    return [x for pair in fields.items() for x in pair]


def _ts(fields: dict[bytes, bytes]) -> float:
    try:
        return int(fields[b"ts"]) / 1000
    except (KeyError, ValueError):
        return time.time()


def _id(fields: dict[bytes, bytes]) -> str:
    return fields.get(b"id", b"?").decode(errors="replace")


def run(settings: Settings, *, burst: bool = False) -> int:
    """Blocking entry of `shadowgate dispatch`: until SIGTERM/SIGINT, or with `burst` until idle."""

    async def main(stop: asyncio.Event) -> DispatchStats:
        assert settings.redis_url is not None
        redis = redis_client(settings.redis_url)
        try:
            async with candidate_session(settings) as session:
                dispatcher = Dispatcher(redis, settings, session)
                log.info(
                    "dispatch %s: %s -> %s (%d in flight at most)",
                    dispatcher.consumer,
                    Streams(settings.stream_prefix).captures,
                    settings.candidate_url,
                    settings.dispatch.concurrency,
                )
                return await dispatcher.run(stop, burst=burst, grace_s=settings.shutdown_grace_s)
        finally:
            await redis.aclose()

    run_until_signalled(main)
    return 0


def check_main(settings: Settings) -> int:
    """`shadowgate dispatch --check`: 0 when a dispatcher's heartbeat is fresh, else 1."""
    assert settings.redis_url is not None
    return heartbeat_check(settings.redis_url, f"{settings.stream_prefix}:heartbeat:dispatch:*", "dispatcher")
