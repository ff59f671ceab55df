"""The tap changes nothing the client sees, fails open when Redis goes away, and shuts down cleanly."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from mirror.serve import serve_app
from mirror.tap import STATE, build_app
from shadowgate.embedded_redis import EmbeddedRedis
from shadowgate.settings import Limits, Route, RouteKind, Settings, Tenant
from tests.conftest import TEST_REDIS_URL
from tests.integration.tapkit import free_port, read_captures, running_tap, serving
from tests.integration.upstream import build_upstream


@pytest.fixture
async def primary_url() -> AsyncIterator[str]:
    async with serving(build_upstream()) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


ECHO_ROUTE = Route(prefix="/echo", kind=RouteKind.CHAT)


def settings_for(primary_url: str, prefix: str, **kw: object) -> Settings:
    kw.setdefault("routes", (ECHO_ROUTE, Route(prefix="/slow", kind=RouteKind.CHAT)))
    return Settings(primary_url=primary_url, redis_url=TEST_REDIS_URL, stream_prefix=prefix, **kw)  # type: ignore[arg-type]


async def wait_captures(redis: Redis, prefix: str, n: int, timeout: float = 5.0) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        got = await read_captures(redis, prefix)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.02)


async def test_methods_paths_queries_and_bodies_reach_the_primary_unchanged(
    primary_url: str, stream_prefix: str, redis: Redis, http: aiohttp.ClientSession
) -> None:
    body = b'{"nota": "pesakit menafikan sakit dada", "dos": "500 mg"}'
    async with running_tap(settings_for(primary_url, stream_prefix)) as (tap, _):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            url = "/echo/a%20b/c?x=1&x=2&y=%C3%A9"
            kwargs = {"data": body} if method != "GET" else {}
            headers = {"X-Custom": "kekal", "Connection": "keep-alive, X-Hop", "X-Hop": "drop-me"}
            async with http.request(method, tap + url, headers=headers, **kwargs) as via_tap:  # type: ignore[arg-type]
                seen = await via_tap.json()
            assert seen["method"] == method
            assert seen["path"] == "/echo/a%20b/c?x=1&x=2&y=%C3%A9"
            names = {k.lower(): v for k, v in seen["headers"]}
            assert names["x-custom"] == "kekal"
            # Hop-by-hop headers, and those the client's Connection header names, stop at the tap.
            assert "x-hop" not in names
            assert "connection" not in names or names["connection"].lower() in (
                "keep-alive",
                "close",
            )
            if method != "GET":
                assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_status_headers_and_gzip_bytes_pass_through(
    primary_url: str, stream_prefix: str, redis: Redis, http: aiohttp.ClientSession
) -> None:
    async with running_tap(settings_for(primary_url, stream_prefix)) as (tap, _):
        async with http.get(primary_url + "/gzip") as d, http.get(tap + "/gzip") as t:
            direct, tapped = await d.read(), await t.read()
            assert t.headers["Content-Encoding"] == "gzip"
            assert tapped == direct
            assert gzip.decompress(tapped).startswith(b'{"ok": true}')
        async with http.post(tap + "/echo/x?status=418", data=b"teh tarik") as t:
            assert t.status == 418
            assert t.headers["X-Upstream"] == "yes"
            assert t.headers["Set-Cookie"] == "session=upstream-secret"
        # A gzip request body reaches the primary byte for byte (the tap does not inflate it).
        packed = gzip.compress(b'{"input": "demam"}')
        async with http.post(tap + "/echo/z", data=packed, headers={"Content-Encoding": "gzip"}) as t:
            seen = await t.json()
            assert seen["body_sha256"] == hashlib.sha256(packed).hexdigest()

    captures = await wait_captures(redis, stream_prefix, 2)
    assert len(captures) == 2
    for exchange in captures:
        # What the primary set as a cookie is a secret too: not written to Redis.
        assert ("Set-Cookie", "session=upstream-secret") not in exchange.primary.headers


async def test_primary_down_gives_502_and_slow_primary_gives_504(
    stream_prefix: str, redis: Redis, http: aiohttp.ClientSession
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with (
        running_tap(settings_for(dead, stream_prefix)) as (tap, _),
        http.get(tap + "/v1/models") as r,
    ):
        assert r.status == 502
        assert (await r.json())["error"]["code"] == "primary_unreachable"

    async with serving(build_upstream()) as primary:
        settings = settings_for(primary, stream_prefix, primary_timeout_s=0.3)
        async with running_tap(settings) as (tap, state), http.get(tap + "/slow?s=2") as r:
            assert r.status == 504
            assert (await r.json())["error"]["code"] == "primary_timeout"
            assert state.primary_failures == 1


async def test_sampling_per_tenant_and_consistent_per_request_id(
    primary_url: str, stream_prefix: str, redis: Redis, http: aiohttp.ClientSession
) -> None:
    tenants = (
        Tenant(id="klinik-off", mirror=False),
        Tenant(id="klinik-half", sample_rate=0.5),
        Tenant(id="klinik-key", api_key_sha256=(hashlib.sha256(b"sk-klinik-key").hexdigest(),)),
    )
    settings = settings_for(primary_url, stream_prefix, tenants=tenants)
    async with running_tap(settings) as (tap, _):
        for i in range(4):
            await (await http.post(tap + "/echo/off", headers={"X-Tenant-ID": "klinik-off"})).read()
            await (await http.post(tap + "/echo/k", headers={"Authorization": "Bearer sk-klinik-key"})).read()
            # The same request id twice (a retry): both sampled or neither.
            for _ in range(2):
                await (
                    await http.post(
                        tap + "/echo/h",
                        headers={"X-Tenant-ID": "klinik-half", "X-Request-ID": f"req-{i}"},
                    )
                ).read()
    # Leaving the tap flushed its capture queue: everything sampled is in the stream now.
    from mirror.attribution import sampled_for

    sampled = [f"req-{i}" for i in range(4) if sampled_for(f"req-{i}", 0.5)]
    captures = await wait_captures(redis, stream_prefix, 4 + 2 * len(sampled))
    by_tenant: dict[str, list[str]] = {}
    for x in captures:
        by_tenant.setdefault(x.tenant, []).append(x.id)
    assert "klinik-off" not in by_tenant
    assert len(by_tenant["klinik-key"]) == 4
    half = by_tenant.get("klinik-half", [])
    assert all(half.count(rid) == 2 for rid in half)
    assert sorted(set(half)) == sorted(sampled)
    assert len(captures) == 4 + 2 * len(sampled)


async def test_bodies_over_the_capture_limit_are_forwarded_not_captured(
    primary_url: str, stream_prefix: str, redis: Redis, http: aiohttp.ClientSession
) -> None:
    limits = Limits(max_capture_body_bytes=100_000)
    async with running_tap(settings_for(primary_url, stream_prefix, limits=limits)) as (tap, state):
        big = os.urandom(300_000)
        async with http.post(tap + "/echo/big", data=big) as r:
            assert (await r.json())["body_sha256"] == hashlib.sha256(big).hexdigest()
        async with http.post(tap + "/echo/small", data=b"ok") as r:
            await r.read()
        captures = await wait_captures(redis, stream_prefix, 1)
        assert state.capture is not None
        assert state.capture.dropped["too_large"] == 1
        async with http.get(tap + "/_shadowgate/metrics") as m:
            text = await m.text()
    assert [x.request.path for x in captures] == ["/echo/small"]
    assert 'shadowgate_tap_capture_dropped_total{reason="too_large"} 1.0' in text
    assert "shadowgate_tap_primary_seconds_bucket" in text


async def test_redis_stopped_mid_run_costs_the_client_nothing_and_capture_resumes(
    primary_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    server = EmbeddedRedis(tmp_path, port=port, persist=False)
    server.start()
    try:
        settings = Settings(
            primary_url=primary_url,  # type: ignore[arg-type]
            redis_url=server.url,
            stream_prefix="sg",
            routes=(ECHO_ROUTE,),
            limits=Limits(capture_queue=50),
        )
        async with running_tap(settings) as (tap, state):
            assert state.capture is not None

            async def burst(n: int) -> list[int]:
                statuses = []
                for i in range(n):
                    async with http.post(tap + "/echo/r", data=f"visit {i}".encode()) as r:
                        await r.read()
                        statuses.append(r.status)
                return statuses

            assert await burst(20) == [200] * 20
            deadline = time.monotonic() + 5
            while state.capture.captured < 20 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert state.capture.captured == 20

            server.stop()
            started = time.perf_counter()
            assert await burst(200) == [200] * 200
            elapsed = time.perf_counter() - started
            dropped = sum(state.capture.dropped.values())
            assert dropped > 0
            assert elapsed < 10  # loose: the point is no request waited on Redis timeouts

            server.start()
            before = state.capture.captured
            deadline = time.monotonic() + 10
            while state.capture.captured <= before and time.monotonic() < deadline:
                await burst(5)
                await asyncio.sleep(0.1)
            assert state.capture.captured > before
            async with http.get(tap + "/_shadowgate/healthz") as h:
                health = await h.json()
            assert health["capture"]["dropped"]
    finally:
        server.stop()


async def test_graceful_shutdown_finishes_in_flight_and_flushes_the_queue(
    primary_url: str, stream_prefix: str, redis: Redis
) -> None:
    settings = settings_for(primary_url, stream_prefix, shutdown_grace_s=5.0)
    app = build_app(settings)
    stop = asyncio.Event()
    port = free_port()
    ready = asyncio.Event()
    server = asyncio.create_task(
        serve_app(app, "127.0.0.1", port, shutdown_timeout=5, stop=stop, on_ready=lambda _: ready.set())
    )
    await asyncio.wait_for(ready.wait(), 5)
    async with aiohttp.ClientSession() as http:
        pending = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/slow?s=1"))
        await asyncio.sleep(0.3)
        stop.set()  # as SIGTERM would
        resp = await pending
        assert resp.status == 200
        assert await resp.text() == "late"
        resp.release()
    await asyncio.wait_for(server, 10)
    captures = await read_captures(redis, stream_prefix)
    assert [x.request.path for x in captures] == ["/slow"]
    assert app[STATE].capture is not None
    assert not app[STATE].capture.dropped


async def test_unknown_paths_go_to_the_primary_and_routes_are_classified(
    primary_url: str, stream_prefix: str, redis: Redis, http: aiohttp.ClientSession
) -> None:
    routes = (
        Route(prefix="/echo/chat", kind=RouteKind.CHAT),
        Route(prefix="/echo", kind=RouteKind.EMBED),
    )
    async with running_tap(settings_for(primary_url, stream_prefix, routes=routes)) as (tap, _):
        for path in ("/echo/chat/x", "/echo/other"):
            async with http.post(tap + path, data=json.dumps({"a": 1})) as r:
                assert r.status == 200
        async with http.get(tap + "/nowhere") as r:
            assert r.status == 404  # the primary's own answer
    captures = await wait_captures(redis, stream_prefix, 2)
    assert [(x.request.path, x.route) for x in captures] == [
        ("/echo/chat/x", "chat"),
        ("/echo/other", "embed"),
    ]


async def test_primary_breaking_mid_stream_breaks_the_client_response_too(
    primary_url: str, stream_prefix: str, redis: Redis, http: aiohttp.ClientSession
) -> None:
    async with running_tap(settings_for(primary_url, stream_prefix)) as (tap, _):
        async with http.get(tap + "/echo-stream/broken") as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        captures = await wait_captures(redis, stream_prefix, 1)
    assert len(captures) == 1
    assert captures[0].primary.error is not None
    assert captures[0].primary.body.data == b'data: {"partial": 1}\n\n'


async def test_client_leaving_mid_stream_is_recorded_and_the_tap_keeps_serving(
    primary_url: str, stream_prefix: str, redis: Redis, http: aiohttp.ClientSession
) -> None:
    async with running_tap(settings_for(primary_url, stream_prefix)) as (tap, state):
        async with aiohttp.ClientSession() as leaving:
            r = await leaving.get(tap + "/echo-stream/endless")
            await r.content.readexactly(len(b"data: 0\n\n"))
            r.close()  # the client hangs up after the first event
        captures = await wait_captures(redis, stream_prefix, 1)
        async with http.post(tap + "/echo/after", data=b"still here") as after:
            assert after.status == 200
    assert len(captures) == 1
    assert captures[0].primary.client_aborted
    assert (captures[0].primary.body.data or b"").startswith(b"data: 0\n\n")
    assert state.requests == 2
