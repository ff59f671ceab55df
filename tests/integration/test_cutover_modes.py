"""Modes in real Redis: compare-and-set between replicas, and the last known modes through an outage."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from mirror.modes import CUTOVER, MIRROR, ModeEntry, ModeStore, ModeWatcher
from mirror.streams import redis_client
from tests.integration.cutover_kit import until
from tests.integration.tapkit import free_port


def entry(mode: str, by: str = "lead") -> ModeEntry:
    return ModeEntry(tenant="klinik-a", route="chat", mode=mode, since=1.0, by=by, reason="test")  # type: ignore[arg-type]


async def test_two_replicas_rolling_back_at_once_make_one_change(redis: Redis, stream_prefix: str) -> None:
    store = ModeStore(redis, stream_prefix)
    await store.put(entry(CUTOVER))
    seen = await store.snapshot()
    raw = seen.raw[("klinik-a", "chat")]
    results = await asyncio.gather(
        *(store.put(entry(MIRROR, by=f"replica-{i}"), expect=raw, compare=True) for i in range(5))
    )
    assert sorted(applied for applied, _ in results) == [False, False, False, False, True]
    after = await store.snapshot()
    assert after.mode_of("klinik-a", "chat") == MIRROR
    assert after.version == seen.version + 1


async def test_a_replica_keeps_the_last_known_modes_while_redis_is_down(
    redis: Redis, stream_prefix: str
) -> None:
    store = ModeStore(redis, stream_prefix)
    await store.put(entry(CUTOVER))
    watcher = ModeWatcher(store, refresh_s=0.05)
    assert await watcher.refresh()
    assert ("klinik-a", "chat") in watcher.snapshot.cutover

    dead = redis_client(f"redis://127.0.0.1:{free_port()}")
    watcher.store = ModeStore(dead, stream_prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        await until(lambda: watcher.errors >= 3, what="failed refreshes")
        assert ("klinik-a", "chat") in watcher.snapshot.cutover  # still in force
        watcher.store = store  # Redis is back: changes made meanwhile arrive
        await store.put(entry(MIRROR))
        await until(lambda: watcher.snapshot.mode_of("klinik-a", "chat") == MIRROR, what="the change")
    finally:
        stop.set()
        await task
        await dead.aclose()
