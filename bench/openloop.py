"""Open-loop load at a fixed rate: requests leave on a schedule, whatever the answers do.

Latency is measured from each request's *scheduled* send time, so a server that stalls is charged for
the requests queued behind the stall (no coordinated omission). Prints one JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp

HEADERS = {
    "Content-Type": "application/json",
    "X-Tenant-ID": "bench",
    "Authorization": "Bearer sk-bench",
}
_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (no interpolation)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(values_s: list[float]) -> dict[str, float]:
    ordered = sorted(values_s)
    out = {f"p{pct:g}": percentile(ordered, pct) * 1000 for pct in _PERCENTILES}
    out["max"] = ordered[-1] * 1000 if ordered else math.nan
    out["mean"] = sum(ordered) / len(ordered) * 1000 if ordered else math.nan
    return out


class OpenLoop:
    def __init__(self, session: aiohttp.ClientSession, url: str, body: bytes) -> None:
        self._session = session
        self._url = url
        self._body = body
        self._tasks: set[asyncio.Task[None]] = set()
        self.latency: list[float] = []  # from the scheduled send time (what a user would see)
        self.service: list[float] = []  # from the actual send time (what the server took)
        self.lag: list[float] = []  # how late the generator itself sent
        self.errors: Counter[str] = Counter()
        self.last_done = 0.0
        self.clock = ""

    async def _one(self, scheduled: float, record: bool) -> None:
        sent = time.monotonic()
        try:
            async with self._session.post(self._url, data=self._body, headers=HEADERS) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if record:
                self.errors[type(exc).__name__] += 1
            return
        done = time.monotonic()
        if not record:
            return
        if status != 200:
            self.errors[f"http_{status}"] += 1
            return
        self.latency.append(done - scheduled)
        self.service.append(done - sent)
        self.lag.append(sent - scheduled)
        self.last_done = max(self.last_done, done)

    async def run(self, rate: float, seconds: float, *, record: bool) -> tuple[float, int]:
        """Send `rate * seconds` requests on a fixed schedule; returns the start time and the count."""
        count = round(rate * seconds)
        interval = 1.0 / rate
        start = time.monotonic() + 0.01
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        sent = 0

        def fire() -> None:
            # Everything due by now goes out, each stamped with its own scheduled time.
            nonlocal sent
            now = time.monotonic()
            while sent < count and start + sent * interval <= now:
                task = asyncio.create_task(self._one(start + sent * interval, record))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                sent += 1
            if sent >= count and not finished.done():
                finished.set_result(None)

        with ticker(loop, start, interval, fire) as self.clock:
            await finished
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30.0)
        return start, count


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


_TFD_NONBLOCK, _TFD_CLOEXEC, _TFD_TIMER_ABSTIME = os.O_NONBLOCK, 0o2000000, 1


def _timespec(seconds: float) -> _Timespec:
    whole = int(seconds)
    return _Timespec(whole, round((seconds - whole) * 1e9))


@contextlib.contextmanager
def ticker(
    loop: asyncio.AbstractEventLoop, start: float, interval: float, fire: Callable[[], None]
) -> Iterator[str]:
    """Call `fire` every `interval` seconds from `start` (time.monotonic), on the event loop.

    A Linux timerfd wakes the loop within microseconds of each tick; the loop's own timers have a
    resolution of a millisecond, which at 1,000 req/s would be as large as what is being measured.
    Elsewhere it falls back to the loop's timers (and says so in the summary).
    """
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
    fd = libc.timerfd_create(time.CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC) if libc else -1
    if fd < 0:
        yield from _loop_ticker(loop, start, interval, fire)
        return

    def on_tick() -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 8)
        fire()

    spec = _Itimerspec(_timespec(interval), _timespec(start))
    try:
        if libc.timerfd_settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        loop.add_reader(fd, on_tick)
        try:
            yield "timerfd"
        finally:
            loop.remove_reader(fd)
    finally:
        os.close(fd)


def _loop_ticker(
    loop: asyncio.AbstractEventLoop, start: float, interval: float, fire: Callable[[], None]
) -> Iterator[str]:
    handle: asyncio.TimerHandle | None = None
    offset = loop.time() - time.monotonic()
    tick = 0

    def on_tick() -> None:
        nonlocal handle, tick
        fire()
        tick += 1
        handle = loop.call_at(start + tick * interval + offset, on_tick)

    handle = loop.call_at(start + offset, on_tick)
    try:
        yield "event loop timers"
    finally:
        handle.cancel()


async def _prime(session: aiohttp.ClientSession, url: str, body: bytes, connections: int) -> None:
    """Open the keepalive pool up front, so connection setup is not part of what is measured."""

    async def one() -> None:
        async with session.post(url, data=body, headers=HEADERS) as resp:
            await resp.read()

    await asyncio.gather(*(one() for _ in range(connections)), return_exceptions=True)


async def main_async(args: argparse.Namespace, body: bytes) -> dict[str, object]:
    connector = aiohttp.TCPConnector(limit=args.connections, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await _prime(session, args.url, body, args.connections)
        loop = OpenLoop(session, args.url, body)
        if args.warmup > 0:
            await loop.run(args.rate, args.warmup, record=False)
        start, count = await loop.run(args.rate, args.seconds, record=True)
    ok = len(loop.latency)
    elapsed = (loop.last_done - start) if ok else math.nan
    return {
        "url": args.url,
        "target_rate": args.rate,
        "seconds": args.seconds,
        "connections": args.connections,
        "scheduled": count,
        "ok": ok,
        "errors": dict(loop.errors),
        # Failures of every kind, and any request still unanswered when the run gave up waiting.
        "error_count": count - ok,
        "achieved_rate": ok / elapsed if ok else 0.0,
        "latency_ms": summarize(loop.latency),
        "service_ms": summarize(loop.service),
        "send_lag_ms": summarize(loop.lag),
        "clock": loop.clock,
        "cpu": list(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds at the same rate, not recorded")
    parser.add_argument("--connections", type=int, default=64, help="keepalive pool size")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    parser.add_argument("--body", default=str(Path(__file__).with_name("request.json")))
    parser.add_argument("--cpu", type=int, action="append", help="pin to this CPU (repeatable)")
    args = parser.parse_args()
    if args.cpu:
        os.sched_setaffinity(0, set(args.cpu))

    import uvloop

    result = uvloop.run(main_async(args, Path(args.body).read_bytes()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
