"""Tap -> dispatch -> worker -> store, on real Redis with SQLite and with PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import openai
import pytest
from redis.asyncio import Redis
from sqlalchemy import Engine, func, select

from comparators.embedder import Embedder
from comparators.worker import ScoringWorker
from mirror.dispatch import Dispatcher, candidate_session
from mirror.exchange import Body, Exchange, RequestSide, ResponseSide, encode_entry
from mirror.streams import Streams
from shadowgate.settings import Dispatch, Settings, Worker
from simulator.profile import Drift, Latency, SimulatorProfile, TenantProfile
from simulator.server import build_app as build_simulator
from simulator.text import soap_note
from store.models import PairRow, ScoreRow
from store.queries import route_summary, unscored_counts
from tests.conftest import TEST_REDIS_URL
from tests.integration.tapkit import running_tap, serving

FAST = Latency(median_ms=2, p95_ms=5, chunk_ms=1)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(precision="fp32")


@pytest.fixture
async def sims() -> AsyncIterator[tuple[str, str]]:
    primary = SimulatorProfile(role="primary", seed=3, default=TenantProfile(latency=FAST))
    candidate = SimulatorProfile(
        role="candidate",
        seed=3,
        default=TenantProfile(latency=FAST),
        tenants={
            # Every number changed and every negation flipped: the clinical scorer must see it all.
            "klinik-drift": TenantProfile(
                latency=FAST, drift={"chat": Drift(numbers=1.0, negation=1.0), "audio": Drift(drop_words=0.3)}
            )
        },
    )
    async with serving(build_simulator(primary)) as p, serving(build_simulator(candidate)) as c:
        yield p, c


def db_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def worker_env(engine: Engine, prefix: str, **extra: str) -> dict[str, str]:
    """The environment of a `shadowgate worker` process on this test's stream and store."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_REDIS_URL": TEST_REDIS_URL,
        "SHADOWGATE_STREAM_PREFIX": prefix,
        "SHADOWGATE_DB_URL": db_url(engine),
        **extra,
    }


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(PairRow)).scalar_one())


async def seed_pairs(redis: Redis, prefix: str, n: int) -> None:
    for i in range(n):
        await redis.xadd(Streams(prefix).pairs, encode_entry(synthetic_pair(i)))  # type: ignore[arg-type]


