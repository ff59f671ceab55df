"""Shared fixtures: the real Redis at 127.0.0.1:6379 (SHADOWGATE_TEST_REDIS_URL overrides it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

TEST_REDIS_URL = os.environ.get("SHADOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def stream_prefix() -> str:
    """A prefix of our own per test, so tests sharing one Redis never see each other's entries."""
    return f"sgtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis(stream_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # a clear sentence instead of a wall of tracebacks
        pytest.fail(f"these tests need Redis at {TEST_REDIS_URL}: {exc}")
    yield client
    keys = [k async for k in client.scan_iter(match=f"{stream_prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
