"""Open-loop load at a fixed rate: requests leave on a schedule, whatever the answers do.

Latency is measured from each request's *scheduled* send time, so a server that stalls is charged for
the requests queued behind the stall (no coordinated omission). Prints one JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from collections import Counter
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

    async def _one(self, scheduled: float, record: bool) -> None:
        sent = time.perf_counter()
        try:
            async with self._session.post(self._url, data=self._body, headers=HEADERS) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if record:
                self.errors[type(exc).__name__] += 1
            return
        done = time.perf_counter()
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
        start = time.perf_counter() + 0.01
        i = 0
        while i < count:
            now = time.perf_counter()
            due = start + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything due by now goes out, each stamped with its own scheduled time.
            while i < count and start + i * interval <= now:
                task = asyncio.create_task(self._one(start + i * interval, record))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                i += 1
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30.0)
        return start, count


async def _prime(session: aiohttp.ClientSession, url: str, body: bytes, connections: int) -> None:
    """Open the keepalive pool up front, so connection setup is not part of what is measured."""

    async def one() -> None:
        async with session.post(url, data=body, headers=HEADERS) as resp:
            await resp.read()

    await asyncio.gather(*(one() for _ in range(connections)), return_exceptions=True)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    body = Path(args.body).read_bytes()
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

    result = uvloop.run(main_async(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