async def test_tap_dispatch_worker_store(
    sims: tuple[str, str], store_engine: Engine, embedder: Embedder, redis: Redis, stream_prefix: str
) -> None:
    primary, candidate = sims
    settings = Settings(
        primary_url=primary,  # type: ignore[arg-type]
        candidate_url=candidate,  # type: ignore[arg-type]
        redis_url=TEST_REDIS_URL,
        stream_prefix=stream_prefix,
        db_url=db_url(store_engine),
    )
    async with running_tap(settings) as (tap, state):
        for tenant in ("klinik-same", "klinik-drift"):
            client = openai.AsyncOpenAI(
                base_url=f"{tap}/v1", api_key="sk-x", max_retries=0, default_headers={"X-Tenant-ID": tenant}
            )
            for i in range(3):
                prompt = f"Write a SOAP note: fever {38 + i / 10:.1f} C for {i + 2} days, no cough."
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
                )
            await client.audio.transcriptions.create(
                model="whisper-1", file=("a.wav", random.Random(1).randbytes(50_000), "audio/wav")
            )
            await client.embeddings.create(
                model="e",
                input=["demam dan batuk", "demam dan selsema", "sakit kepala dan demam", "batuk kering"],
            )
            await client.close()
        assert state.capture is not None
        deadline = time.monotonic() + 5
        while state.capture.captured < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async with candidate_session(settings) as session:
        await Dispatcher(redis, settings, session).run(asyncio.Event(), burst=True)
    worker = ScoringWorker(redis, settings, store_engine, embedder)
    stats = await asyncio.wait_for(worker.run(asyncio.Event(), burst=True), 120)
    assert stats.scored == 10

    rows = {r.tenant: r for r in route_summary(store_engine, route="chat")}
    same, drift = rows["klinik-same"], rows["klinik-drift"]
    assert same.pairs == drift.pairs == 3
    assert same.means["semantic_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert same.means["rouge_l_f1"] == pytest.approx(1.0)
    assert same.means["fact_mismatches"] == 0
    assert drift.means["fact_mismatches"] >= 1
    assert drift.means["clinical_ok"] == 0
    # ...while the embedding still calls the drifted notes very similar: why both are kept.
    assert drift.means["semantic_similarity"] > 0.85

    audio = {r.tenant: r for r in route_summary(store_engine, route="audio")}
    assert audio["klinik-same"].means["wer"] == 0
    assert audio["klinik-drift"].means["wer"] > 0.1
    embed = {r.tenant: r for r in route_summary(store_engine, route="embed")}
    # Different models on the two sides (text-embedding-3-small vs bge-m3): agreement is judged by the
    # model-agnostic rank correlation of the within-request similarities, not by raw cosines.
    assert embed["klinik-same"].means["embed_cosine_mean"] is None
    assert embed["klinik-same"].means["embed_rank_correlation"] == pytest.approx(1.0, abs=1e-6)


def synthetic_pair(i: int) -> Exchange:
    rng = random.Random(i)
    note = soap_note(rng, "en")
    other = note.replace("500 mg", "50 mg")
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "SOAP please"}]})

    def side(role: str, text: str) -> ResponseSide:
        payload = json.dumps(
            {
                "model": role,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 0},
            }
        ).encode()
        return ResponseSide(
            role=role,  # type: ignore[arg-type]
            status=200,
            headers=[("Content-Type", "application/json")],
            body=Body(len(payload), payload),
            started_at=time.time(),
            headers_ms=100.0,
            ttfb_ms=100.0,
            total_ms=400.0 + i,
        )

    return Exchange(
        id=f"pair-{i}",
        tenant=f"klinik-{i % 3}",
        route="chat",
        route_prefix="/v1/chat/completions",
        captured_at=time.time(),
        request=RequestSide(
            method="POST",
            path="/v1/chat/completions",
            query="",
            headers=[],
            body=Body(len(body), body.encode()),
        ),
        primary=side("primary", note),
        candidate=side("candidate", other),
        paired_at=time.time(),
    )


async def test_killed_worker_leaves_every_pair_scored_exactly_once(
    store_engine: Engine, embedder: Embedder, redis: Redis, stream_prefix: str
) -> None:
    n = 120
    pairs = Streams(stream_prefix).pairs
    await seed_pairs(redis, stream_prefix, n)
    env = worker_env(
        store_engine, stream_prefix, SHADOWGATE_WORKER__BATCH="8", SHADOWGATE_EMBEDDING_PRECISION="fp32"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowgate.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    try:
        deadline = time.monotonic() + 90
        while stored(store_engine) < 16 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first = stored(store_engine)
    assert 16 <= first < n, "the kill should land mid-run"

    settings = Settings(
        redis_url=TEST_REDIS_URL,
        stream_prefix=stream_prefix,
        db_url=db_url(store_engine),
        worker=Worker(batch=16, reclaim_idle_s=0.3),
        dispatch=Dispatch(),
    )
    await asyncio.wait_for(
        ScoringWorker(redis, settings, store_engine, embedder).run(asyncio.Event(), burst=True), 120
    )
    with store_engine.connect() as conn:
        keys = conn.execute(select(PairRow.key)).scalars().all()
        score_rows = conn.execute(select(func.count()).select_from(ScoreRow)).scalar_one()
        ids = conn.execute(select(PairRow.exchange_id)).scalars().all()
    assert len(keys) == n
    assert sorted(ids) == sorted(f"pair-{i}" for i in range(n))
    assert score_rows == n  # one candidate comparison per pair, none twice
    assert (await redis.xpending(pairs, "compare"))["pending"] == 0
    summary = route_summary(store_engine, route="chat")
    assert sum(r.pairs for r in summary) == n


async def test_a_worker_behind_samples_and_counts_what_it_left(
    store_engine: Engine, embedder: Embedder, redis: Redis, stream_prefix: str
) -> None:
    n = 60
    pairs = Streams(stream_prefix).pairs
    await seed_pairs(redis, stream_prefix, n)
    settings = Settings(
        redis_url=TEST_REDIS_URL,
        stream_prefix=stream_prefix,
        db_url=db_url(store_engine),
        worker=Worker(batch=10, max_lag=15, sample_when_behind=0.3),
    )
    stats = await asyncio.wait_for(
        ScoringWorker(redis, settings, store_engine, embedder).run(asyncio.Event(), burst=True), 120
    )
    assert stats.unscored > 0
    assert stats.scored + stats.unscored == n
    left = sum(c.count for c in unscored_counts(store_engine))
    assert left == stats.unscored
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(PairRow)).scalar_one() == stats.scored
    assert (await redis.xpending(pairs, "compare"))["pending"] == 0


