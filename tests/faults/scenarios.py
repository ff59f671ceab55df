"""Each fault scenario, run end to end against real processes, with its figures: requests sent, client
errors, pairs expected, lost and duplicated. tests/faults asserts on them at a small size;
bench/faults_report.py runs them bigger and writes the table."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from mirror.exchange import decode_entry
from mirror.streams import Streams
from simulator.profile import Drift, Latency, SimulatorProfile, TenantProfile
from simulator.server import build_app as build_simulator
from tests.faults.harness import (
    Ledger,
    Load,
    Pipeline,
    PrivatePostgres,
    PrivateRedis,
    group_state,
    ledger,
    settle,
    shared_redis,
)
from tests.integration.tapkit import free_port, serving

FAST = Latency(median_ms=2, p95_ms=5, chunk_ms=1)


@dataclass
class FaultResult:
    scenario: str
    sent: int
    client_errors: int
    dropped: int  # captures the tap dropped, and counted, while the fault lasted
    expected: int  # pairs that must come out: one per capture in the stream
    lost: int
    duplicated: int
    seconds: float
    settled: bool
    ledger: Ledger
    errors: Counter[str] = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "requests sent": self.sent,
            "client errors": self.client_errors,
            "captures dropped (counted)": self.dropped,
            "pairs expected": self.expected,
            "pairs lost": self.lost,
            "pairs duplicated": self.duplicated,
        }


@contextlib.asynccontextmanager
async def simulators(
    *, primary: Latency = FAST, candidate: Latency = FAST, drift_tenant: str | None = None
) -> AsyncIterator[tuple[str, str]]:
    """The simulator as primary and as candidate on loopback ports (identical answers, unless a tenant
    is given whose numbers the candidate changes, which makes the worker call its model)."""
    tenants = {}
    if drift_tenant:
        tenants[drift_tenant] = TenantProfile(latency=candidate, drift={"chat": Drift(numbers=1.0)})
    p = SimulatorProfile(role="primary", seed=5, default=TenantProfile(latency=primary))
    c = SimulatorProfile(role="candidate", seed=5, default=TenantProfile(latency=candidate), tenants=tenants)
    async with serving(build_simulator(p)) as p_url, serving(build_simulator(c)) as c_url:
        yield p_url, c_url


def _result(
    name: str, load_errors: Counter[str], sent: int, dropped: int, expected: set[str], led: Ledger, **kw: Any
) -> FaultResult:
    return FaultResult(
        scenario=name,
        sent=sent,
        client_errors=sum(load_errors.values()),
        dropped=dropped,
        expected=len(expected),
        lost=len(led.lost(expected)),
        duplicated=led.duplicated,
        ledger=led,
        errors=load_errors,
        **kw,
    )


def _dropped(health: dict[str, Any]) -> int:
    return sum(health.get("capture", {}).get("dropped", {}).values())


# --- Redis killed and restarted under load -----------------------------------------------------


async def redis_restart(
    workdir: Path, *, rate: float = 40, before_s: float = 3, down_s: float = 3, after_s: float = 3
) -> FaultResult:
    """A private Valkey (append-only file) is SIGKILLed under load and started again on its port."""
    started = time.monotonic()
    server = PrivateRedis(workdir / "redis")
    server.start()
    prefix = f"sgf-{uuid.uuid4().hex[:8]}"
    notes: dict[str, Any] = {}
    try:
        async with simulators() as (primary, candidate):
            pipe = Pipeline(
                workdir, server.url, prefix, primary, candidate, f"sqlite:///{workdir / 'store.db'}"
            )
            try:
                await pipe.start_tap()
                await asyncio.gather(pipe.start_dispatch(), pipe.start_worker())
                load = Load(pipe.tap_url, "rr", rate=rate)
                load.start()
                await asyncio.sleep(before_s)
                server.kill()
                notes["killed_after"] = load.sent
                await asyncio.sleep(down_s)
                server.start()
                notes["restarted_after"] = load.sent
                await asyncio.sleep(after_s)
                result = await load.stop()
                health = await pipe.health()
                async with shared_redis(server.url, prefix) as redis:
                    settled = await settle(redis, prefix, worker=True, timeout=60)
                    notes["alive"] = {p.name: p.alive for p in pipe.procs}
                    notes["exit_codes"] = await pipe.stop_all()
                    led = await ledger(redis, prefix, pipe.db_url)
                notes["tap"] = health
                notes["logs"] = {p.name: p.output() for p in pipe.procs}
            finally:
                await pipe.stop_all()
    finally:
        server.stop()
    return _result(
        f"Redis SIGKILLed under load, restarted after {down_s:g} s",
        result.errors,
        result.sent,
        _dropped(health),
        set(led.captured),
        led,
        seconds=time.monotonic() - started,
        settled=settled,
        notes=notes,
    )


# --- PostgreSQL down ---------------------------------------------------------------------------


async def postgres_outage(
    workdir: Path,
    redis_url: str,
    postgres: PrivatePostgres,
    *,
    rate: float = 20,
    before_s: float = 3,
    outage_s: float = 15,
    after_s: float = 2,
) -> FaultResult:
    """The worker's PostgreSQL (a private cluster) stops at once under load and starts again later."""
    started = time.monotonic()
    prefix = f"sgf-{uuid.uuid4().hex[:8]}"
    streams = Streams(prefix)
    notes: dict[str, Any] = {"pending_during_outage": [], "pairs_dead_during_outage": 0}
    async with simulators() as (primary, candidate), shared_redis(redis_url, prefix) as redis:
        pipe = Pipeline(workdir, redis_url, prefix, primary, candidate, postgres.url)
        try:
            await pipe.start_tap()
            await asyncio.gather(pipe.start_dispatch(), pipe.start_worker())
            load = Load(pipe.tap_url, "pg", rate=rate)
            load.start()
            await asyncio.sleep(before_s)
            await asyncio.to_thread(postgres.crash)
            notes["down_after"] = load.sent
            outage_end = time.monotonic() + outage_s
            while time.monotonic() < outage_end:
                await asyncio.sleep(0.5)
                pending, lag = await group_state(redis, streams.pairs, streams.compare_group)
                notes["pending_during_outage"].append(pending)
                notes["waiting_during_outage"] = max(notes.get("waiting_during_outage", 0), lag or 0)
                notes["pairs_dead_during_outage"] = max(
                    notes["pairs_dead_during_outage"], await redis.xlen(streams.compare_dead_letter)
                )
            notes["worker_alive_after_outage"] = all(
                p.alive for p in pipe.procs if p.name.startswith("worker")
            )
            await asyncio.to_thread(postgres.start)
            notes["up_after"] = load.sent
            await asyncio.sleep(after_s)
            result = await load.stop()
            health = await pipe.health()
            settled = await settle(redis, prefix, worker=True, timeout=60)
            notes["exit_codes"] = await pipe.stop_all()
            led = await ledger(redis, prefix, pipe.db_url)
            notes["logs"] = {p.name: p.output() for p in pipe.procs}
        finally:
            await pipe.stop_all()
    return _result(
        f"PostgreSQL down {outage_s:g} s under load",
        result.errors,
        result.sent,
        _dropped(health),
        set(result.ids),
        led,
        seconds=time.monotonic() - started,
        settled=settled,
        notes=notes,
    )


