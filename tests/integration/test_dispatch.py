"""Dispatch against real Redis and two upstreams: one pair per capture, right error classes, no loss."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from mirror.dispatch import Dispatcher, candidate_session, check
from mirror.exchange import Body, Exchange, decode_entry, encode_entry
from mirror.streams import Streams
from mirror.tap import build_app
from shadowgate.settings import Dispatch, Limits, Route, RouteKind, Settings
from tests.conftest import TEST_REDIS_URL
from tests.integration.candidate_app import IDENTITY, LOG, CandidateLog, build_candidate
from tests.integration.tapkit import free_port, read_captures, running_tap, serving
from tests.integration.upstream import build_upstream

CLIENT_KEY = "sk-client-secret-never-forward"
CANDIDATE_KEY = "sk-candidate-own-key"
ROUTES = (
    Route(prefix="/echo", kind=RouteKind.CHAT),
    Route(prefix="/v1/chat/completions", kind=RouteKind.CHAT),
)


@dataclass
class World:
    primary: str
    candidate: str
    candidate_log: CandidateLog
    prefix: str
    redis: Redis

    def settings(self, **kw: object) -> Settings:
        base: dict[str, object] = {
            "primary_url": self.primary,
            "candidate_url": self.candidate,
            "candidate_api_key": SecretStr(CANDIDATE_KEY),
            "redis_url": TEST_REDIS_URL,
            "stream_prefix": self.prefix,
            "routes": ROUTES,
            "candidate_timeout_s": 1.0,
        }
        base.update(kw)
        return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def world(redis: Redis, stream_prefix: str, tmp_path: Path) -> AsyncIterator[World]:
    candidate_app = build_candidate()
    async with serving(build_upstream()) as primary, serving(candidate_app) as candidate:
        yield World(primary, candidate, candidate_app[LOG], stream_prefix, redis)


def cli_env(world: World, **extra: str) -> dict[str, str]:
    """The environment of a `shadowgate dispatch` process on this test's stream and candidate."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_REDIS_URL": TEST_REDIS_URL,
        "SHADOWGATE_STREAM_PREFIX": world.prefix,
        "SHADOWGATE_CANDIDATE_URL": world.candidate,
        "SHADOWGATE_ROUTES": '[{"prefix": "/echo", "kind": "chat"}]',
        **extra,
    }


async def through_tap(settings: Settings, paths: list[str], body: bytes = b'{"q": "demam 38.5"}') -> None:
    async with running_tap(settings) as (tap, state), aiohttp.ClientSession() as http:
        for path in paths:
            async with http.post(
                tap + path, data=body, headers={"Authorization": f"Bearer {CLIENT_KEY}", "X-Tenant-ID": "k1"}
            ) as r:
                await r.read()
        assert state.capture is not None
        deadline = time.monotonic() + 5
        while state.capture.captured < len(paths) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


async def dispatch_burst(settings: Settings, redis: Redis) -> Dispatcher:
    async with candidate_session(settings) as session:
        dispatcher = Dispatcher(redis, settings, session)
        await asyncio.wait_for(dispatcher.run(asyncio.Event(), burst=True), 60)
    return dispatcher


async def read_pairs(redis: Redis, prefix: str) -> list[Exchange]:
    return [decode_entry(f) for _, f in await redis.xrange(Streams(prefix).pairs)]


async def test_every_capture_yields_one_pair_with_the_same_request_and_own_credentials(world: World) -> None:
    settings = world.settings()
    paths = [f"/echo/ok?visit={i}&lang=ms" for i in range(12)]
    body = b'{"nota": "pesakit menafikan sakit dada", "dos": "500 mg"}'
    await through_tap(settings, paths, body)
    dispatcher = await dispatch_burst(settings, world.redis)

    pairs = await read_pairs(world.redis, world.prefix)
    captures = await read_captures(world.redis, world.prefix)
    assert sorted(p.id for p in pairs) == sorted(c.id for c in captures)
    assert len(pairs) == 12
    assert dispatcher.stats.paired == 12
    assert await world.redis.xpending(Streams(world.prefix).captures, "dispatch") == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }
    assert sorted(s.path_qs for s in world.candidate_log.seen) == sorted(paths)
    for seen in world.candidate_log.seen:
        assert seen.method == "POST"
        assert seen.body_sha256 == hashlib.sha256(body).hexdigest()
        assert seen.headers["authorization"] == f"Bearer {CANDIDATE_KEY}"
        assert CLIENT_KEY not in str(seen.headers)
        assert seen.headers["x-shadowgate-shadow"] == "1"
        assert seen.headers["x-tenant-id"] == "k1"
    for pair in pairs:
        assert pair.candidate is not None
        assert pair.candidate.status == 200
        assert pair.candidate.error is None
        assert pair.candidate.model == "llama-3.1-70b"
        assert pair.candidate.model_version == IDENTITY["x-model-version"]
        assert pair.candidate.gpu == IDENTITY["x-gpu-id"]
        assert pair.candidate.total_ms >= (pair.candidate.ttfb_ms or 0) > 0
        assert pair.primary.status == 200
        assert pair.paired_at is not None
        assert pair.replay is None


