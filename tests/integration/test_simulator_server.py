"""The simulator on a real port, driven by the real openai SDK and by plain aiohttp."""

import base64
import hashlib
import io
import re
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from simulator import Drift, Latency, Role, SimulatorProfile, TenantProfile, build_app

Serve = Callable[[SimulatorProfile], Awaitable[str]]

FAST = Latency(median_ms=1, p95_ms=2, chunk_ms=5)
SOAP_PROMPT = [
    {"role": "system", "content": "You write SOAP notes for a Malaysian clinic."},
    {"role": "user", "content": "Patient with fever and sore throat for 3 days."},
]


def _profile(role: Role = "primary", **tenant: Any) -> SimulatorProfile:
    return SimulatorProfile(role=role, seed=42, default=TenantProfile(latency=FAST, **tenant))


@pytest.fixture
async def serve(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> Serve:
    async def start(profile: SimulatorProfile) -> str:
        server = await aiohttp_server(build_app(profile))
        return f"http://127.0.0.1:{server.port}"

    return start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _client(base: str, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{base}/v1", api_key="sk-test", max_retries=0, default_headers=headers or None
    )


async def test_chat_completion_through_the_sdk(serve: Serve) -> None:
    base = await serve(_profile())
    async with _client(base) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=SOAP_PROMPT, extra_headers={"X-Request-ID": "req-1"}
        )
    completion = raw.parse()
    content = completion.choices[0].message.content or ""
    assert content.startswith("S: ")
    assert re.search(r"BP \d+/\d+ mmHg", content)
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 10
    assert raw.headers["x-request-id"] == "req-1"
    assert raw.headers["x-model-version"].startswith("gpt-4o-mini@")
    assert "x-gpu-id" not in raw.headers


async def test_chat_stream_arrives_in_chunks_over_time(serve: Serve) -> None:
    base = await serve(_profile("candidate"))
    arrivals: list[float] = []
    pieces: list[str] = []
    finish: list[str | None] = []
    usage_tokens: list[int] = []
    async with _client(base) as client:
        stream = await client.chat.completions.create(
            model="llama-3.1-70b",
            messages=SOAP_PROMPT,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            arrivals.append(time.monotonic())
            if chunk.usage is not None:
                usage_tokens.append(chunk.usage.completion_tokens)
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish.append(chunk.choices[0].finish_reason)
        plain = await client.chat.completions.create(model="llama-3.1-70b", messages=SOAP_PROMPT)
    assert len(pieces) > 10
    assert "".join(pieces) == plain.choices[0].message.content
    assert finish[-1] == "stop"
    assert finish[:-1] == [None] * (len(finish) - 1)
    assert usage_tokens
    assert usage_tokens[0] > 10
    # 5 ms between chunks: they arrive spread out, not in one burst
    assert arrivals[-1] - arrivals[0] >= 0.004 * (len(pieces) - 2)


async def test_max_tokens_cuts_the_answer(serve: Serve) -> None:
    base = await serve(_profile())
    async with _client(base) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=SOAP_PROMPT, max_tokens=8
        )
    assert completion.choices[0].finish_reason == "length"
    assert len((completion.choices[0].message.content or "").split()) <= 6


async def test_malay_prompt_gets_a_malay_answer(serve: Serve) -> None:
    base = await serve(_profile())
    async with _client(base) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Pesakit demam dan batuk, apa rawatan?"}],
        )
    content = completion.choices[0].message.content or ""
    assert re.search(r"\b(ialah|dengan|Rujuk|Rawatan|Boleh|Simptom)\b", content)


async def test_transcription_of_a_megabyte_upload(serve: Serve) -> None:
    audio = hashlib.sha256(b"synthetic").digest() * (1_048_576 // 32)
    primary = await serve(_profile())
    candidate = await serve(_profile("candidate"))
    async with _client(primary) as p, _client(candidate) as c:
        first = await p.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio, "audio/wav"))
        again = await c.audio.transcriptions.create(
            model="whisper-large-v3", file=("b.wav", audio, "audio/wav")
        )
        other = await p.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", audio[:-1] + b"\x00", "audio/wav")
        )
        verbose = await p.audio.transcriptions.create(
            model="whisper-1",
            file=("a.wav", audio, "audio/wav"),
            response_format="verbose_json",
            language="ms",
        )
    assert len(first.text.split()) >= 60  # about 33 s of audio at 16 kHz
    assert first.text == again.text
    assert first.text != other.text
    assert verbose.language == "malay"
    assert verbose.segments
    assert verbose.segments[-1].end == pytest.approx(verbose.duration, abs=0.05)


async def test_transcription_accepts_tens_of_megabytes(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(_profile())
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"\x01" * 30_000_000), filename="long.wav", content_type="audio/wav")
    form.add_field("model", "whisper-1")
    form.add_field("response_format", "text")
    async with http.post(f"{base}/v1/audio/transcriptions", data=form) as response:
        assert response.status == 200
        body = await response.text()
    assert len(body.split()) > 1000


