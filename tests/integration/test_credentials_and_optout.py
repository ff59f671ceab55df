"""What reaches whom: the client's credentials reach the primary and never the candidate or the
secondary, on every route kind, through tap -> dispatch (real openai SDK, real Redis, recording
upstreams); a tenant that opted out of capture leaves nothing in Redis or the blob store."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
from aiohttp import web
from pydantic import SecretStr
from redis.asyncio import Redis

from mirror.dispatch import Dispatcher, candidate_session
from mirror.exchange import decode_entry
from mirror.streams import Streams
from mirror.tap import TapState
from shadowgate.crypto import cipher_from, sealed
from shadowgate.settings import Encryption, Route, RouteKind, Settings, Tenant
from tests.conftest import TEST_REDIS_URL
from tests.integration.candidate_app import LOG, CandidateLog, build_candidate
from tests.integration.tapkit import running_tap, serving

CLIENT_KEY = "sk-client-0f3c9a-never-beyond-the-primary"
CLIENT_API_KEY = "azure-style-client-key-77a1"
CLIENT_X_API_KEY = "x-api-key-client-5be2"
CLIENT_COOKIE = "session=client-cookie-9d41"
CLIENT_PROXY = "Basic Y2xpZW50OnByb3h5"
CLIENT_SECRETS = (CLIENT_KEY, CLIENT_API_KEY, CLIENT_X_API_KEY, "client-cookie-9d41", CLIENT_PROXY)
CANDIDATE_KEY = "sk-candidate-own-1"
SECONDARY_KEY = "sk-secondary-own-2"
KEY = base64.b64encode(bytes(range(32))).decode()

ROUTES = tuple(
    Route(prefix=prefix, kind=kind, secondary_rate=1.0)
    for prefix, kind in (
        ("/v1/audio/transcriptions", RouteKind.AUDIO),
        ("/v1/chat/completions", RouteKind.CHAT),
        ("/reason/v1/chat/completions", RouteKind.REASON),
        ("/vision/v1/chat/completions", RouteKind.VISION),
        ("/v1/embeddings", RouteKind.EMBED),
        ("/v1/rerank", RouteKind.RERANK),
    )
)


@dataclass
class Recorder:
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)


RECORDER = web.AppKey("recorder", Recorder)


async def primary_answer(request: web.Request) -> web.StreamResponse:
    """A primary for every route kind that remembers the headers it got."""
    request.app[RECORDER].seen.append((request.path, {k.lower(): v for k, v in request.headers.items()}))
    raw = await request.read()
    if request.path.endswith("/audio/transcriptions"):
        return web.json_response({"text": f"{len(raw)} bytes of audio"})
    body = json.loads(raw)
    if request.path.endswith("/embeddings"):
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2]} for i in range(len(body["input"]))
        ]
        return web.json_response({"object": "list", "data": data, "model": body["model"]})
    if request.path.endswith("/rerank"):
        return web.json_response(
            {"results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.2}]}
        )
    if not body.get("stream"):
        message = {"role": "assistant", "content": "Paracetamol 500 mg"}
        return web.json_response(
            {"model": body["model"], "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        )
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for piece in ("Paracetamol ", "500 mg"):
        chunk = {"model": body["model"], "choices": [{"index": 0, "delta": {"content": piece}}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def build_primary() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[RECORDER] = Recorder()
    app.router.add_post("/{tail:.*}", primary_answer)
    return app


@dataclass
class World:
    primary: Recorder
    candidate: CandidateLog
    secondary: CandidateLog
    settings: Settings


@pytest.fixture
async def world(redis: Redis, stream_prefix: str, tmp_path: Path) -> AsyncIterator[World]:
    primary_app, candidate_app, secondary_app = build_primary(), build_candidate(), build_candidate()
    async with (
        serving(primary_app) as primary,
        serving(candidate_app) as candidate,
        serving(secondary_app) as secondary,
    ):
        settings = Settings(
            primary_url=primary,  # type: ignore[arg-type]
            candidate_url=candidate,  # type: ignore[arg-type]
            candidate_api_key=SecretStr(CANDIDATE_KEY),
            secondary_url=secondary,  # type: ignore[arg-type]
            secondary_api_key=SecretStr(SECONDARY_KEY),
            redis_url=TEST_REDIS_URL,
            stream_prefix=stream_prefix,
            data_dir=tmp_path,
            routes=ROUTES,
            tenants=(Tenant(id="klinik-a"), Tenant(id="klinik-optout", capture=False)),  # type: ignore[call-arg]
            encryption=Encryption(keys={"k1": SecretStr(KEY)}, required=True),
        )
        yield World(primary_app[RECORDER], candidate_app[LOG], secondary_app[LOG], settings)


def client(tap: str, tenant: str, prefix: str = "") -> openai.AsyncOpenAI:
    """The real SDK, carrying every kind of client credential a gateway sees."""
    return openai.AsyncOpenAI(
        base_url=f"{tap}{prefix}/v1",
        api_key=CLIENT_KEY,
        max_retries=0,
        default_headers={
            "X-Tenant-ID": tenant,
            "Api-Key": CLIENT_API_KEY,
            "X-Api-Key": CLIENT_X_API_KEY,
            "Cookie": CLIENT_COOKIE,
            "Proxy-Authorization": CLIENT_PROXY,
        },
    )


async def every_route(tap: str, tenant: str) -> int:
    """One request of each route kind (chat twice: JSON and SSE); returns how many were sent."""
    c, reason, vision = client(tap, tenant), client(tap, tenant, "/reason"), client(tap, tenant, "/vision")
    try:
        await c.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", os.urandom(80_000), "audio/wav")
        )
        chat = await c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "demam?"}]
        )
        assert chat.choices[0].message.content == "Paracetamol 500 mg"
        stream = await c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "SOAP"}], stream=True
        )
        assert "".join([ch.choices[0].delta.content or "" async for ch in stream]) == "Paracetamol 500 mg"
        await reason.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "why?"}])
        image = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
        await vision.chat.completions.create(
            model="llava",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}],
        )
        await c.embeddings.create(model="bge-m3", input=["demam", "batuk"])
        await c.post("/rerank", cast_to=object, body={"query": "demam", "documents": ["batuk", "demam"]})
    finally:
        for one in (c, reason, vision):
            await one.close()
    return 7


async def captured(state: TapState, n: int) -> None:
    assert state.capture is not None
    deadline = time.monotonic() + 10
    while state.capture.captured < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert state.capture.captured == n


async def test_client_credentials_never_reach_the_candidate_or_the_secondary(
    world: World, redis: Redis
) -> None:
    async with running_tap(world.settings) as (tap, state):
        sent = await every_route(tap, "klinik-a")
        await captured(state, sent)
    async with candidate_session(world.settings) as session:
        dispatcher = Dispatcher(redis, world.settings, session)
        await asyncio.wait_for(dispatcher.run(asyncio.Event(), burst=True), 60)
    assert dispatcher.stats.paired == sent

    paths = sorted(p for p, _ in world.primary.seen)
    assert len(paths) == sent
    # The primary needs the client's credentials, and got them (so the checks below can fail).
    for _, headers in world.primary.seen:
        assert headers["authorization"] == f"Bearer {CLIENT_KEY}"
        assert headers["cookie"] == CLIENT_COOKIE
        assert headers["api-key"] == CLIENT_API_KEY
    for log, own_key in ((world.candidate, CANDIDATE_KEY), (world.secondary, SECONDARY_KEY)):
        assert sorted(s.path_qs for s in log.seen) == paths  # every route kind, JSON, SSE and multipart
        for seen in log.seen:
            assert seen.headers["authorization"] == f"Bearer {own_key}"
            assert seen.headers["x-shadowgate-shadow"] == "1"
            assert "cookie" not in seen.headers
            assert "proxy-authorization" not in seen.headers
            assert "api-key" not in seen.headers
            assert "x-api-key" not in seen.headers
            for secret in CLIENT_SECRETS:
                assert secret not in json.dumps(seen.headers)
    audio = next(s for s in world.candidate.seen if s.path_qs.endswith("/audio/transcriptions"))
    assert audio.headers["content-type"].startswith("multipart/form-data")

    # Nor are they anywhere in Redis, sealed or opened.
    cipher = cipher_from(world.settings.encryption)
    streams = Streams(world.settings.stream_prefix)
    for stream in (streams.captures, streams.pairs):
        for _, fields in await redis.xrange(stream):
            raw = b"".join(fields.values())
            assert not any(secret.encode() in raw for secret in CLIENT_SECRETS)
    for _, fields in await redis.xrange(streams.captures):
        capture = decode_entry(fields, cipher)
        assert ("Authorization", "[redacted]") in capture.request.headers
        assert not any(secret in json.dumps(capture.request.headers) for secret in CLIENT_SECRETS)


async def test_a_tenant_that_opted_out_leaves_nothing_behind(world: World, redis: Redis) -> None:
    blobs = world.settings.blob_path
    async with running_tap(world.settings) as (tap, state):
        # The opted-out clinic first: its requests would be queued before the other clinic's.
        assert await every_route(tap, "klinik-optout") == 7
        sent = await every_route(tap, "klinik-a")
        await captured(state, sent)
        assert state.capture is not None
        assert sum(state.capture.dropped.values()) == 0
    # It was served all the same.
    assert len(world.primary.seen) == 2 * sent
    raw = await redis.xrange(Streams(world.settings.stream_prefix).captures)
    assert len(raw) == sent
    assert {fields[b"tenant"] for _, fields in raw} == {b"klinik-a"}
    # One large body (the klinik-a audio upload) went to the blob store; none of the other clinic's.
    files = [p for p in blobs.rglob("*") if p.is_file()]
    assert len(files) == 1
    assert sealed(files[0].read_bytes())


async def test_credentials_stay_out_even_when_secret_headers_forgets_them(world: World, redis: Redis) -> None:
    # An operator who narrows secret_headers stores more in Redis (sealed), but the candidate still
    # gets no client credential: dispatch drops them by name whatever the setting says.
    settings = world.settings.model_copy(update={"secret_headers": ("OpenAI-Organization",)})
    async with running_tap(settings) as (tap, state):
        sent = await every_route(tap, "klinik-a")
        await captured(state, sent)
    async with candidate_session(settings) as session:
        await asyncio.wait_for(Dispatcher(redis, settings, session).run(asyncio.Event(), burst=True), 60)
    assert len(world.candidate.seen) == len(world.secondary.seen) == sent
    for seen in [*world.candidate.seen, *world.secondary.seen]:
        assert seen.headers["authorization"] in (f"Bearer {CANDIDATE_KEY}", f"Bearer {SECONDARY_KEY}")
        for secret in CLIENT_SECRETS:
            assert secret not in json.dumps(seen.headers)


async def test_a_credential_in_the_query_string_is_neither_stored_nor_sent_to_the_candidate(
    world: World, redis: Redis
) -> None:
    secret = "query-key-" + CLIENT_KEY
    async with running_tap(world.settings) as (tap, state):
        c = openai.AsyncOpenAI(
            base_url=f"{tap}/v1",
            api_key=CLIENT_KEY,
            max_retries=0,
            default_headers={"X-Tenant-ID": "klinik-a"},
            default_query={"api-version": "2024-06-01", "api-key": secret},
        )
        try:
            await c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "demam?"}])
        finally:
            await c.close()
        await captured(state, 1)
    async with candidate_session(world.settings) as session:
        dispatcher = Dispatcher(redis, world.settings, session)
        await asyncio.wait_for(dispatcher.run(asyncio.Event(), burst=True), 60)
    assert dispatcher.stats.paired == 1
    (seen,) = world.candidate.seen
    assert "api-version=2024-06-01" in seen.path_qs  # the rest of the query goes through, unchanged
    assert secret not in seen.path_qs
    streams = Streams(world.settings.stream_prefix)
    for stream in (streams.captures, streams.pairs):
        for _, fields in await redis.xrange(stream):
            assert secret.encode() not in b"".join(fields.values())