async def test_candidate_faults_are_recorded_with_their_class(world: World) -> None:
    settings = world.settings(candidate_timeout_s=0.5)
    modes = {
        "/echo/ok": None,
        "/echo/slow?s=3": "timeout",
        "/echo/reset": "reset",
        "/echo/500": "http_5xx",
        "/echo/garbage": "malformed_body",
    }
    await through_tap(settings, list(modes))
    await dispatch_burst(settings, world.redis)
    pairs = {
        p.request.path + (f"?{p.request.query}" if p.request.query else ""): p
        for p in await read_pairs(world.redis, world.prefix)
    }
    for path, error in modes.items():
        candidate = pairs[path].candidate
        assert candidate is not None
        assert candidate.error == error, path
    slow = pairs["/echo/slow?s=3"].candidate
    assert slow is not None
    assert 400 < slow.total_ms < 2000  # cut at the candidate timeout, not waited out

    refused = world.settings(
        candidate_url=f"http://127.0.0.1:{free_port()}", stream_prefix=world.prefix + "-refused"
    )
    await through_tap(refused, ["/echo/ok"])
    await dispatch_burst(refused, world.redis)
    (pair,) = await read_pairs(world.redis, world.prefix + "-refused")
    assert pair.candidate is not None
    assert pair.candidate.error == "connect_refused"
    assert pair.candidate.status is None
    await world.redis.delete(*[k async for k in world.redis.scan_iter(match=f"{world.prefix}-refused:*")])


async def test_huge_candidate_answers_are_cut_with_bounded_memory(world: World) -> None:
    settings = world.settings(limits=Limits(max_capture_body_bytes=200_000), candidate_timeout_s=5)
    await through_tap(settings, ["/echo/huge"])
    await dispatch_burst(settings, world.redis)
    (pair,) = await read_pairs(world.redis, world.prefix)
    assert pair.candidate is not None
    assert pair.candidate.error == "too_large"
    assert pair.candidate.body.size > 200_000


async def test_streams_are_reassembled_on_both_sides(world: World) -> None:
    settings = world.settings()
    async with running_tap(settings) as (tap, _), aiohttp.ClientSession() as http:
        async with http.post(
            tap + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        ) as r:
            await r.read()
        await asyncio.sleep(0.2)
    await dispatch_burst(settings, world.redis)
    (pair,) = await read_pairs(world.redis, world.prefix)
    assert pair.primary.text == "".join(f"part{i} " for i in range(6))
    assert pair.candidate is not None
    assert pair.candidate.streamed
    assert pair.candidate.text == "Paracetamol 1 g tiada demam"
    assert pair.candidate.model == "llama-3.1-70b"
    assert pair.candidate.ttfb_ms is not None
    assert pair.candidate.ttfb_ms < pair.candidate.total_ms


async def test_secondary_side_for_the_noise_floor(world: World) -> None:
    routes = (Route(prefix="/echo", kind=RouteKind.CHAT, secondary_rate=1.0),)
    settings = world.settings(routes=routes, secondary_api_key=SecretStr("sk-secondary"))
    await through_tap(settings, ["/echo/ok?n=1", "/echo/ok?n=2"])
    dispatcher = await dispatch_burst(settings, world.redis)
    pairs = await read_pairs(world.redis, world.prefix)
    assert dispatcher.stats.secondary == 2
    for pair in pairs:
        assert pair.secondary is not None
        assert pair.secondary.role == "secondary"
        assert pair.secondary.status == 200
        # The secondary is the primary's URL again: its echo shows our key, not the client's.
        seen = (pair.secondary.body.data or b"").decode()
        assert "sk-secondary" in seen
        assert CLIENT_KEY not in seen


async def test_poison_entries_go_to_the_dead_letter_stream_and_the_rest_go_on(world: World) -> None:
    settings = world.settings(dispatch=Dispatch(reclaim_idle_s=0.2, max_deliveries=2))
    streams = Streams(world.prefix)
    await through_tap(settings, ["/echo/ok?a=1"])
    (good,) = await read_captures(world.redis, world.prefix)
    await world.redis.xadd(streams.captures, {"v": 1, "id": "poison", "data": b"\xc1\xc1"})
    # A capture whose large body is missing from the blob store fails every time it is tried.
    missing = msgspec.structs.replace(
        good,
        id="missing-blob",
        request=msgspec.structs.replace(good.request, body=Body(size=10**6, ref="sha256:" + "0" * 64)),
    )
    await world.redis.xadd(streams.captures, encode_entry(missing))  # type: ignore[arg-type]
    await through_tap(settings, ["/echo/ok?a=2"])

    dispatcher = await dispatch_burst(settings, world.redis)
    pairs = await read_pairs(world.redis, world.prefix)
    assert sorted(p.request.query for p in pairs) == ["a=1", "a=2"]
    dead = await world.redis.xrange(streams.dead_letter)
    reasons = {f[b"id"]: f[b"reason"].decode() for _, f in dead}
    assert set(reasons) == {b"poison", b"missing-blob"}
    assert "undecodable" in reasons[b"poison"]
    assert "deliveries" in reasons[b"missing-blob"]
    assert dispatcher.stats.dead == 2
    assert (await world.redis.xpending(streams.captures, "dispatch"))["pending"] == 0


