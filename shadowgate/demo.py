"""`shadowgate demo`: embedded Redis, the simulator as primary, the tap, synthetic traffic, a summary."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from mirror.exchange import Exchange, MalformedEntry, decode_entry
from mirror.serve import runner_for
from mirror.streams import Streams
from mirror.tap import STATE, TapState, build_app
from shadowgate.embedded_redis import EmbeddedRedis
from shadowgate.runtime import new_event_loop
from shadowgate.settings import Settings, Tenant
from shadowgate.traffic import DEMO_TENANTS, Traffic, TrafficReport
from simulator.profile import demo_profiles
from simulator.server import build_app as build_simulator


@dataclass(frozen=True)
class RouteSummary:
    tenant: str
    route: str
    captured: int
    primary_p50_ms: float
    primary_p95_ms: float
    ttfb_p50_ms: float | None
    primary_errors: int


def run(settings: Settings, *, seconds: float, concurrency: int, as_json: bool) -> int:
    """Blocking entry of the command; everything it starts is stopped before it returns."""
    server: EmbeddedRedis | None = None
    if settings.redis_url is None:
        server = EmbeddedRedis(settings.data_dir)
        server.start()
        settings = settings.model_copy(update={"redis_url": server.url})
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            summary = runner.run(_demo(settings, seconds=seconds, concurrency=concurrency, quiet=as_json))
    finally:
        if server is not None:
            server.stop()
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(_table(summary))
    return 0


@asynccontextmanager
async def _serving(app: web.Application, *, tap: bool = False) -> AsyncIterator[str]:
    runner = runner_for(app, shutdown_timeout=5.0) if tap else web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


async def _demo(settings: Settings, *, seconds: float, concurrency: int, quiet: bool) -> dict[str, Any]:
    assert settings.redis_url is not None
    profiles = demo_profiles(seed=7)
    tenants = tuple(Tenant(id=t, name=t.replace("-", " ").title()) for t in DEMO_TENANTS)
    started_ms = int(time.time() * 1000)
    async with _serving(build_simulator(profiles["primary"])) as primary_url:
        demo_settings = settings.model_copy(update={"primary_url": primary_url, "tenants": tenants})
        tap_app = build_app(demo_settings)
        async with _serving(tap_app, tap=True) as tap_url:
            state = tap_app[STATE]
            _say(quiet, f"redis   {settings.redis_url}")
            _say(quiet, f"primary {primary_url} (simulator)")
            _say(quiet, f"tap     {tap_url} -> primary; capturing into {settings.stream_prefix}:captures")
            _say(quiet, f"driving {seconds:.0f} s of synthetic traffic from {len(tenants)} clinics ...")
            traffic = Traffic(tap_url)

            def progress(report: TrafficReport, elapsed: float) -> None:
                _say(quiet, f"  [{elapsed:4.0f} s] {_progress_line(report, state)}")

            try:
                report = await traffic.drive(seconds=seconds, concurrency=concurrency, on_progress=progress)
            finally:
                await traffic.close()
        # Leaving the block stopped the tap, which flushed its capture queue.
        dropped = dict(state.capture.dropped) if state.capture else {}
    redis = Redis.from_url(settings.redis_url)
    try:
        exchanges = await _captured_since(redis, Streams(settings.stream_prefix).captures, started_ms)
    finally:
        await redis.aclose()
    rows = _summarise(exchanges)
    return {
        "seconds": seconds,
        "redis_url": settings.redis_url,
        "data_dir": str(settings.data_dir),
        "stream": Streams(settings.stream_prefix).captures,
        "requests": report.total,
        "client_errors": dict(report.errors),
        "captured": len(exchanges),
        "dropped": dropped,
        "by_tenant_route": [row.__dict__ for row in rows],
    }


def _progress_line(report: TrafficReport, state: TapState) -> str:
    capture = state.capture
    captured = capture.captured if capture else 0
    dropped = sum(capture.dropped.values()) if capture else 0
    depth = capture.depth if capture else 0
    return f"{report.total} requests, {captured} captured, {dropped} dropped, queue {depth}"


async def _captured_since(redis: Redis, stream: str, since_ms: int) -> list[Exchange]:
    out: list[Exchange] = []
    start = f"{since_ms}-0"
    while True:
        batch: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(
            stream, min=start, max="+", count=1000
        )  # type: ignore[assignment]
        if not batch:
            return out
        for _, fields in batch:
            try:
                out.append(decode_entry(fields))
            except MalformedEntry:
                continue
        start = "(" + batch[-1][0].decode()


def _p(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _summarise(exchanges: list[Exchange]) -> list[RouteSummary]:
    groups: dict[tuple[str, str], list[Exchange]] = defaultdict(list)
    for x in exchanges:
        groups[(x.tenant, x.route)].append(x)
    rows = []
    for (tenant, route), xs in sorted(groups.items()):
        totals = [x.primary.total_ms for x in xs]
        ttfbs = [x.primary.ttfb_ms for x in xs if x.primary.streamed and x.primary.ttfb_ms is not None]
        rows.append(
            RouteSummary(
                tenant=tenant,
                route=route,
                captured=len(xs),
                primary_p50_ms=round(_p(totals, 50), 1),
                primary_p95_ms=round(_p(totals, 95), 1),
                ttfb_p50_ms=round(_p(ttfbs, 50), 1) if ttfbs else None,
                primary_errors=sum(1 for x in xs if (x.primary.status or 0) >= 500 or x.primary.error),
            )
        )
    return rows


def _table(summary: dict[str, Any]) -> str:
    head = ("tenant", "route", "captured", "p50 ms", "p95 ms", "ttfb p50", "5xx")
    lines = [f"{head[0]:<18} {head[1]:<7} {head[2]:>8} {head[3]:>8} {head[4]:>8} {head[5]:>9} {head[6]:>4}"]
    for row in summary["by_tenant_route"]:
        ttfb = "" if row["ttfb_p50_ms"] is None else f"{row['ttfb_p50_ms']:.0f}"
        lines.append(
            f"{row['tenant']:<18} {row['route']:<7} {row['captured']:>8} {row['primary_p50_ms']:>8.0f} "
            f"{row['primary_p95_ms']:>8.0f} {ttfb:>9} {row['primary_errors']:>4}"
        )
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    errors = ", ".join(f"{k} {v}" for k, v in summary["client_errors"].items()) or "none"
    lines += [
        "",
        f"{summary['requests']} requests through the tap; {summary['captured']} exchanges captured in "
        f"{summary['stream']} ({summary['redis_url']}); dropped: {dropped}; errors the clients saw "
        f"(the primary's own): {errors}.",
        f"The data stays in {summary['data_dir']}/ (Redis append-only file, blobs).",
        "The candidate side, comparison and verdicts come with the dispatch, comparator and gate stages.",
    ]
    return "\n".join(lines)
