"""Property-based: malformed entries written straight into the captures and pairs streams (garbage
fields, a bad or missing version, data that is not MessagePack, truncated, of another shape or with
fields of the wrong type, a forged envelope) never raise anything but the codec's own errors, are
dead-lettered with a reason by dispatch and by the worker, and the good entries around them go on —
also when an entry that decodes fails every time (it must not take its batch-mates with it)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy import Engine, select

from comparators.embedder import Embedder
from comparators.worker import ScoringWorker
from mirror.dispatch import Dispatcher, candidate_session
from mirror.exchange import MalformedEntry, decode_entry, encode_entry
from mirror.streams import Streams
from shadowgate.crypto import CryptoError
from shadowgate.settings import Dispatch, Route, RouteKind, Settings, Worker
from store.db import init_db, make_engine
from store.models import PairRow
from tests.conftest import TEST_REDIS_URL
from tests.fuzz.entries import Fields, exchange, malformed, missing_blob
from tests.integration.candidate_app import build_candidate
from tests.integration.tapkit import serving

BURST_S = 60


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(precision="fp32")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


def fast_settings(prefix: str, tmp_path: Path, candidate: str = "http://127.0.0.1:9") -> Settings:
    return Settings(
        candidate_url=candidate,  # type: ignore[arg-type]
        redis_url=TEST_REDIS_URL,
        stream_prefix=prefix,
        data_dir=tmp_path,
        routes=(Route(prefix="/echo", kind=RouteKind.CHAT),),
        # Entries that decode but keep failing are retried once, then dead-lettered.
        dispatch=Dispatch(reclaim_idle_s=0.05, max_deliveries=1),
        worker=Worker(batch=4, reclaim_idle_s=0.05, max_deliveries=1),
    )


async def feed(redis: Redis, stream: str, good: list[Fields], bad: list[tuple[str, Fields]]) -> list[bytes]:
    """Good entries first and last, the malformed ones between them; the ids of the malformed ones."""
    await redis.xadd(stream, good[0])  # type: ignore[arg-type]
    ids = [await redis.xadd(stream, fields) for _, fields in bad]  # type: ignore[arg-type]
    await redis.xadd(stream, good[1])  # type: ignore[arg-type]
    return ids


async def dead_letters(redis: Redis, stream: str) -> dict[bytes, Fields]:
    return {f[b"entry"]: f for _, f in await redis.xrange(stream)}


async def through_dispatch(prefix: str, tmp_path: Path, n: int, bad: list[tuple[str, Fields]]) -> None:
    streams = Streams(prefix)
    good = [encode_entry(exchange(n + i, paired=False)) for i in (0, 1)]
    async with serving(build_candidate()) as candidate:
        settings = fast_settings(prefix, tmp_path, candidate)
        redis = Redis.from_url(TEST_REDIS_URL)
        try:
            ids = await feed(redis, streams.captures, good, bad)  # type: ignore[arg-type]
            async with candidate_session(settings) as session:
                dispatcher = Dispatcher(redis, settings, session)
                await asyncio.wait_for(dispatcher.run(asyncio.Event(), burst=True), BURST_S)
            pairs = [decode_entry(f).id for _, f in await redis.xrange(streams.pairs)]
            dead = await dead_letters(redis, streams.dead_letter)
            pending = (await redis.xpending(streams.captures, "dispatch"))["pending"]
        finally:
            await redis.aclose()
    assert sorted(pairs) == [f"good-{n}", f"good-{n + 1}"], (
        "the good captures around the bad ones were paired"
    )
    assert_dead_lettered(ids, bad, dead)
    assert dispatcher.stats.dead == len(bad)
    assert pending == 0


async def through_worker(
    prefix: str, tmp_path: Path, n: int, bad: list[tuple[str, Fields]], engine: Engine, embedder: Embedder
) -> None:
    streams = Streams(prefix)
    good = [encode_entry(exchange(n + i, paired=True)) for i in (0, 1)]
    redis = Redis.from_url(TEST_REDIS_URL)
    try:
        ids = await feed(redis, streams.pairs, good, bad)  # type: ignore[arg-type]
        worker = ScoringWorker(redis, fast_settings(prefix, tmp_path), engine, embedder)
        await asyncio.wait_for(worker.run(asyncio.Event(), burst=True), BURST_S)
        dead = await dead_letters(redis, streams.compare_dead_letter)
        pending = (await redis.xpending(streams.pairs, "compare"))["pending"]
    finally:
        await redis.aclose()
    with engine.connect() as conn:
        stored = set(conn.execute(select(PairRow.exchange_id)).scalars())
    assert {f"good-{n}", f"good-{n + 1}"} <= stored, "the good pairs around the bad ones were stored"
    assert_dead_lettered(ids, bad, dead)
    assert worker.stats.dead == len(bad)
    assert pending == 0


def assert_dead_lettered(ids: list[bytes], bad: list[tuple[str, Fields]], dead: dict[bytes, Fields]) -> None:
    assert set(dead) == set(ids), "every malformed entry, and only those, went to the dead-letter stream"
    for entry_id, (kind, _) in zip(ids, bad, strict=True):
        assert dead[entry_id][b"reason"], f"{kind}: dead-lettered without a reason"


def test_malformed_entries_are_dead_lettered_and_the_consumers_go_on(
    tmp_path: Path, stream_prefix: str, engine: Engine, embedder: Embedder, redis: Redis
) -> None:
    counter = itertools.count(0, 2)

    @settings(max_examples=max(10, settings.default.max_examples // 3))  # each case runs both consumers
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        n = next(counter)
        bad = data.draw(st.lists(malformed(), min_size=1, max_size=4))
        for kind, fields in bad:
            # The codec's own errors only: never a KeyError, a TypeError or a UnicodeDecodeError.
            with pytest.raises((MalformedEntry, CryptoError)):
                decode_entry(fields)
            assert kind
        # Now and then one that decodes but fails every time it is tried: retried, then dead-lettered.
        poison = data.draw(st.booleans())
        captures = [*bad, ("missing blob", missing_blob(n, paired=False))] if poison else bad
        pairs = [*bad, ("missing blob", missing_blob(n, paired=True))] if poison else bad
        asyncio.run(through_dispatch(f"{stream_prefix}:d{n}", tmp_path, n, captures))
        asyncio.run(through_worker(f"{stream_prefix}:w{n}", tmp_path, n, pairs, engine, embedder))

    one()