async def test_poison_pairs_are_dead_lettered(
    store_engine: Engine, embedder: Embedder, redis: Redis, stream_prefix: str
) -> None:
    streams = Streams(stream_prefix)
    await redis.xadd(streams.pairs, encode_entry(synthetic_pair(1)))  # type: ignore[arg-type]
    await redis.xadd(streams.pairs, {"v": 1, "id": "poison", "data": b"\x00garbage"})
    await redis.xadd(streams.pairs, encode_entry(synthetic_pair(2)))  # type: ignore[arg-type]
    settings = Settings(redis_url=TEST_REDIS_URL, stream_prefix=stream_prefix, db_url=db_url(store_engine))
    stats = await asyncio.wait_for(
        ScoringWorker(redis, settings, store_engine, embedder).run(asyncio.Event(), burst=True), 120
    )
    assert stats.scored == 2
    assert stats.dead == 1
    dead = await redis.xrange(streams.compare_dead_letter)
    assert [f[b"id"] for _, f in dead] == [b"poison"]


async def test_two_workers_share_the_stream(
    store_engine: Engine, embedder: Embedder, redis: Redis, stream_prefix: str
) -> None:
    n = 48
    await seed_pairs(redis, stream_prefix, n)
    settings = Settings(
        redis_url=TEST_REDIS_URL,
        stream_prefix=stream_prefix,
        db_url=db_url(store_engine),
        worker=Worker(batch=4),
    )
    one, two = (ScoringWorker(redis, settings, store_engine, embedder) for _ in range(2))
    first, second = await asyncio.wait_for(
        asyncio.gather(one.run(asyncio.Event(), burst=True), two.run(asyncio.Event(), burst=True)), 120
    )
    assert first.scored > 0
    assert second.scored > 0
    assert first.scored + second.scored == n
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(PairRow)).scalar_one() == n


async def test_sigterm_lets_the_worker_finish_its_batch(
    store_engine: Engine, redis: Redis, stream_prefix: str
) -> None:
    n = 200
    pairs = Streams(stream_prefix).pairs
    await seed_pairs(redis, stream_prefix, n)
    env = worker_env(store_engine, stream_prefix, SHADOWGATE_WORKER__BATCH="8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowgate.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    try:
        deadline = time.monotonic() + 90
        while stored(store_engine) < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    done = stored(store_engine)
    assert 8 <= done < n
    # What it stored it acknowledged, and nothing it acknowledged is missing from the store.
    info = await redis.xinfo_groups(pairs)
    group = next(g for g in info if g["name"] in ("compare", b"compare"))
    assert group["pending"] == 0
    assert group["entries-read"] == done