# --- a candidate that misbehaves -----------------------------------------------------------------

FAULT_HEADER = "X-Fault"
# What each way of misbehaving must be recorded as on the candidate's side of the pair.
CANDIDATE_FAULTS: dict[str, str | None] = {
    "none": None,
    "slow": "timeout",
    "reset": "reset",
    "not-http": "malformed_body",
    "bad-json": "malformed_body",
    "http-500": "http_5xx",
    "http-404": "http_4xx",
    "huge": "too_large",
    "endless": "timeout",
    "gzip-bomb": "too_large",
}
BOMB_INFLATED = 1 << 30  # the gzip bomb is 1 GiB once inflated (about 1 MiB on the wire)
HUGE_DECLARED = 10 << 30  # the huge answer announces 10 GiB


@cache
def gzip_bomb(inflated: int = BOMB_INFLATED) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    parts = [packer.compress(zeros) for _ in range(inflated >> 20)]
    return b"".join([*parts, packer.flush()])


@dataclass
class Misbehaviour:
    sent_bytes: int = 0  # what the candidate pushed at dispatch, all answers together
    calls: Counter[str] = field(default_factory=Counter)


MISBEHAVIOUR = web.AppKey("misbehaviour", Misbehaviour)


@web.middleware
async def misbehave(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The candidate's fault for this request, from the header the client sent through the tap."""
    mode = request.headers.get(FAULT_HEADER, "none")
    state = request.app[MISBEHAVIOUR]
    state.calls[mode] += 1
    await request.read()
    transport = request.transport
    assert transport is not None
    if mode == "slow":
        await asyncio.sleep(3)
    elif mode == "reset":
        transport.abort()
        return web.Response()
    elif mode == "not-http":
        transport.write(b"\x00\xffTHIS IS NOT HTTP\r\n\r\n")
        transport.close()
        return web.Response()
    elif mode == "bad-json":
        return web.Response(body=b'{"choices": [', content_type="application/json")
    elif mode == "http-500":
        return web.json_response({"error": {"message": "out of GPU memory"}}, status=500)
    elif mode == "http-404":
        return web.json_response({"error": {"message": "no such model"}}, status=404)
    elif mode == "gzip-bomb":
        bomb = gzip_bomb()
        state.sent_bytes += len(bomb)
        return web.Response(
            body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )
    elif mode in ("huge", "endless"):
        return await _flood(request, state, mode)
    return await handler(request)


async def _flood(request: web.Request, state: Misbehaviour, mode: str) -> web.StreamResponse:
    """`huge`: a declared 10 GiB body at full speed; `endless`: an SSE stream that never ends."""
    if mode == "huge":
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = HUGE_DECLARED
        chunk, pause = bytes(64 * 1024), 0.0
    else:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        chunk, pause = b'data: {"choices": [{"index": 0, "delta": {"content": "la "}}]}\n\n', 0.001
    await resp.prepare(request)
    deadline = time.monotonic() + 30  # bounded, even if nobody hangs up
    with contextlib.suppress(ConnectionError, RuntimeError):
        while time.monotonic() < deadline:
            await resp.write(chunk)
            state.sent_bytes += len(chunk)
            await asyncio.sleep(pause)
    return resp


def faulty_candidate() -> web.Application:
    profile = SimulatorProfile(role="candidate", seed=5, default=TenantProfile(latency=FAST))
    app = build_simulator(profile)
    app.middlewares.append(misbehave)
    app[MISBEHAVIOUR] = Misbehaviour()
    return app


async def candidate_faults(
    workdir: Path,
    redis_url: str,
    *,
    rate: float = 30,
    faults_s: float = 4,
    dead_s: float = 3,
    after_s: float = 2,
    body_limit: int = 4_000_000,
) -> FaultResult:
    """`shadowgate tap --with-dispatch` (the users' process itself) against a candidate that is slow,
    resets, answers garbage, errors, floods, inflates, and then is dead for a while."""
    started = time.monotonic()
    prefix = f"sgf-{uuid.uuid4().hex[:8]}"
    modes = list(CANDIDATE_FAULTS)
    phase = {"faulty": True}

    def headers_for(n: int) -> dict[str, str]:
        return {FAULT_HEADER: modes[n % len(modes)]} if phase["faulty"] else {}

    candidate_port = free_port()
    notes: dict[str, Any] = {}
    gzip_bomb()  # made before the clock matters
    primary_profile = SimulatorProfile(role="primary", seed=5, default=TenantProfile(latency=FAST))
    async with serving(build_simulator(primary_profile)) as primary, shared_redis(redis_url, prefix) as redis:
        first = faulty_candidate()
        pipe = Pipeline(
            workdir,
            redis_url,
            prefix,
            primary,
            f"http://127.0.0.1:{candidate_port}",
            f"sqlite:///{workdir / 'store.db'}",
            settings={
                "SHADOWGATE_CANDIDATE_TIMEOUT_S": "1",
                "SHADOWGATE_LIMITS__MAX_CAPTURE_BODY_BYTES": str(body_limit),
                "SHADOWGATE_DISPATCH__BREAKER_COOLDOWN_S": "0.5",
                "SHADOWGATE_DISPATCH__BREAKER_MAX_COOLDOWN_S": "1",
            },
        )
        try:
            async with serving(first, candidate_port):
                tap, worker = await asyncio.gather(pipe.start_tap("--with-dispatch"), pipe.start_worker())
                load = Load(pipe.tap_url, "cf", rate=rate, headers_for=headers_for)
                load.start()
                await asyncio.sleep(faults_s)
                phase["faulty"] = False
                # Let the flood calls end before the candidate goes away (a call cut by the
                # candidate's death is a reset, not the fault it was acting out).
                await asyncio.sleep(1.5)
            notes["dead_after"] = load.sent
            await asyncio.sleep(dead_s)
            second = faulty_candidate()
            async with serving(second, candidate_port):
                notes["back_after"] = load.sent
                await asyncio.sleep(after_s)
                result = await load.stop()
                health = await pipe.health()
                settled = await settle(redis, prefix, worker=True, timeout=60)
                notes["tap_peak_rss_mb"] = tap.peak_rss_mb()
                notes["worker_peak_rss_mb"] = worker.peak_rss_mb()
            notes["candidate_sent_bytes"] = first[MISBEHAVIOUR].sent_bytes + second[MISBEHAVIOUR].sent_bytes
            notes["candidate_calls"] = first[MISBEHAVIOUR].calls + second[MISBEHAVIOUR].calls
            notes["exit_codes"] = await pipe.stop_all()
            led = await ledger(redis, prefix, pipe.db_url)
            pairs = [decode_entry(f) for _, f in await redis.xrange(Streams(prefix).pairs)]
            notes["logs"] = {p.name: p.output() for p in pipe.procs}
        finally:
            await pipe.stop_all()
    got: Counter[tuple[str, str | None]] = Counter()
    for pair in pairs:
        mode = next((v for k, v in pair.request.headers if k.lower() == FAULT_HEADER.lower()), "none")
        got[(mode, pair.candidate.error if pair.candidate else "missing")] += 1
    notes["classes"] = got
    return _result(
        "candidate slow/reset/garbage/5xx/flood/gzip bomb, then dead",
        result.errors,
        result.sent,
        _dropped(health),
        set(result.ids),
        led,
        seconds=time.monotonic() - started,
        settled=settled,
        notes=notes,
    )


# --- the tap stopped with SIGTERM under load ----------------------------------------------------


async def tap_sigterm(workdir: Path, redis_url: str, *, rate: float = 60, load_s: float = 3) -> FaultResult:
    """SIGTERM reaches the tap while requests (slow answers, SSE streams) are in flight."""
    started = time.monotonic()
    prefix = f"sgf-{uuid.uuid4().hex[:8]}"
    slow = Latency(median_ms=300, p95_ms=900, chunk_ms=40)
    notes: dict[str, Any] = {}
    async with simulators(primary=slow) as (primary, candidate), shared_redis(redis_url, prefix) as redis:
        pipe = Pipeline(workdir, redis_url, prefix, primary, candidate)
        try:
            tap = await pipe.start_tap(SHADOWGATE_SHUTDOWN_GRACE_S="10")
            await pipe.start_dispatch()
            load = Load(pipe.tap_url, "st", rate=rate, concurrency=32)
            load.start()
            await asyncio.sleep(load_s)
            stopping = asyncio.create_task(load.stop())  # no new requests from here on
            await asyncio.sleep(0.05)  # what was sent is on the wire
            notes["in_flight_at_sigterm"] = load.in_flight
            tap.signal(signal.SIGTERM)
            result = await stopping
            notes["tap_exit"] = await tap.wait(30)
            settled = await settle(redis, prefix, worker=False, timeout=30)
            notes["exit_codes"] = await pipe.stop_all()
            led = await ledger(redis, prefix, None)
            notes["logs"] = {p.name: p.output() for p in pipe.procs}
        finally:
            await pipe.stop_all()
    summary = re.search(
        r"tap stopped: (\d+) requests, (\d+) primary failures, (\d+) captured, dropped: (.*)",
        notes["logs"]["tap-1"],
    )
    notes["summary"] = summary.groups() if summary else None
    dropped = _summary_drops(summary.group(4)) if summary else 0
    return _result(
        "tap SIGTERM under load",
        result.errors,
        result.sent,
        dropped,
        set(result.ids),
        led,
        seconds=time.monotonic() - started,
        settled=settled,
        notes=notes,
    )


def _summary_drops(text: str) -> int:
    """`queue_full=3, shutdown=1` (or `none`) from the tap's last log line: how many were dropped."""
    return sum(int(n) for n in re.findall(r"=(\d+)", text))


# --- dispatcher and worker SIGKILLed mid-batch -----------------------------------------------------


async def _consumer_pending(redis: Redis, stream: str, group: str, pid: int) -> int:
    with contextlib.suppress(Exception):
        for c in await redis.xinfo_consumers(stream, group):
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if f"-{pid}-" in name:
                return int(c["pending"])
    return 0


async def _entries_read(redis: Redis, stream: str) -> int:
    with contextlib.suppress(Exception):
        for g in await redis.xinfo_groups(stream):
            return int(g.get("entries-read") or 0)
    return 0


async def _kill_mid_batch(
    pipe: Pipeline, redis: Redis, kind: str, proc: Any, stream: str, group: str, timeout: float = 30
) -> int:
    """SIGKILL `proc` at a moment it holds entries read and not yet acknowledged; how many it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _consumer_pending(redis, stream, group, proc.pid) > 0:
            proc.kill()
            return await _consumer_pending(redis, stream, group, proc.pid)
        await asyncio.sleep(0.01)
    raise AssertionError(f"{kind} never held a batch to be killed in")


async def kills(
    workdir: Path,
    redis_url: str,
    *,
    rate: float = 25,
    requests: int = 160,
    dispatch_kills: int = 2,
    worker_kills: int = 1,
    gap_s: float = 1.0,
) -> FaultResult:
    """Under load, the dispatcher and the worker are each SIGKILLed holding a batch, and restarted."""
    started = time.monotonic()
    prefix = f"sgf-{uuid.uuid4().hex[:8]}"
    streams = Streams(prefix)
    candidate_latency = Latency(median_ms=150, p95_ms=300, chunk_ms=5)
    notes: dict[str, Any] = {"dispatch_held": [], "worker_held": []}
    async with (
        simulators(candidate=candidate_latency, drift_tenant="klinik-b") as (primary, candidate),
        shared_redis(redis_url, prefix) as redis,
    ):
        pipe = Pipeline(workdir, redis_url, prefix, primary, candidate, f"sqlite:///{workdir / 'store.db'}")
        try:
            await pipe.start_tap()
            dispatch, worker = await asyncio.gather(pipe.start_dispatch(), pipe.start_worker())
            # A quarter of the traffic differs between the sides, so the worker's batches take a while.
            load = Load(
                pipe.tap_url, "kl", rate=rate, tenants=("klinik-a", "klinik-a", "klinik-a", "klinik-b")
            )
            load.start(requests)

            async def kill_dispatchers() -> None:
                nonlocal dispatch
                for _ in range(dispatch_kills):
                    await asyncio.sleep(gap_s)
                    held = await _kill_mid_batch(
                        pipe, redis, "dispatch", dispatch, streams.captures, streams.dispatch_group
                    )
                    notes["dispatch_held"].append(held)
                    dispatch = await pipe.start_dispatch()

            async def kill_workers() -> None:
                nonlocal worker
                for _ in range(worker_kills):
                    # Once it has read a second batch (its model is loaded), kill it holding one.
                    deadline = time.monotonic() + 60
                    while await _entries_read(redis, streams.pairs) <= 8 and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                    held = await _kill_mid_batch(
                        pipe, redis, "worker", worker, streams.pairs, streams.compare_group
                    )
                    notes["worker_held"].append(held)
                    worker = await pipe.start_worker()

            await asyncio.gather(kill_dispatchers(), kill_workers())
            result = await load.finish()
            health = await pipe.health()
            settled = await settle(redis, prefix, worker=True, timeout=75)
            notes["exit_codes"] = await pipe.stop_all()
            led = await ledger(redis, prefix, pipe.db_url)
            notes["logs"] = {p.name: p.output() for p in pipe.procs}
        finally:
            await pipe.stop_all()
    return _result(
        f"dispatcher SIGKILLed x{dispatch_kills}, worker x{worker_kills}, mid-batch",
        result.errors,
        result.sent,
        _dropped(health),
        set(result.ids),
        led,
        seconds=time.monotonic() - started,
        settled=settled,
        notes=notes,
    )
