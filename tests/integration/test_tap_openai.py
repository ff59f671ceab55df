"""Through the tap with the real openai SDK: the client gets exactly what the primary gives, as it comes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator

import openai
import pytest
from redis.asyncio import Redis

from shadowgate.settings import Settings
from tests.conftest import TEST_REDIS_URL
from tests.integration.tapkit import read_captures, running_tap, serving
from tests.integration.upstream import SSE_CHUNKS, SSE_GAP_S, build_upstream

API_KEY = "sk-test-do-not-store-0123456789"


@pytest.fixture
async def primary_url() -> AsyncIterator[str]:
    async with serving(build_upstream()) as url:
        yield url


@pytest.fixture
async def tap_url(primary_url: str, stream_prefix: str, redis: Redis) -> AsyncIterator[str]:
    settings = Settings(primary_url=primary_url, redis_url=TEST_REDIS_URL, stream_prefix=stream_prefix)
    async with running_tap(settings) as (url, _state):
        yield url


_open: list[openai.AsyncOpenAI] = []


def client(base: str) -> openai.AsyncOpenAI:
    c = openai.AsyncOpenAI(
        base_url=f"{base}/v1",
        api_key=API_KEY,
        max_retries=0,
        default_headers={"X-Tenant-ID": "klinik-a"},
    )
    _open.append(c)
    return c


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()


async def test_chat_through_tap_equals_direct(primary_url: str, tap_url: str) -> None:
    messages = [{"role": "user", "content": "Ringkaskan nota SOAP: demam 38.5 °C, paracetamol 500 mg"}]
    direct = await client(primary_url).chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    tapped = await client(tap_url).chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    assert tapped.model_dump() == direct.model_dump()
    assert tapped.choices[0].message.content == f"echo: {messages[0]['content']}"


async def test_stream_chunks_arrive_in_order_as_produced(tap_url: str) -> None:
    stream = await client(tap_url).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
    )
    arrivals: list[tuple[float, float, str]] = []
    async for chunk in stream:
        produced = float(chunk.system_fingerprint or "nan")
        arrivals.append((time.time(), produced, chunk.choices[0].delta.content or ""))
    assert [text for _, _, text in arrivals] == [f"part{i} " for i in range(SSE_CHUNKS)]
    # Each chunk reaches the client soon after the primary wrote it, not all at the end.
    lags = [seen - produced for seen, produced, _ in arrivals]
    assert max(lags) < SSE_GAP_S, lags
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread > (SSE_CHUNKS - 2) * SSE_GAP_S


async def test_large_audio_upload_and_embeddings_equal_direct(primary_url: str, tap_url: str) -> None:
    audio = os.urandom(11 * 1024 * 1024)  # a synthetic 11 MB "recording"
    direct = await client(primary_url).audio.transcriptions.create(
        model="whisper-1", file=("visit.wav", audio, "audio/wav")
    )
    tapped = await client(tap_url).audio.transcriptions.create(
        model="whisper-1", file=("visit.wav", audio, "audio/wav")
    )
    assert tapped.text == direct.text
    assert tapped.text.startswith(f"{len(audio)} bytes")

    inputs = ["sakit kepala dua hari", "BP 130/85 mmHg"]
    e_direct = await client(primary_url).embeddings.create(model="bge-m3", input=inputs)
    e_tapped = await client(tap_url).embeddings.create(model="bge-m3", input=inputs)
    assert e_tapped.model_dump() == e_direct.model_dump()


async def test_captures_have_the_schema_and_no_credentials(
    tap_url: str, redis: Redis, stream_prefix: str
) -> None:
    c = client(tap_url)
    await c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "tiada demam"}]
    )
    stream = await c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}], stream=True
    )
    async for _ in stream:
        pass
    await c.audio.transcriptions.create(model="whisper-1", file=("a.wav", os.urandom(200_000), "audio/wav"))

    deadline = time.monotonic() + 5
    captures = await read_captures(redis, stream_prefix)
    while len(captures) < 3 and time.monotonic() < deadline:
        captures = await read_captures(redis, stream_prefix)
    assert [x.route for x in captures] == ["chat", "chat", "audio"]

    raw = await redis.xrange(f"{stream_prefix}:captures")
    for _, fields in raw:
        assert set(fields) == {b"v", b"id", b"tenant", b"route", b"ts", b"data"}
        assert fields[b"v"] == b"1"
        assert fields[b"tenant"] == b"klinik-a"
        assert API_KEY.encode() not in b"".join(fields.values())

    plain, streamed, audio = captures
    assert plain.request.method == "POST"
    assert plain.request.path == "/v1/chat/completions"
    assert json.loads(plain.request.body.data or b"")["messages"][0]["content"] == "tiada demam"
    assert plain.primary.status == 200
    assert not plain.primary.streamed
    assert json.loads(plain.primary.body.data or b"")["choices"][0]["message"]["content"] == (
        "echo: tiada demam"
    )
    assert ("Authorization", "[redacted]") in plain.request.headers
    assert plain.primary.total_ms >= (plain.primary.headers_ms or 0) > 0

    assert streamed.primary.streamed
    assert streamed.request.stream
    assert (streamed.primary.body.data or b"").count(b"data: ") == SSE_CHUNKS + 1
    assert streamed.primary.ttfb_ms is not None
    assert streamed.primary.total_ms - streamed.primary.ttfb_ms > (SSE_CHUNKS - 2) * SSE_GAP_S * 1000

    # 200 kB is above the inline limit: the body sits in the blob store, referenced by digest.
    assert audio.request.body.data is None
    assert (audio.request.body.ref or "").startswith("sha256:")
    assert audio.request.body.size > 200_000
