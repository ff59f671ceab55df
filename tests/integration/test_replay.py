"""Replay from the captures stream: filters, window, pacing, loops, tags; the CLI's dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from mirror.exchange import Body, decode_entry, encode_entry
from mirror.replay import Selection, count, replay
from mirror.streams import Streams
from shadowgate.settings import Route, RouteKind, Settings
from tests.conftest import TEST_REDIS_URL
from tests.integration.candidate_app import LOG, CandidateLog, build_candidate
from tests.integration.tapkit import read_captures, serving
from tests.integration.test_dispatch import ROUTES, through_tap
from tests.integration.upstream import build_upstream


@pytest.fixture
async def env(redis: Redis, stream_prefix: str) -> AsyncIterator[tuple[Settings, CandidateLog]]:
    candidate_app = build_candidate()
    async with serving(build_upstream()) as primary, serving(candidate_app) as candidate:
        settings = Settings(
            primary_url=primary,  # type: ignore[arg-type]
            candidate_url=candidate,  # type: ignore[arg-type]
            redis_url=TEST_REDIS_URL,
            stream_prefix=stream_prefix,
            routes=(*ROUTES, Route(prefix="/echo-embed", kind=RouteKind.EMBED)),
        )
        yield settings, candidate_app[LOG]


async def seed_history(redis: Redis, settings: Settings, n: int, spacing_s: float, age_s: float) -> None:
    """Captures as if recorded `age_s` ago, `spacing_s` apart (entry ids carry their time)."""
    await through_tap(settings, ["/echo/ok?template=1"])
    (template,) = await read_captures(redis, settings.stream_prefix)
    stream = Streams(settings.stream_prefix).captures
    await redis.delete(stream)
    start = time.time() - age_s
    for i in range(n):
        at = start + i * spacing_s
        x = msgspec.structs.replace(
            template,
            id=f"hist-{i}",
            tenant="klinik-a" if i % 2 == 0 else "klinik-b",
            request=msgspec.structs.replace(template.request, query=f"i={i}"),
            captured_at=at,
        )
        await redis.xadd(stream, encode_entry(x), id=f"{int(at * 1000)}-{i}")  # type: ignore[arg-type]


async def test_replay_filters_paces_and_tags(env: tuple[Settings, CandidateLog], redis: Redis) -> None:
    settings, log = env
    await seed_history(redis, settings, n=10, spacing_s=0.1, age_s=3600)

    counted = await count(redis, settings, Selection(tenants=frozenset({"klinik-a"})))
    assert counted.matched == 5

    started = time.monotonic()
    summary = await replay(
        redis, settings, Selection(tenants=frozenset({"klinik-a"})), speed=2.0, progress=False
    )
    elapsed = time.monotonic() - started
    assert summary.sent == summary.ok == 5
    # The five klinik-a captures span 0.8 s; at twice the pace that is 0.4 s, never a burst.
    assert elapsed >= 0.38
    pairs = [decode_entry(f) for _, f in await redis.xrange(Streams(settings.stream_prefix).pairs)]
    assert len(pairs) == 5
    assert {p.replay for p in pairs} == {summary.run_id}
    raw = await redis.xrange(Streams(settings.stream_prefix).pairs)
    assert all(f[b"replay"] == summary.run_id.encode() for _, f in raw)
    assert sorted(s.path_qs for s in log.seen) == sorted(f"/echo/ok?i={i}" for i in range(0, 10, 2))


async def test_replay_window_rate_and_loops(env: tuple[Settings, CandidateLog], redis: Redis) -> None:
    settings, log = env
    await seed_history(redis, settings, n=20, spacing_s=60, age_s=3 * 3600)
    # Entries are a minute apart from three hours ago: the window [3h ago + 10 min, 3h ago + 15 min)
    start_ms = int((time.time() - 3 * 3600 + 9.5 * 60) * 1000)
    end_ms = start_ms + 5 * 60 * 1000
    selection = Selection(since_ms=start_ms, until_ms=end_ms)
    assert (await count(redis, settings, selection)).matched == 5
    started = time.monotonic()
    summary = await replay(redis, settings, selection, rate=20, loops=2, progress=False)
    assert summary.sent == 10
    assert summary.ok == 10
    assert time.monotonic() - started >= 9 / 20 * 0.95  # ten sends at 20/s: nine gaps of 50 ms
    assert len(log.seen) == 10


async def test_cli_dry_run(env: tuple[Settings, CandidateLog], redis: Redis) -> None:
    settings, log = env
    await seed_history(redis, settings, n=6, spacing_s=1, age_s=600)
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_REDIS_URL": TEST_REDIS_URL,
        "SHADOWGATE_STREAM_PREFIX": settings.stream_prefix,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shadowgate.cli",
            "replay",
            "--dry-run",
            "--json",
            "--since",
            "1h",
            "--tenant",
            "klinik-b",
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["matched"] == 3
    assert summary["by_tenant_route"] == {"klinik-b/chat": 3}
    assert log.seen == []
    bad = subprocess.run(
        [sys.executable, "-m", "shadowgate.cli", "replay", "--since", "last tuesday"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "ISO 8601" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_a_capture_that_cannot_be_replayed_is_counted_and_the_run_goes_on(
    env: tuple[Settings, CandidateLog], redis: Redis
) -> None:
    settings, log = env
    await seed_history(redis, settings, n=4, spacing_s=0.01, age_s=60)
    (first, *_) = await read_captures(redis, settings.stream_prefix)
    lost = msgspec.structs.replace(
        first,
        id="lost-blob",
        request=msgspec.structs.replace(first.request, body=Body(size=10**6, ref="sha256:" + "1" * 64)),
    )
    await redis.xadd(Streams(settings.stream_prefix).captures, encode_entry(lost))  # type: ignore[arg-type]
    summary = await replay(redis, settings, Selection(), rate=100, progress=False)
    assert summary.sent == 5
    assert summary.ok == 4
    assert summary.errors == {"replay_failed": 1}
    assert len(log.seen) == 4
