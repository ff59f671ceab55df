"""Synthetic clinic traffic through the real `openai` client: ambient SOAP, chat, transcription, retrieval."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import random
import signal
import sys
import time
import uuid
import wave
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from shadowgate.runtime import new_event_loop
from simulator.text import Lang, guideline_snippet, transcript
from simulator.vocab import CONDITIONS

# The kinds of request on each route; on the chat route ambient SOAP notes come first, as in the plan.
KINDS: Mapping[str, tuple[str, ...]] = {
    "chat": ("soap", "chat", "soap", "chat_stream"),
    "audio": ("transcribe",),
    "embed": ("embed",),
    "rerank": ("rerank",),
}
ROUTE_OF_KIND: Mapping[str, str] = {kind: route for route, kinds in KINDS.items() for kind in kinds}

# The demo's clinics: requests per second on each route they use. 5/s gives 100 pairs in 20 s, what the
# demo policy needs for a GO (the mean embedding rank correlation's bound is the last to pass); 1.5/s
# gives 30, enough to see a clear regression; klinik-kecil sends one request every five seconds in all,
# never enough to judge. Not every clinic uses retrieval.
DEMO_TENANTS: Mapping[str, Mapping[str, float]] = {
    "klinik-sejahtera": {"chat": 5.0, "audio": 5.0, "embed": 5.0, "rerank": 5.0},
    "klinik-harmoni": {"chat": 5.0, "audio": 2.0},
    "klinik-bayu": {"chat": 1.5, "audio": 1.5, "embed": 1.5, "rerank": 1.5},
    "klinik-mutiara": {"chat": 2.0, "audio": 2.0},
    "klinik-kecil": {"chat": 0.05, "audio": 0.05, "embed": 0.05, "rerank": 0.05},
}


@dataclass
class TrafficReport:
    sent: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    # Errors the client saw, by class: these are the primary's own (the tap passes them through).
    errors: Counter[str] = field(default_factory=Counter)
    planned: int = 0

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    @property
    def done(self) -> int:
        return sum(self.ok.values()) + sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "sent": self.sent, "ok": self.ok, "errors": self.errors}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficReport:
        return cls(
            sent=Counter(data.get("sent", {})),
            ok=Counter(data.get("ok", {})),
            errors=Counter(data.get("errors", {})),
            planned=int(data.get("planned", 0)),
        )


@dataclass(frozen=True)
class Planned:
    """One request, drawn before it is sent so that what a clinic sends does not depend on timing."""

    tenant: str
    kind: str
    at: float  # seconds after the start
    lang: Lang
    content: Any


def schedule(tenants: Mapping[str, Mapping[str, float]], seconds: float, seed: int = 7) -> list[Planned]:
    """Every request of the run in time order: each tenant x route sends `rate` requests per second,
    evenly spaced. The same arguments give the same requests."""
    plan: list[Planned] = []
    lanes = [
        (tenant, route, rate) for tenant, routes in sorted(tenants.items()) for route, rate in routes.items()
    ]
    for index, (tenant, route, rate) in enumerate(lanes):
        if rate <= 0:
            continue
        rng = random.Random(f"{seed}:{tenant}:{route}")
        kinds = KINDS[route]
        # lanes start spread over their first interval (at most a second), so they interleave
        offset = min(1.0, 1.0 / rate) * (index + 1) / (len(lanes) + 1)
        for i in range(int(seconds * rate + 1e-9)):
            kind = kinds[i % len(kinds)]
            lang: Lang = "ms" if rng.random() < 0.4 else "en"
            plan.append(Planned(tenant, kind, offset + i / rate, lang, _content(kind, lang, rng)))
    plan.sort(key=lambda p: p.at)
    return plan


def route_counts(plan: list[Planned]) -> Counter[tuple[str, str]]:
    return Counter((p.tenant, ROUTE_OF_KIND[p.kind]) for p in plan)


def _content(kind: str, lang: Lang, rng: random.Random) -> Any:
    if kind == "soap":
        return transcript(random.Random(rng.random()), lang)
    if kind in ("chat", "chat_stream"):
        return chat_question(rng, lang)
    if kind == "transcribe":
        return (rng.randrange(4), rng.randbytes(16))
    if kind == "embed":
        return [guideline_snippet(random.Random(rng.random()), lang) for _ in range(rng.randint(3, 6))]
    if kind == "rerank":
        return [guideline_snippet(random.Random(rng.random()), lang) for _ in range(5)]
    raise ValueError(f"unknown traffic kind {kind!r}")


def chat_question(rng: random.Random, lang: Lang) -> str:
    """A clinician's question about a patient, varied enough that no two answers are the same."""
    condition = rng.choice(CONDITIONS)
    keyword = rng.choice(condition.keywords)
    age, days = rng.randint(4, 82), rng.randint(1, 14)
    if lang == "ms":
        return rng.choice(
            (
                f"Pesakit berumur {age} tahun dengan {keyword} selama {days} hari. "
                "Apakah rawatan yang sesuai?",
                f"Apakah rawatan untuk {keyword} pada pesakit {age} tahun, sudah {days} hari?",
            )
        )
    return rng.choice(
        (
            f"A {age}-year-old with {keyword} for {days} days. What is the first-line treatment?",
            f"How should I manage {keyword} in a {age}-year-old patient, {days} days so far?",
        )
    )


