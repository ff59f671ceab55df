"""`shadowgate demo`: embedded Redis, the simulator as primary, the tap, synthetic traffic, a summary."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.engine import Engine

from comparators.worker import ScoringWorker, embedder_for
from mirror.dispatch import Dispatcher, candidate_session
from mirror.exchange import Exchange, MalformedEntry, decode_entry
from mirror.serve import runner_for
from mirror.streams import Streams, redis_client
from mirror.tap import STATE, TapState, build_app
from shadowgate.embedded_redis import EmbeddedRedis
from shadowgate.runtime import new_event_loop
from shadowgate.settings import Settings, Tenant
from shadowgate.traffic import DEMO_TENANTS, Traffic, TrafficReport
from simulator.profile import demo_profiles
from simulator.server import build_app as build_simulator
from store.db import open_store
from store.queries import RouteStats, route_summary


@dataclass(frozen=True)
class RouteSummary:
    tenant: str
    route: str
    captured: int
    paired: int
    primary_p50_ms: float
    primary_p95_ms: float
    candidate_p50_ms: float | None
    candidate_p95_ms: float | None
    ttfb_p50_ms: float | None  # primary, streams only
    candidate_ttfb_p50_ms: float | None
    primary_errors: int
    candidate_errors: int


def run(settings: Settings, *, seconds: float, concurrency: int, as_json: bool) -> int:
    """Blocking entry of the command; everything it starts is stopped before it returns, also on
    Ctrl-C and SIGTERM (which is turned into the same interruption)."""
    signal.signal(signal.SIGTERM, _interrupt)
    server: EmbeddedRedis | None = None
    if settings.redis_url is None:
        server = EmbeddedRedis(settings.data_dir)
        server.start()
        settings = settings.model_copy(update={"redis_url": server.url})
    try:
        with (
            asyncio.Runner(loop_factory=new_event_loop) as runner,
            open_store(settings.database_url) as engine,
        ):
            summary = runner.run(
                _demo(settings, engine, seconds=seconds, concurrency=concurrency, quiet=as_json)
            )
    finally:
        if server is not None:
            server.stop()
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(_table(summary))
    return 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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


async def _demo(
    settings: Settings, engine: Engine, *, seconds: float, concurrency: int, quiet: bool
) -> dict[str, Any]:
    assert settings.redis_url is not None
    profiles = demo_profiles(seed=7)
    tenants = tuple(Tenant(id=t, name=t.replace("-", " ").title()) for t in DEMO_TENANTS)
    started_ms = int(time.time() * 1000)
    streams = Streams(settings.stream_prefix)
    redis = redis_client(settings.redis_url)
    async with (
        _serving(build_simulator(profiles["primary"])) as primary_url,
        _serving(build_simulator(profiles["candidate"])) as candidate_url,
    ):
        demo = settings.model_copy(
            update={"primary_url": primary_url, "candidate_url": candidate_url, "tenants": tenants}
        )
        tap_app = build_app(demo)
        state = tap_app[STATE]
        async with candidate_session(demo) as session:
            dispatcher = Dispatcher(redis, demo, session)
            stop_dispatch = asyncio.Event()
            live = asyncio.create_task(dispatcher.run(stop_dispatch))
            async with _serving(tap_app, tap=True) as tap_url:
                _say(quiet, f"redis     {settings.redis_url}")
                _say(quiet, f"primary   {primary_url} (simulator: the cloud route)")
                _say(quiet, f"candidate {candidate_url} (simulator: the new GPU server)")
                _say(quiet, f"tap       {tap_url} -> primary; captures into {streams.captures}")
                _say(quiet, f"dispatch  {dispatcher.consumer} -> candidate; pairs into {streams.pairs}")
                _say(quiet, f"driving {seconds:.0f} s of synthetic traffic from {len(tenants)} clinics ...")
                traffic = Traffic(tap_url)

                def progress(report: TrafficReport, elapsed: float) -> None:
                    _say(quiet, f"  [{elapsed:4.0f} s] {_progress_line(report, state, dispatcher)}")

                try:
                    report = await traffic.drive(
                        seconds=seconds, concurrency=concurrency, on_progress=progress
                    )
                finally:
                    await traffic.close()
            # The tap has stopped and flushed its queue; let dispatch finish what is left, then stop.
            _say(quiet, "pairing the last captures ...")
            stop_dispatch.set()
            await live
            await Dispatcher(redis, demo, session, consumer=dispatcher.consumer).run(
                asyncio.Event(), burst=True
            )
    _say(quiet, f"scoring the pairs into {engine.url.render_as_string()} ...")
    worker = ScoringWorker(redis, demo, engine, embedder_for(demo))
    scoring = await worker.run(asyncio.Event(), burst=True)
    dropped = dict(state.capture.dropped) if state.capture else {}
    try:
        captures = await _since(redis, streams.captures, started_ms)
        pairs = await _since(redis, streams.pairs, started_ms)
    finally:
        await redis.aclose()
    rows = _summarise(captures, [p for p in pairs if p.replay is None])
    since = datetime.fromtimestamp(started_ms / 1000, tz=UTC)
    scores = {(r.tenant, r.route): r for r in route_summary(engine, since=since)}
    return {
        "seconds": seconds,
        "redis_url": settings.redis_url,
        "data_dir": str(settings.data_dir),
        "streams": {"captures": streams.captures, "pairs": streams.pairs},
        "requests": report.total,
        "client_errors": dict(report.errors),
        "captured": len(captures),
        "paired": len(pairs),
        "dropped": dropped,
        "scored": scoring.scored,
        "database": engine.url.render_as_string(),
        "by_tenant_route": [row.__dict__ | _scores(scores.get((row.tenant, row.route))) for row in rows],
    }


SHOWN = ("semantic_similarity", "rouge_l_f1", "wer", "fact_mismatches", "negation_flips", "clinical_ok")


def _scores(stats: RouteStats | None) -> dict[str, Any]:
    """The means the table shows (None where the route has no such metric)."""
    means = stats.means if stats is not None else {}
    return {"scored": stats.scored if stats else 0, **{m: _round(means.get(m)) for m in SHOWN}}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _progress_line(report: TrafficReport, state: TapState, dispatcher: Dispatcher) -> str:
    capture = state.capture
    captured = capture.captured if capture else 0
    dropped = sum(capture.dropped.values()) if capture else 0
    return (
        f"{report.total} requests, {captured} captured, {dropped} dropped, {dispatcher.stats.paired} paired"
    )


async def _since(redis: Redis, stream: str, since_ms: int) -> list[Exchange]:
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
    if not values:
        return 0.0
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def _summarise(captures: list[Exchange], pairs: list[Exchange]) -> list[RouteSummary]:
    captured: dict[tuple[str, str], int] = defaultdict(int)
    for x in captures:
        captured[(x.tenant, x.route)] += 1
    groups: dict[tuple[str, str], list[Exchange]] = defaultdict(list)
    for p in pairs:
        groups[(p.tenant, p.route)].append(p)
    rows = []
    for key in sorted(set(captured) | set(groups)):
        xs = groups.get(key, [])
        primary = [x.primary.total_ms for x in xs]
        answered = [x.candidate for x in xs if x.candidate is not None and x.candidate.error is None]
        candidate = [c.total_ms for c in answered]
        ttfb = [x.primary.ttfb_ms for x in xs if x.primary.streamed and x.primary.ttfb_ms is not None]
        c_ttfb = [c.ttfb_ms for c in answered if c.streamed and c.ttfb_ms is not None]
        rows.append(
            RouteSummary(
                tenant=key[0],
                route=key[1],
                captured=captured.get(key, 0),
                paired=len(xs),
                primary_p50_ms=_p(primary, 50),
                primary_p95_ms=_p(primary, 95),
                candidate_p50_ms=_p(candidate, 50) if candidate else None,
                candidate_p95_ms=_p(candidate, 95) if candidate else None,
                ttfb_p50_ms=_p(ttfb, 50) if ttfb else None,
                candidate_ttfb_p50_ms=_p(c_ttfb, 50) if c_ttfb else None,
                primary_errors=sum(1 for x in xs if x.primary.error or (x.primary.status or 0) >= 500),
                candidate_errors=sum(1 for x in xs if x.candidate is None or x.candidate.error),
            )
        )
    return rows


def _table(summary: dict[str, Any]) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    head = (
        f"{'tenant':<17} {'route':<6} {'pairs':>5} {'p50 ms prim/cand':>17} {'cand err':>8} "
        f"{'similar':>7} {'rougeL':>6} {'WER':>5} {'dose≠':>5} {'neg≠':>5} {'clin ok':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in summary["by_tenant_route"]:
        latency = f"{num(r['primary_p50_ms'], '.0f')}/{num(r['candidate_p50_ms'], '.0f')}"
        lines.append(
            f"{r['tenant']:<17} {r['route']:<6} {r['paired']:>5} {latency:>17} {r['candidate_errors']:>8} "
            f"{num(r['semantic_similarity'], '.3f'):>7} {num(r['rouge_l_f1'], '.2f'):>6} "
            f"{num(r['wer'], '.2f'):>5} {num(r['fact_mismatches'], '.2f'):>5} "
            f"{num(r['negation_flips'], '.2f'):>5} {num(r['clinical_ok'], '.0%'):>7}"
        )
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    errors = ", ".join(f"{k} {v}" for k, v in summary["client_errors"].items()) or "none"
    lines += [
        "",
        "similar: mean semantic similarity; dose≠ / neg≠: mean changed numbers with units / flipped",
        "negations per answer; clin ok: share of answers with neither. WER is disagreement, not accuracy.",
        "",
        f"{summary['requests']} requests through the tap; {summary['captured']} captured, "
        f"{summary['paired']} paired with the candidate's answers, {summary['scored']} scored; capture "
        f"drops: {dropped}; errors the clients saw (the primary's own): {errors}.",
        f"Streams {summary['streams']['captures']} and {summary['streams']['pairs']} at "
        f"{summary['redis_url']}; scores in {summary['database']}; data kept in {summary['data_dir']}/.",
        "Per-tenant verdicts come with the gate.",
    ]
    return "\n".join(lines)
