"""Synthetic clinic traffic through the real `openai` client: ambient SOAP, chat, transcription, retrieval."""

from __future__ import annotations

import asyncio
import io
import random
import struct
import time
import uuid
import wave
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import openai

from simulator.text import Lang, guideline_snippet, transcript

# The plan's shape: ambient SOAP notes dominate, then chat, recordings and retrieval.
DEFAULT_MIX: Mapping[str, float] = {
    "soap": 0.30,
    "chat": 0.15,
    "chat_stream": 0.15,
    "transcribe": 0.15,
    "embed": 0.15,
    "rerank": 0.10,
}

# The demo's planted tenants; klinik-kecil is the one with too little traffic to judge.
DEMO_TENANTS: Mapping[str, float] = {
    "klinik-sejahtera": 1.0,
    "klinik-harmoni": 1.0,
    "klinik-bayu": 1.0,
    "klinik-mutiara": 1.0,
    "klinik-kecil": 0.03,
}


@dataclass
class TrafficReport:
    sent: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    # Errors the client saw, by class: these are the primary's own (the tap passes them through).
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def synthetic_wav(rng: random.Random, seconds: float, rate: int = 8000) -> bytes:
    """A mono 16-bit WAV of noise: real framing, no real voice (test data stays synthetic)."""
    frames = int(seconds * rate)
    samples = struct.pack(f"<{frames}h", *(rng.randint(-3000, 3000) for _ in range(frames)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return buf.getvalue()


class Traffic:
    """Sends one request of a chosen kind for a tenant; `drive` keeps `concurrency` of them in flight."""

    def __init__(self, base_url: str, api_key: str = "sk-demo-client-key", seed: int = 7) -> None:
        self._base_url = base_url.rstrip("/") + "/v1"
        self._api_key = api_key
        self._rng = random.Random(seed)
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        # A few recordings reused across requests, as a clinic re-sends nothing but has similar audio.
        self._audio = [synthetic_wav(random.Random(seed + i), seconds=4 + 4 * i) for i in range(4)]

    def client(self, tenant: str) -> openai.AsyncOpenAI:
        if tenant not in self._clients:
            self._clients[tenant] = openai.AsyncOpenAI(
                base_url=self._base_url,
                api_key=self._api_key,
                max_retries=0,
                timeout=60,
                default_headers={"X-Tenant-ID": tenant},
            )
        return self._clients[tenant]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def send(self, tenant: str, kind: str) -> None:
        rng = self._rng
        client = self.client(tenant)
        lang: Lang = "ms" if rng.random() < 0.4 else "en"
        headers = {"X-Request-ID": uuid.uuid4().hex}
        if kind == "soap":
            visit = transcript(random.Random(rng.random()), lang)
            instruction = (
                "Tulis nota SOAP daripada perbualan ini" if lang == "ms" else "Write a SOAP note from this"
            )
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "You are a clinical scribe. Answer with a SOAP note."},
                    {"role": "user", "content": f"{instruction}:\n{visit}"},
                ],
                extra_headers=headers,
            )
        elif kind in ("chat", "chat_stream"):
            question = (
                "Apakah rawatan untuk demam dan batuk pada dewasa?"
                if lang == "ms"
                else "What is the first-line treatment for fever with cough in adults?"
            )
            if kind == "chat":
                await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": question}],
                    extra_headers=headers,
                )
            else:
                stream = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": question}],
                    stream=True,
                    extra_headers=headers,
                )
                async for _ in stream:
                    pass
        elif kind == "transcribe":
            audio = rng.choice(self._audio)
            await client.audio.transcriptions.create(
                model="whisper-1",
                file=("consultation.wav", audio, "audio/wav"),
                language=lang,
                extra_headers=headers,
            )
        elif kind == "embed":
            docs = [guideline_snippet(random.Random(rng.random()), lang) for _ in range(rng.randint(1, 4))]
            await client.embeddings.create(model="text-embedding-3-small", input=docs, extra_headers=headers)
        elif kind == "rerank":
            docs = [guideline_snippet(random.Random(rng.random()), lang) for _ in range(5)]
            await client.post(
                "/rerank",
                body={"model": "rerank-v3.5", "query": docs[0][:60], "documents": docs, "top_n": 3},
                cast_to=object,
                options={"headers": headers},
            )
        else:
            raise ValueError(f"unknown traffic kind {kind!r}")

    async def drive(
        self,
        *,
        seconds: float,
        concurrency: int,
        tenants: Mapping[str, float] = DEMO_TENANTS,
        mix: Mapping[str, float] = DEFAULT_MIX,
        max_requests: int | None = None,
        on_progress: Callable[[TrafficReport, float], Awaitable[None] | None] | None = None,
    ) -> TrafficReport:
        """Keep `concurrency` requests in flight for `seconds` (or until `max_requests`)."""
        report = TrafficReport()
        names, weights = list(tenants), list(tenants.values())
        kinds, kind_weights = list(mix), list(mix.values())
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        budget = [max_requests if max_requests is not None else -1]

        async def one_worker() -> None:
            while time.monotonic() < deadline and budget[0] != 0:
                budget[0] -= 1
                tenant = self._rng.choices(names, weights)[0]
                kind = self._rng.choices(kinds, kind_weights)[0]
                report.sent[kind] += 1
                try:
                    await self.send(tenant, kind)
                except openai.APIError as exc:
                    report.errors[type(exc).__name__] += 1
                else:
                    report.ok[kind] += 1

        async def progress() -> None:
            while on_progress is not None:
                await asyncio.sleep(2.0)
                result = on_progress(report, time.monotonic() - started)
                if result is not None:
                    await result

        ticker = asyncio.create_task(progress())
        try:
            await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        return report
