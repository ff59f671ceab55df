"""Encryption at rest, end to end on real Redis and on SQLite and PostgreSQL: tap -> dispatch -> worker
-> store with keys set, redaction on. Nothing clinical is readable in Redis, in the blob files or in the
database; the one door (load_payload) and the export open it; rotation keeps it readable; a process
without the key names the key and loses nothing."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from aiohttp import web
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import Engine, select

from comparators.embedder import Embedder
from comparators.worker import ScoringWorker
from mirror.dispatch import Dispatcher, candidate_session
from mirror.exchange import decode_entry, encode_entry
from mirror.replay import Selection, replay
from mirror.streams import Streams
from shadowgate.crypto import TEXT_PREFIX, Cipher, MissingKey, cipher_from, decode_key, sealed
from shadowgate.settings import Encryption, Settings
from store.export import export
from store.models import FINDINGS, PAIRS, PAYLOADS
from store.payloads import load_findings, load_payload
from tests.conftest import TEST_REDIS_URL
from tests.integration.tapkit import running_tap, serving

KEY_1 = base64.b64encode(bytes(range(32))).decode()
KEY_2 = base64.b64encode(bytes(range(100, 132))).decode()
IC = "900101-14-5678"
PHONE = "012-345 6789"
EMAIL = "ali.bakar@klinik.example"
NOTE = f"Pesakit menafikan sakit dada. IC {IC}, tel {PHONE}, {EMAIL}."
# Words that occur only in clinical content, never in a clear field: none may be readable at rest.
CLEAR_MARKERS = [b"menafikan", b"Paracetamol", IC.encode(), b"ali.bakar", b"AUDIO-MARKER-7f3e"]

DOSE = web.AppKey("dose", str)


async def answer(request: web.Request) -> web.StreamResponse:
    """Primary and candidate alike: the answer repeats the note, with this server's dose."""
    raw = await request.read()
    if request.path.endswith("/audio/transcriptions"):
        return web.json_response({"text": f"Paracetamol {request.app[DOSE]} dua kali sehari"})
    body = json.loads(raw)
    text = f"Catatan: {body['messages'][0]['content']} Paracetamol {request.app[DOSE]}."
    if not body.get("stream"):
        message = {"role": "assistant", "content": text}
        return web.json_response(
            {"model": body["model"], "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        )
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for word in text.split(" "):
        chunk = {"model": body["model"], "choices": [{"index": 0, "delta": {"content": word + " "}}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def server(dose: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[DOSE] = dose
    app.router.add_post("/{tail:.*}", answer)
    return app


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(precision="fp32")


@dataclass
class Run:
    settings: Settings
    engine: Engine
    redis: Redis

    @property
    def cipher(self) -> Cipher:
        cipher = cipher_from(self.settings.encryption)
        assert cipher is not None
        return cipher


@pytest.fixture
async def run(
    store_engine: Engine, embedder: Embedder, redis: Redis, stream_prefix: str, tmp_path: Path
) -> Run:
    """Three requests through the whole pipeline with encryption required and redaction on."""
    async with serving(server("500 mg")) as primary, serving(server("50 mg")) as candidate:
        settings = Settings(
            primary_url=primary,  # type: ignore[arg-type]
            candidate_url=candidate,  # type: ignore[arg-type]
            redis_url=TEST_REDIS_URL,
            stream_prefix=stream_prefix,
            data_dir=tmp_path,
            db_url=store_engine.url.render_as_string(hide_password=False),
            encryption=Encryption(keys={"k1": SecretStr(KEY_1)}, required=True),
            redact=("ic", "phone", "email"),
        )
        async with running_tap(settings) as (tap, state):
            client = openai.AsyncOpenAI(
                base_url=f"{tap}/v1", api_key="sk-x", max_retries=0, default_headers={"X-Tenant-ID": "k1"}
            )
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": NOTE}])
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": NOTE}], stream=True
            )
            async for _ in stream:
                pass
            audio = os.urandom(90_000) + b"AUDIO-MARKER-7f3e"
            await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio, "audio/wav"))
            await client.close()
            assert state.capture is not None
            deadline = time.monotonic() + 10
            while state.capture.captured < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert state.capture.captured == 3
        async with candidate_session(settings) as session:
            dispatcher = Dispatcher(redis, settings, session)
            await asyncio.wait_for(dispatcher.run(asyncio.Event(), burst=True), 60)
        assert dispatcher.stats.paired == 3
    worker = ScoringWorker(redis, settings, store_engine, embedder)
    stats = await asyncio.wait_for(worker.run(asyncio.Event(), burst=True), 120)
    assert stats.scored == 3
    return Run(settings, store_engine, redis)


def keys(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(PAIRS.c.key).order_by(PAIRS.c.key)).scalars())


async def test_sealed_at_rest_opened_by_the_one_door_redacted_alike(run: Run) -> None:
    await nothing_clinical_is_readable_at_rest(run)
    the_one_door_and_the_export_open_it_redacted_alike_on_both_sides(run)
    await the_candidate_got_the_real_request_and_redis_holds_it_sealed(run)


async def test_rotation_and_a_process_without_the_key(run: Run, caplog: pytest.LogCaptureFixture) -> None:
    await rotation_keeps_everything_readable_and_a_missing_key_is_named(run)
    await a_worker_without_the_key_names_it_and_loses_nothing(run, caplog)
    await replayed_pairs_are_sealed_too(run)


async def nothing_clinical_is_readable_at_rest(run: Run) -> None:
    streams = Streams(run.settings.stream_prefix)
    for stream in (streams.captures, streams.pairs):
        entries = await run.redis.xrange(stream)
        assert len(entries) == 3
        for _, fields in entries:
            assert sealed(fields[b"data"])
            raw = b"".join(fields.values())
            assert not [m for m in CLEAR_MARKERS if m in raw]

    blob_files = [p for p in run.settings.blob_path.rglob("*") if p.is_file()]
    assert blob_files  # the audio upload went to the blob store
    for path in blob_files:
        content = path.read_bytes()
        assert sealed(content)
        assert not [m for m in CLEAR_MARKERS if m in content]

    with run.engine.connect() as conn:
        payloads = conn.execute(select(PAYLOADS)).mappings().all()
        findings = conn.execute(select(FINDINGS)).mappings().all()
    assert len(payloads) == 3
    assert findings  # 500 mg against 50 mg: the clinical scorer quotes both
    for row in payloads:
        assert sealed(bytes(row["request"]))
        for column in ("primary_text", "candidate_text"):
            assert row[column] is None or row[column].startswith(TEXT_PREFIX)
        assert not [
            m for m in CLEAR_MARKERS if m.decode(errors="ignore") in json.dumps(dict(row), default=str)
        ]
    for row in findings:
        assert row["primary_excerpt"].startswith(TEXT_PREFIX)
        assert row["other_excerpt"].startswith(TEXT_PREFIX)


def the_one_door_and_the_export_open_it_redacted_alike_on_both_sides(run: Run) -> None:
    texts = []
    for key in keys(run.engine):
        payload = load_payload(run.engine, key, run.cipher)
        assert payload is not None
        if b"messages" in payload.request:
            request = json.loads(payload.request)["messages"][0]["content"]
            assert request == "Pesakit menafikan sakit dada. IC [IC-1], tel [PHONE-1], [EMAIL-1]."
            assert payload.primary is not None
            assert payload.candidate is not None
            # One redactor for the pair: the same values, the same placeholders, on both sides.
            assert "IC [IC-1], tel [PHONE-1], [EMAIL-1]" in payload.primary
            assert "IC [IC-1], tel [PHONE-1], [EMAIL-1]" in payload.candidate
            texts += [payload.primary, payload.candidate]
        else:
            assert b"AUDIO-MARKER-7f3e" in payload.request  # audio is a recording: kept as it came
    assert len(texts) == 4
    assert not [t for t in texts if IC in t or "ali.bakar" in t]
    found = [f for key in keys(run.engine) for _, f in load_findings(run.engine, key, run.cipher)]
    assert any("500" in f.primary and "50" in f.other for f in found)

    out = io.StringIO()
    assert export(run.engine, out, "jsonl", include_payloads=True, cipher=run.cipher) == 3
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(r["request_b64"] is not None for r in rows) == [True] * 3
    assert sum("[IC-1]" in base64.b64decode(r["request_b64"]).decode(errors="replace") for r in rows) == 2
    assert not [r for r in rows if (r["primary_text"] or "").startswith(TEXT_PREFIX)]


async def the_candidate_got_the_real_request_and_redis_holds_it_sealed(run: Run) -> None:
    # Redaction is for what is kept, not for what is mirrored: Redis holds the original, sealed.
    captures = await run.redis.xrange(Streams(run.settings.stream_prefix).captures)
    chats = [decode_entry(f, run.cipher) for _, f in captures]
    notes = [json.loads(x.request.body.data or b"{}").get("messages", [{}])[0].get("content") for x in chats]
    assert notes.count(NOTE) == 2


async def rotation_keeps_everything_readable_and_a_missing_key_is_named(run: Run) -> None:
    rotated = Cipher({"k1": decode_key(KEY_1), "k2": decode_key(KEY_2)}, "k2")
    only_new = Cipher({"k2": decode_key(KEY_2)}, "k2")
    key = keys(run.engine)[0]
    assert load_payload(run.engine, key, rotated) == load_payload(run.engine, key, run.cipher)
    with pytest.raises(MissingKey, match="'k1'"):
        load_payload(run.engine, key, only_new)
    with pytest.raises(MissingKey, match="no encryption keys are configured"):
        load_payload(run.engine, key, None)
    for _, fields in await run.redis.xrange(Streams(run.settings.stream_prefix).pairs):
        assert decode_entry(fields, rotated).candidate is not None
        with pytest.raises(MissingKey):
            decode_entry(fields, only_new)


async def a_worker_without_the_key_names_it_and_loses_nothing(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    streams = Streams(run.settings.stream_prefix)
    pair = decode_entry((await run.redis.xrange(streams.pairs))[0][1], run.cipher)
    await run.redis.xadd(streams.pairs, encode_entry(pair, run.cipher))  # type: ignore[arg-type]
    keyless = run.settings.model_copy(update={"encryption": Encryption()})

    def no_model() -> Embedder:
        raise AssertionError("nothing should be scored without the key")

    worker = ScoringWorker(run.redis, keyless, run.engine, no_model)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + 10
    while worker.stats.read < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert worker.stats.read == 1
    assert worker.stats.scored == 0
    assert "'k1'" in caplog.text
    assert await run.redis.xlen(streams.compare_dead_letter) == 0  # not dead-lettered: it stays pending
    pending = await run.redis.xpending(streams.pairs, streams.compare_group)
    assert pending["pending"] == 1


async def replayed_pairs_are_sealed_too(run: Run) -> None:
    streams = Streams(run.settings.stream_prefix)
    before = await run.redis.xlen(streams.pairs)
    summary = await replay(run.redis, run.settings, Selection(), rate=1000.0, progress=False)
    assert summary.sent == 3
    assert summary.malformed == 0
    replayed = await run.redis.xrange(streams.pairs)
    assert len(replayed) == before + 3
    for _, fields in replayed[before:]:
        assert sealed(fields[b"data"])
        assert not [m for m in CLEAR_MARKERS if m in fields[b"data"]]
        assert decode_entry(fields, run.cipher).replay == summary.run_id