async def test_stale_captures_are_skipped_and_counted(world: World) -> None:
    settings = world.settings(dispatch=Dispatch(max_age_s=0.05))
    await through_tap(settings, [f"/echo/ok?n={i}" for i in range(5)])
    await asyncio.sleep(0.1)
    dispatcher = await dispatch_burst(settings, world.redis)
    assert dispatcher.stats.stale == 5
    assert await read_pairs(world.redis, world.prefix) == []
    assert world.candidate_log.seen == []


async def test_breaker_stops_hammering_a_dead_candidate(world: World) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    settings = world.settings(
        candidate_url=dead_url,
        dispatch=Dispatch(breaker_failures=3, breaker_cooldown_s=30, concurrency=1),
    )
    await through_tap(settings, [f"/echo/ok?n={i}" for i in range(20)])
    stop = asyncio.Event()
    async with candidate_session(settings) as session:
        dispatcher = Dispatcher(world.redis, settings, session)
        task = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(1.5)
        assert dispatcher.breaker_state.value == "open"
        stop.set()
        await asyncio.wait_for(task, 10)
    # Three tries opened it; the other captures wait in the stream for the candidate to come back.
    assert dispatcher.stats.candidate_errors == {"connect_refused": 3}
    assert len(await read_pairs(world.redis, world.prefix)) == 3


async def test_killed_dispatcher_loses_nothing_and_pairs_nothing_twice(world: World) -> None:
    n = 30
    settings = world.settings(candidate_timeout_s=5)
    await through_tap(settings, [f"/echo/slow?s=0.3&n={i}" for i in range(n)])
    env = cli_env(world, SHADOWGATE_DISPATCH__CONCURRENCY="4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowgate.cli", "dispatch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        pairs_stream = Streams(world.prefix).pairs
        deadline = time.monotonic() + 30
        while await world.redis.xlen(pairs_stream) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stderr is not None
        proc.stderr.close()
    before = await world.redis.xlen(pairs_stream)
    assert 5 <= before < n, "the kill should land mid-run"
    pending = (await world.redis.xpending(Streams(world.prefix).captures, "dispatch"))["pending"]
    assert pending > 0  # the dead consumer left work behind

    survivor = world.settings(candidate_timeout_s=5, dispatch=Dispatch(reclaim_idle_s=0.3))
    await dispatch_burst(survivor, world.redis)
    pairs = await read_pairs(world.redis, world.prefix)
    ids = [p.id for p in pairs]
    assert len(ids) == n
    assert len(set(ids)) == n


async def test_heartbeat_check(world: World) -> None:
    settings = world.settings(dispatch=Dispatch(heartbeat_s=0.1))
    assert not await check(world.redis, world.prefix)
    stop = asyncio.Event()
    async with candidate_session(settings) as session:
        dispatcher = Dispatcher(world.redis, settings, session)
        task = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(0.3)
        assert await check(world.redis, world.prefix)
        stop.set()
        await asyncio.wait_for(task, 10)
    assert not await check(world.redis, world.prefix)


async def test_slow_or_dead_candidate_never_touches_the_users_answers(world: World) -> None:
    """The tap with dispatch in its own process (--with-dispatch): answers and timings unaffected."""

    async def timings(settings: Settings, path: str) -> list[float]:
        app = build_app(settings, with_dispatch=True)
        out = []
        async with serving(app, shutdown_timeout=1) as tap, aiohttp.ClientSession() as http:
            for i in range(20):
                started = time.perf_counter()
                async with http.post(tap + f"{path}&i={i}", data=b'{"q": 1}') as r:
                    assert r.status == 200
                    assert (await r.json())["path"].startswith(path)
                out.append(time.perf_counter() - started)
        return out

    healthy = await timings(world.settings(), "/echo/ok?h=1")
    slow = await timings(world.settings(candidate_timeout_s=10, shutdown_grace_s=0.5), "/echo/slow?s=5")
    dead = await timings(
        world.settings(candidate_url=f"http://127.0.0.1:{free_port()}", shutdown_grace_s=0.5), "/echo/ok?d=1"
    )
    # Every user answer came from the primary at the primary's pace; the candidate's 5 s never showed.
    for series in (slow, dead):
        assert max(series) < 0.5
        assert sorted(series)[len(series) // 2] < 3 * sorted(healthy)[len(healthy) // 2] + 0.01
    assert len(world.candidate_log.seen) >= 20  # the candidate was really being called meanwhile


async def test_sigterm_drains_in_flight_calls(world: World) -> None:
    settings = world.settings(candidate_timeout_s=5)
    await through_tap(settings, [f"/echo/slow?s=1&n={i}" for i in range(4)])
    env = cli_env(world, SHADOWGATE_SHUTDOWN_GRACE_S="5")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowgate.cli", "dispatch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while len(world.candidate_log.seen) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(world.candidate_log.seen) == 4  # all four calls are in flight
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "4 paired" in err
    assert len(await read_pairs(world.redis, world.prefix)) == 4
