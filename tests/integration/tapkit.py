"""Helpers to run real servers on loopback ports for the tap tests."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from redis.asyncio import Redis

from mirror.exchange import Exchange, decode_entry
from mirror.serve import runner_for
from mirror.streams import Streams
from mirror.tap import STATE, TapState, build_app
from shadowgate.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(
    app: web.Application, port: int = 0, *, tap_runner: bool = False, shutdown_timeout: float = 5.0
) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 and yield its base URL."""
    # The fake primary must see request bodies as sent (gzip included), so no inflating there either.
    runner = runner_for(app, shutdown_timeout) if tap_runner else web.AppRunner(app, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = port or next(a[1] for a in runner.addresses if isinstance(a, tuple))
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_tap(settings: Settings) -> AsyncIterator[tuple[str, TapState]]:
    app = build_app(settings)
    async with serving(app, tap_runner=True) as url:
        yield url, app[STATE]


async def read_captures(redis: Redis, prefix: str) -> list[Exchange]:
    entries = await redis.xrange(Streams(prefix).captures)
    return [decode_entry(fields) for _, fields in entries]
