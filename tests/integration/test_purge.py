"""Retention: `shadowgate purge` removes clinical payloads older than N days from the store (SQLite and
PostgreSQL), the blob store and the Redis streams, and keeps the metrics."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import Engine, func, select

from comparators.scoring import Finding, Result
from mirror.blobs import BlobStore
from mirror.streams import Streams
from shadowgate.crypto import cipher_from
from shadowgate.retention import cutoff_ms, purge
from shadowgate.settings import Encryption, Settings
from store.models import FINDINGS, PAIRS, PAYLOADS, SCORES
from store.payloads import load_payload
from store.records import Payload, ScoredPair, SideMeta
from store.writes import save_scored
from tests.conftest import TEST_REDIS_URL

DAY = 86_400
KEY = base64.b64encode(bytes(range(32))).decode()


def scored(key: str, captured_at: float) -> ScoredPair:
    side = SideMeta(200, None, 120.0, 30.0, "m")
    finding = Finding("number_mismatch", "mg", "Paracetamol 500 mg", "Paracetamol 50 mg")
    return ScoredPair(
        key=key,
        exchange_id=f"x-{key}",
        tenant="klinik-a",
        route="chat",
        replay=None,
        captured_at=captured_at,
        paired_at=captured_at + 1,
        primary=side,
        candidate=side,
        secondary=None,
        scores={"candidate": Result({"latency_delta_ms": 0.0, "fact_mismatches": 1.0}, [finding])},
        payload=Payload(request=b'{"note": "tiada demam"}', primary="Paracetamol 500 mg", candidate="50 mg"),
    )


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


async def seed(settings: Settings, engine: Engine, redis: Redis) -> tuple[list[str], list[str]]:
    """Old (40 days) and new data everywhere payloads live; returns the old and new blob refs."""
    cipher = cipher_from(settings.encryption)
    now = time.time()
    old = now - 40 * DAY
    save_scored(engine, [scored("old-1", old), scored("old-2", old), scored("new-1", now)], cipher)
    blobs = BlobStore(settings.blob_path, cipher)
    old_refs = [blobs.put(b"old audio %d" % i) for i in range(3)]
    for ref in old_refs:
        path = next(settings.blob_path.rglob(ref.partition(":")[2]))
        os.utime(path, (old, old))
    new_refs = [blobs.put(b"new audio")]
    streams = Streams(settings.stream_prefix)
    for stream in (streams.captures, streams.pairs, streams.dead_letter, streams.compare_dead_letter):
        for i in range(4):
            await redis.xadd(stream, {"data": b"sealed"}, id=f"{int(old * 1000)}-{i}")
        await redis.xadd(stream, {"data": b"sealed"})
    return old_refs, new_refs


def settings_for(engine: Engine, prefix: str, data_dir: Path) -> Settings:
    return Settings(
        redis_url=TEST_REDIS_URL,
        stream_prefix=prefix,
        data_dir=data_dir,
        db_url=engine.url.render_as_string(hide_password=False),
        encryption=Encryption(keys={"k1": SecretStr(KEY)}),
    )


def check_purged(settings: Settings, engine: Engine, old_refs: list[str], new_refs: list[str]) -> None:
    # Metrics stay: every pair and its scores, old or new.
    assert count(engine, PAIRS) == 3
    assert count(engine, SCORES) == 3
    # Clinical rows go with the old pairs.
    with engine.connect() as conn:
        assert conn.execute(select(PAYLOADS.c.pair_key)).scalars().all() == ["new-1"]
        assert conn.execute(select(FINDINGS.c.pair_key)).scalars().all() == ["new-1"]
    cipher = cipher_from(settings.encryption)
    assert load_payload(engine, "old-1", cipher) is None
    kept = load_payload(engine, "new-1", cipher)
    assert kept is not None
    assert kept.primary == "Paracetamol 500 mg"
    blobs = BlobStore(settings.blob_path, cipher)
    for ref in old_refs:
        with pytest.raises(FileNotFoundError):
            blobs.get(ref)
    assert [blobs.get(ref) for ref in new_refs] == [b"new audio"]


async def test_purge_deletes_old_payloads_blobs_and_entries_and_keeps_metrics(
    store_engine: Engine, redis: Redis, stream_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(store_engine, stream_prefix, tmp_path)
    old_refs, new_refs = await seed(settings, store_engine, redis)
    result = await purge(settings, cutoff_ms("30d", settings.retention_days), redis)

    assert result.store_rows == 4  # two payload rows and two findings rows
    assert result.blobs == 3
    streams = Streams(stream_prefix)
    names = (streams.captures, streams.pairs, streams.dead_letter, streams.compare_dead_letter)
    assert result.entries == dict.fromkeys(names, 4)
    for name in names:
        assert await redis.xlen(name) == 1
    check_purged(settings, store_engine, old_refs, new_refs)
    assert "4 payload and findings rows, 3 blob files" in result.line()

    again = await purge(settings, cutoff_ms("30d", settings.retention_days), redis)
    assert (again.store_rows, again.blobs, sum(again.entries.values())) == (0, 0, 0)


async def test_the_purge_command_uses_the_retention_setting(
    store_engine: Engine, redis: Redis, stream_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(store_engine, stream_prefix, tmp_path)
    old_refs, new_refs = await seed(settings, store_engine, redis)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_REDIS_URL": TEST_REDIS_URL,
        "SHADOWGATE_STREAM_PREFIX": stream_prefix,
        "SHADOWGATE_DATA_DIR": str(tmp_path),
        "SHADOWGATE_DB_URL": settings.database_url,
        "SHADOWGATE_ENCRYPTION__KEYS": f'{{"k1": "{KEY}"}}',
        "SHADOWGATE_RETENTION_DAYS": "45",
    }
    cmd = [sys.executable, "-m", "shadowgate.cli", "purge"]
    kept = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert "0 payload and findings rows, 0 blob files" in kept.stdout  # 40 days old: within 45
    assert count(store_engine, PAYLOADS) == 3

    env["SHADOWGATE_RETENTION_DAYS"] = "30"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4 payload and findings rows, 3 blob files" in done.stdout
    check_purged(settings, store_engine, old_refs, new_refs)

    future = subprocess.run(
        [*cmd, "--older-than", "2999-01-01"], env=env, capture_output=True, text=True, timeout=60
    )
    assert future.returncode == 2
    assert "must be a time in the past" in future.stderr


def test_cutoff_is_the_setting_unless_given() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    assert cutoff_ms(None, 30, now=now) == int((now - 30 * DAY) * 1000)
    assert cutoff_ms("7d", 30, now=now) == int((now - 7 * DAY) * 1000)
    assert cutoff_ms("2026-05-01T00:00", 30, now=now) == int(
        datetime(2026, 5, 1, tzinfo=UTC).timestamp() * 1000
    )