def synthetic_wav(rng: random.Random, seconds: float, rate: int = 8000) -> bytes:
    """A mono 16-bit WAV of noise: real framing, no real voice (test data stays synthetic)."""
    samples = rng.randbytes(int(seconds * rate) * 2)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return buf.getvalue()


class Traffic:
    """Sends planned requests for tenants through one `openai` client per tenant."""

    def __init__(self, base_url: str, api_key: str = "sk-demo-client-key", seed: int = 7) -> None:
        self._base_url = base_url.rstrip("/") + "/v1"
        self._api_key = api_key
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        # Four short recordings; each request changes its last samples, so every recording is new to the
        # servers (as a clinic's are) without generating noise per request. The simulator's transcript
        # is a whole consultation whatever the length, and small bodies keep the demo's CPU for the rest.
        self._audio = [synthetic_wav(random.Random(seed + i), seconds=1 + i) for i in range(4)]

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

    def prepare(self, tenants: Iterable[str]) -> None:
        """Make the clients up front: each loads a TLS context, tens of milliseconds of CPU."""
        for tenant in tenants:
            self.client(tenant)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def send(self, p: Planned) -> None:
        client = self.client(p.tenant)
        headers = {"X-Request-ID": uuid.uuid4().hex}
        if p.kind == "soap":
            instruction = (
                "Tulis nota SOAP daripada perbualan ini" if p.lang == "ms" else "Write a SOAP note from this"
            )
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "You are a clinical scribe. Answer with a SOAP note."},
                    {"role": "user", "content": f"{instruction}:\n{p.content}"},
                ],
                extra_headers=headers,
            )
        elif p.kind == "chat":
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": p.content}],
                extra_headers=headers,
            )
        elif p.kind == "chat_stream":
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": p.content}],
                stream=True,
                extra_headers=headers,
            )
            async for _ in stream:
                pass
        elif p.kind == "transcribe":
            which, tail = p.content
            audio = self._audio[which][: -len(tail)] + tail
            await client.audio.transcriptions.create(
                model="whisper-1",
                file=("consultation.wav", audio, "audio/wav"),
                language=p.lang,
                extra_headers=headers,
            )
        elif p.kind == "embed":
            # 64 dimensions (text-embedding-3 models take `dimensions`): small JSON, the same comparison
            await client.embeddings.create(
                model="text-embedding-3-small", input=p.content, dimensions=64, extra_headers=headers
            )
        elif p.kind == "rerank":
            docs = p.content
            await client.post(
                "/rerank",
                body={"model": "rerank-v3.5", "query": docs[0][:60], "documents": docs, "top_n": 3},
                cast_to=object,
                options={"headers": headers},
            )
        else:
            raise ValueError(f"unknown traffic kind {p.kind!r}")

    async def run(
        self,
        plan: list[Planned],
        *,
        max_in_flight: int = 256,
        on_progress: Callable[[TrafficReport, float], Awaitable[None] | None] | None = None,
        every_s: float = 2.0,
    ) -> TrafficReport:
        """Send each planned request at its time (open loop: a slow answer delays no other request),
        with at most `max_in_flight` waiting for answers; return once every one has been answered."""
        report = TrafficReport(planned=len(plan))
        slots = asyncio.Semaphore(max_in_flight)
        started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()

        async def one(p: Planned) -> None:
            try:
                await self.send(p)
            except openai.APIError as exc:
                report.errors[type(exc).__name__] += 1
            else:
                report.ok[p.kind] += 1
            finally:
                slots.release()

        async def progress() -> None:
            while on_progress is not None:
                await asyncio.sleep(every_s)
                result = on_progress(report, time.monotonic() - started)
                if result is not None:
                    await result

        ticker = asyncio.create_task(progress())
        try:
            for p in plan:
                delay = started + p.at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                report.sent[p.kind] += 1
                task = asyncio.create_task(one(p))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            ticker.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(ticker, *tasks, return_exceptions=True)
        return report


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m shadowgate.traffic --url TAP --seconds S`: the demo's clinics, as their own process (a
    clinic's app is not the tap's process either). Progress and the final report go to standard output
    as JSON lines; SIGTERM stops it quietly."""
    parser = argparse.ArgumentParser(prog="python -m shadowgate.traffic")
    parser.add_argument("--url", required=True, help="the tap's base URL")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    plan = schedule(DEMO_TENANTS, args.seconds, args.seed)

    def emit(report: TrafficReport, final: bool = False) -> None:
        print(json.dumps(report.as_dict() | {"final": final}), flush=True)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for signum in (signal.SIGTERM, signal.SIGINT):  # the demo stops it; a terminal's Ctrl-C too
            loop.add_signal_handler(signum, task.cancel)
        traffic = Traffic(args.url, seed=args.seed)
        traffic.prepare(DEMO_TENANTS)
        gc.collect()
        gc.freeze()  # what exists now is never walked by the collector: no pauses in the timings
        try:
            emit(await traffic.run(plan, on_progress=lambda report, _: emit(report), every_s=1.0), final=True)
        finally:
            await traffic.close()

    with asyncio.Runner(loop_factory=new_event_loop) as runner, contextlib.suppress(asyncio.CancelledError):
        runner.run(go())
    return 0


if __name__ == "__main__":
    sys.exit(main())
