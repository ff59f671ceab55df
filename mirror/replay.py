"""Replay: send captures from the stream to the candidate (or any URL) again, paced, tagged by run."""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis
from tqdm import tqdm

from mirror.candidate import Target
from mirror.dispatch import Dispatcher, candidate_session
from mirror.exchange import MalformedEntry, decode_entry, encode_entry
from mirror.pacing import Pacer
from mirror.streams import Streams, redis_client
from shadowgate.crypto import CryptoError
from shadowgate.settings import ConfigError, Settings
from shadowgate.when import parse_when

log = logging.getLogger("shadowgate.replay")


@dataclass(frozen=True)
class Selection:
    """Which captures to replay: tenants and routes (empty: all) and a window in unix ms."""

    tenants: frozenset[str] = frozenset()
    routes: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None

    def wants(self, fields: dict[bytes, bytes]) -> bool:
        tenant = fields.get(b"tenant", b"").decode(errors="replace")
        route = fields.get(b"route", b"").decode(errors="replace")
        return (not self.tenants or tenant in self.tenants) and (not self.routes or route in self.routes)


@dataclass
class ReplaySummary:
    run_id: str
    matched: int = 0
    sent: int = 0
    ok: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    malformed: int = 0
    seconds: float = 0.0
    by_tenant_route: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "matched": self.matched,
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(self.errors),
            "malformed": self.malformed,
            "seconds": round(self.seconds, 3),
            "achieved_rate": round(self.rate, 2),
            "by_tenant_route": dict(self.by_tenant_route),
        }


async def select(
    redis: Redis, stream: str, selection: Selection
) -> AsyncIterator[tuple[bytes, dict[bytes, bytes]]]:
    """The matching entries of `stream`, oldest first, read in pages."""
    start = str(selection.since_ms) if selection.since_ms is not None else "-"
    end = str(selection.until_ms) if selection.until_ms is not None else "+"
    while True:
        page: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(
            stream, min=start, max=end, count=500
        )  # type: ignore[assignment]
        if not page:
            return
        for entry_id, fields in page:
            if selection.wants(fields):
                yield entry_id, fields
        start = "(" + page[-1][0].decode()


async def count(redis: Redis, settings: Settings, selection: Selection) -> ReplaySummary:
    summary = ReplaySummary(run_id="dry-run")
    async for _, fields in select(redis, Streams(settings.stream_prefix).captures, selection):
        summary.matched += 1
        summary.by_tenant_route[f"{fields[b'tenant'].decode()}/{fields[b'route'].decode()}"] += 1
    return summary


async def replay(
    redis: Redis,
    settings: Settings,
    selection: Selection,
    *,
    target_url: str | None = None,
    speed: float = 1.0,
    rate: float | None = None,
    loops: int = 1,
    run_id: str | None = None,
    progress: bool | None = None,
) -> ReplaySummary:
    """Send every matching capture again, `loops` times, paced by `speed` or `rate`; write tagged pairs."""
    streams = Streams(settings.stream_prefix)
    matched = (await count(redis, settings, selection)).matched
    summary = ReplaySummary(
        run_id=run_id or f"replay-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    )
    summary.matched = matched
    target = Target("candidate", target_url or str(settings.candidate_url), settings.candidate_api_key)
    slots = asyncio.Semaphore(settings.dispatch.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    bar = tqdm(
        total=matched * loops, unit="req", desc=summary.run_id, disable=_no_bar(progress), file=sys.stderr
    )
    started = time.monotonic()
    async with candidate_session(settings) as session:
        dispatcher = Dispatcher(redis, settings, session, consumer=summary.run_id, candidate=target)

        async def one(fields: dict[bytes, bytes]) -> None:
            try:
                exchange = decode_entry(fields, dispatcher.cipher)
            except (MalformedEntry, CryptoError):
                summary.malformed += 1
                return
            try:
                pair = await dispatcher.pair(exchange)
                pair = msgspec.structs.replace(pair, replay=summary.run_id)
                await redis.xadd(
                    streams.pairs,
                    encode_entry(pair, dispatcher.cipher),  # type: ignore[arg-type]
                    maxlen=settings.limits.stream_maxlen,
                    approximate=True,
                )
                assert pair.candidate is not None
                if pair.candidate.error:
                    summary.errors[pair.candidate.error] += 1
                else:
                    summary.ok += 1
                summary.by_tenant_route[f"{exchange.tenant}/{exchange.route}"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one capture's failure (a lost blob, Redis) must not end the run
                summary.errors["replay_failed"] += 1
                log.warning("capture %s not replayed: %s", exchange.id, type(exc).__name__)
            finally:
                slots.release()
                bar.update(1)

        try:
            pacer = Pacer(speed=speed, rate=rate)
            for _ in range(loops):
                if rate is None:
                    pacer = Pacer(speed=speed)  # each loop replays the window's own spacing anew
                async for _, fields in select(redis, streams.captures, selection):
                    await asyncio.sleep(pacer.delay(_ts(fields)))
                    await slots.acquire()
                    summary.sent += 1
                    task = asyncio.create_task(one(fields))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            bar.close()
    summary.seconds = time.monotonic() - started
    return summary


def _ts(fields: dict[bytes, bytes]) -> float:
    try:
        return int(fields[b"ts"]) / 1000
    except (KeyError, ValueError):
        return 0.0


def _no_bar(progress: bool | None) -> bool | None:
    # tqdm's None means: only when stderr is a terminal.
    return None if progress is None else not progress


def run(
    settings: Settings,
    *,
    tenants: Sequence[str],
    routes: Sequence[str],
    since: str | None,
    until: str | None,
    target: str | None,
    speed: float,
    rate: float | None,
    loops: int,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Blocking entry of `shadowgate replay`."""
    import json

    from shadowgate.runtime import new_event_loop

    if speed <= 0 or (rate is not None and rate <= 0) or loops < 1:
        raise ConfigError("--speed and --rate must be positive and --loop at least 1")
    selection = Selection(
        tenants=frozenset(tenants),
        routes=frozenset(routes),
        since_ms=parse_when(since) if since else None,
        until_ms=parse_when(until) if until else None,
    )

    async def main() -> ReplaySummary:
        assert settings.redis_url is not None
        redis = redis_client(settings.redis_url)
        try:
            if dry_run:
                return await count(redis, settings, selection)
            return await replay(
                redis, settings, selection, target_url=target, speed=speed, rate=rate, loops=loops
            )
        finally:
            await redis.aclose()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        summary = runner.run(main())
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
    elif dry_run:
        print(
            f"{summary.matched} captures would be replayed"
            + "".join(f"\n  {key:<32} {n}" for key, n in sorted(summary.by_tenant_route.items()))
        )
    else:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(summary.errors.items())) or "none"
        print(
            f"replay {summary.run_id}: {summary.sent} sent, {summary.ok} ok, errors: {errors}; "
            f"{summary.seconds:.1f} s, {summary.rate:.1f} req/s"
        )
    return 0
