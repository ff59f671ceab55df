"""`shadowgate tap` as a process: several workers on one port, summed metrics, clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import TEST_REDIS_URL
from tests.integration.tapkit import free_port, serving
from tests.integration.upstream import build_upstream


@pytest.fixture
async def primary_url() -> AsyncIterator[str]:
    async with serving(build_upstream()) as url:
        yield url


async def wait_ready(url: str, proc: subprocess.Popen[str], workers: int, timeout: float = 30.0) -> None:
    """Until every worker has answered a health check (each on a fresh connection)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            async with aiohttp.ClientSession() as http, http.get(url + "/_shadowgate/healthz") as r:
                if r.status == 200:
                    seen.add((await r.json())["pid"])
                    if len(seen) == workers:
                        return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(seen)} of {workers} tap workers started")


async def test_two_workers_share_the_port_and_sum_their_metrics(
    primary_url: str, stream_prefix: str, redis: object
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_PRIMARY_URL": primary_url,
        "SHADOWGATE_REDIS_URL": TEST_REDIS_URL,
        "SHADOWGATE_STREAM_PREFIX": stream_prefix,
        "SHADOWGATE_ROUTES": '[{"prefix": "/echo", "kind": "chat"}]',
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowgate.cli", "tap", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base, proc, workers=2)
        n = 60
        # Fresh connections each time, so the kernel spreads them over both workers.
        for i in range(n):
            async with (
                aiohttp.ClientSession() as http,
                http.post(base + "/echo/w", data=f"{i}".encode()) as r,
            ):
                assert r.status == 200
        async with aiohttp.ClientSession() as http, http.get(base + "/_shadowgate/metrics") as r:
            text = await r.text()
        served = sum(
            float(v) for v in re.findall(r"^shadowgate_tap_requests_total\{[^}]*\} (\S+)$", text, re.M)
        )
        assert served == n
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    pids = set(re.findall(r"tap pid (\d+) listening", err))
    assert len(pids) == 2
    # Each worker said how it ended, and between them they captured every request.
    captured = [int(c) for c in re.findall(r"(\d+) captured, dropped: none", err)]
    assert len(captured) == 2
    assert sum(captured) == n
    assert all(c > 0 for c in captured), "SO_REUSEPORT should have given both workers some requests"