async def test_embeddings_in_base64_and_float(serve: Serve) -> None:
    base = await serve(_profile())
    texts = ["dengue warning signs", "dengue warning signs", "salt and blood pressure"]
    async with _client(base) as client:
        default = await client.embeddings.create(model="text-embedding-3-small", input=texts)
        floats = await client.embeddings.create(
            model="text-embedding-3-small", input=texts[0], encoding_format="float"
        )
    vecs = [item.embedding for item in default.data]
    assert [len(v) for v in vecs] == [384, 384, 384]
    assert vecs[0] == vecs[1]
    assert vecs[0] != vecs[2]
    assert vecs[0] == pytest.approx(floats.data[0].embedding, abs=1e-6)


async def test_embeddings_raw_base64_is_little_endian_float32(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(_profile())
    body = {"model": "m", "input": "asma", "encoding_format": "base64", "dimensions": 8}
    async with http.post(f"{base}/v1/embeddings", json=body) as response:
        data = await response.json()
    raw = base64.b64decode(data["data"][0]["embedding"])
    values = struct.unpack("<8f", raw)
    assert sum(v * v for v in values) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
async def test_rerank(serve: Serve, http: aiohttp.ClientSession, path: str) -> None:
    base = await serve(_profile())
    body = {
        "model": "rerank-v3.5",
        "query": "dengue warning signs",
        "documents": ["salt intake", {"text": "dengue warning signs in adults"}, "dengue"],
        "top_n": 2,
        "return_documents": True,
    }
    async with http.post(f"{base}{path}", json=body) as response:
        assert response.status == 200
        data = await response.json()
    assert [r["index"] for r in data["results"]] == [1, 2]
    assert data["results"][0]["relevance_score"] > data["results"][1]["relevance_score"]
    assert data["results"][0]["document"]["text"] == "dengue warning signs in adults"


async def test_models_list(serve: Serve) -> None:
    base = await serve(_profile("candidate"))
    async with _client(base) as client:
        listed = await client.models.list()
    assert {"llama-3.1-70b", "whisper-large-v3", "bge-m3"} <= {m.id for m in listed.data}


async def test_same_seed_and_no_drift_answer_alike(serve: Serve) -> None:
    primary = await serve(_profile())
    candidate = await serve(_profile("candidate"))
    async with _client(primary) as p, _client(candidate) as c:
        for content in ("Pesakit sakit kepala", "Write a SOAP note: gout", "asthma advice"):
            messages = [{"role": "user", "content": content}]
            a = await p.chat.completions.create(model="gpt-4o-mini", messages=messages)
            b = await c.chat.completions.create(model="llama-3.1-70b", messages=messages)
            assert a.choices[0].message.content == b.choices[0].message.content


async def test_number_drift_makes_the_candidate_differ(serve: Serve) -> None:
    primary = await serve(_profile())
    candidate = await serve(_profile("candidate", drift={"chat": Drift(numbers=0.5)}))
    async with _client(primary) as p, _client(candidate) as c:
        a = await p.chat.completions.create(model="gpt-4o-mini", messages=SOAP_PROMPT)
        b = await c.chat.completions.create(model="llama-3.1-70b", messages=SOAP_PROMPT)
        b_again = await c.chat.completions.create(model="llama-3.1-70b", messages=SOAP_PROMPT)
    left, right = a.choices[0].message.content or "", b.choices[0].message.content or ""
    assert left != right
    assert re.sub(r"[\d.]+", "#", left) == re.sub(r"[\d.]+", "#", right)
    assert right == b_again.choices[0].message.content


async def test_tenant_header_picks_the_tenant_profile(serve: Serve) -> None:
    profile = SimulatorProfile(
        role="candidate",
        seed=42,
        default=TenantProfile(latency=FAST),
        tenants={"klinik-harmoni": TenantProfile(drift={"audio": Drift(drop_words=0.5)})},
    )
    base = await serve(profile)
    audio = b"\x02" * 200_000
    async with _client(base) as plain, _client(base, **{"X-Tenant-ID": "klinik-harmoni"}) as harmoni:
        normal = await plain.audio.transcriptions.create(model="w", file=("a.wav", audio, "audio/wav"))
        lossy = await harmoni.audio.transcriptions.create(model="w", file=("a.wav", audio, "audio/wav"))
    assert len(lossy.text.split()) < 0.7 * len(normal.text.split())


async def test_errors_are_openai_shaped(serve: Serve) -> None:
    base = await serve(_profile(error_rate=1.0))
    async with _client(base) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=SOAP_PROMPT)
    assert caught.value.status_code in (500, 503)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "server_error"


async def test_bad_requests_get_400(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(_profile())
    async with http.post(f"{base}/v1/chat/completions", data=b"{not json") as response:
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"
    async with http.post(f"{base}/v1/embeddings", json={"input": [1, 2]}) as response:
        assert response.status == 400


async def test_latency_follows_the_profile(serve: Serve) -> None:
    slow = Latency(median_ms=120, p95_ms=120, chunk_ms=0)
    base = await serve(SimulatorProfile(default=TenantProfile(latency=slow)))
    async with _client(base) as client:
        started = time.monotonic()
        await client.embeddings.create(model="m", input="x")
        elapsed = time.monotonic() - started
    assert 0.11 < elapsed < 1.0
