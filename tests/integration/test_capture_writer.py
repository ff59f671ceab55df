"""The capture writer against real Redis: batches land in order, streams stay bounded, drops are counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from mirror.blobs import BlobStore
from mirror.capture import CaptureWriter
from mirror.exchange import Body, Exchange, RequestSide, ResponseSide
from mirror.metrics import TapMetrics
from mirror.streams import Streams
from shadowgate.settings import Limits
from tests.integration.tapkit import read_captures


def exchange(i: int, body: bytes = b"{}") -> Exchange:
    return Exchange(
        id=f"req-{i}",
        tenant="klinik-a",
        route="chat",
        route_prefix="/v1/chat/completions",
        captured_at=1_790_000_000.0 + i,
        request=RequestSide(
            method="POST", path="/v1/chat/completions", query="", headers=[], body=Body(len(body), body)
        ),
        primary=ResponseSide(
            role="primary",
            status=200,
            headers=[],
            body=Body(2, b"ok"),
            started_at=1_790_000_000.0,
            headers_ms=1.0,
            ttfb_ms=1.0,
            total_ms=2.0,
        ),
    )


async def run_writer(writer: CaptureWriter) -> asyncio.Task[None]:
    return asyncio.create_task(writer.run())


async def test_batches_land_in_order_and_large_bodies_go_to_blobs(
    redis: Redis, stream_prefix: str, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path)
    writer = CaptureWriter(
        redis, Streams(stream_prefix), Limits(capture_batch=7, inline_body_bytes=100), blobs, TapMetrics()
    )
    task = await run_writer(writer)
    big = b"x" * 1000
    for i in range(50):
        writer.submit(exchange(i, big if i == 3 else b"{}"))
    await writer.close(5.0)
    task.cancel()
    got = await read_captures(redis, stream_prefix)
    assert [x.id for x in got] == [f"req-{i}" for i in range(50)]
    assert writer.captured == 50
    assert not writer.dropped
    ref = got[3].request.body.ref
    assert ref is not None
    assert blobs.get(ref) == big
    assert got[4].request.body.data == b"{}"


async def test_queue_full_drops_are_counted_without_waiting(
    redis: Redis, stream_prefix: str, tmp_path: Path
) -> None:
    writer = CaptureWriter(
        redis, Streams(stream_prefix), Limits(capture_queue=10), BlobStore(tmp_path), TapMetrics()
    )
    # No writer task running: the queue only fills.
    for i in range(25):
        writer.submit(exchange(i))
    assert writer.depth == 10
    assert writer.dropped["queue_full"] == 15
    await writer.close(0.05)
    assert writer.dropped["shutdown"] == 10
    writer.submit(exchange(99))
    assert writer.dropped["shutdown"] == 11


async def test_stream_length_stays_bounded(redis: Redis, stream_prefix: str, tmp_path: Path) -> None:
    writer = CaptureWriter(
        redis,
        Streams(stream_prefix),
        Limits(stream_maxlen=100, capture_batch=50),
        BlobStore(tmp_path),
        TapMetrics(),
    )
    task = await run_writer(writer)
    for i in range(2000):
        writer.submit(exchange(i))
        if i % 500 == 0:
            await asyncio.sleep(0)
    await writer.close(5.0)
    task.cancel()
    length = await redis.xlen(Streams(stream_prefix).captures)
    # MAXLEN ~ trims whole macro-nodes, so a little above the cap is expected, never the full 2000.
    assert 100 <= length < 400
