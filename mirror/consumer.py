"""One Redis consumer group member: read, reclaim from the dead, dead-letter, acknowledge, beat."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from mirror.streams import redis_client
from shadowgate.runtime import new_event_loop

log = logging.getLogger("shadowgate.consumer")

Entry = tuple[bytes, dict[bytes, bytes]]

# Acknowledge and dead-letter at once, and only what is still pending (like dispatch's pair-and-ack).
_DEAD_LETTER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
return 1
"""
T = TypeVar("T")


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class GroupConsumer:
    """The Redis side of a worker on `stream` in `group`; what to do with entries is the caller's."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str,
        group: str,
        dead_letter: str,
        heartbeat_key: str,
        consumer: str | None = None,
        max_deliveries: int,
        reclaim_idle_s: float,
        maxlen: int,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer or consumer_name()
        self._dead_letter = dead_letter
        self._heartbeat_key = f"{heartbeat_key}:{self.consumer}"
        self._max_deliveries = max_deliveries
        self._idle_ms = int(reclaim_idle_s * 1000)
        self._maxlen = maxlen
        self._dead_letter_script = redis.register_script(_DEAD_LETTER)
        self.dead = 0

    async def ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        reply: list[tuple[bytes, list[Entry]]] = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )  # type: ignore[assignment]
        return [e for _, batch in reply for e in batch] if reply else []

    async def pending(self) -> int:
        info = await self.redis.xpending(self.stream, self.group)
        return int(info["pending"])

    async def reclaim(self, busy: Callable[[bytes], bool] = lambda _id: False) -> list[Entry]:
        """Take over entries left pending longer than the idle time (a dead consumer's); entries
        delivered more than `max_deliveries` times go to the dead-letter stream instead."""
        taken: list[Entry] = []
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.stream, self.group, self.consumer, self._idle_ms, start_id=start, count=100
            )
            start, claimed = reply[0], [e for e in reply[1] if e[1]]
            if claimed:
                ids = [eid for eid, _ in claimed]
                pending = await self.redis.xpending_range(
                    self.stream, self.group, min=min(ids), max=max(ids), count=len(ids) * 2 + 10
                )
                deliveries = {p["message_id"]: int(p["times_delivered"]) for p in pending}
                for entry_id, fields in claimed:
                    if busy(entry_id):
                        continue  # still ours and still running
                    if deliveries.get(entry_id, 0) > self._max_deliveries:
                        await self.dead_letter(
                            entry_id, fields, f"not done after {self._max_deliveries} deliveries"
                        )
                    else:
                        taken.append((entry_id, fields))
            if start in (b"0-0", "0-0"):
                return taken

    async def dead_letter(self, entry_id: bytes, fields: dict[bytes, bytes], reason: str) -> None:
        """Acknowledge the entry and copy it, with why, to the dead-letter stream — in one step, and only
        if it was still pending: one that its worker finished meanwhile is not dead."""
        meta: dict[str, bytes | str] = {
            "reason": reason,
            "stream": self.stream,
            "entry": entry_id,
            "consumer": self.consumer,
        }
        # The entry's own fields, less any that would pass for ours (a malformed entry can hold anything).
        flat: list[bytes | str | int] = [self.group, entry_id, self._maxlen]
        for key, value in meta.items():
            flat += (key, value)
        for name, data in fields.items():
            if name.decode(errors="replace") not in meta:
                flat += (name, data)
        moved = await self._dead_letter_script(keys=[self.stream, self._dead_letter], args=flat)
        if not moved:
            return
        self.dead += 1
        log.warning("entry %s of %s dead-lettered: %s", entry_id.decode(), self.stream, reason)

    async def touch(self, *entry_ids: bytes) -> None:
        """Keep entries this consumer still works on from looking abandoned: their idle time is reset
        (XCLAIM JUSTID, which counts no delivery), so no other consumer reclaims them meanwhile."""
        if entry_ids:
            await self.redis.xclaim(self.stream, self.group, self.consumer, 0, list(entry_ids), justid=True)

    async def ack(self, *entry_ids: bytes) -> None:
        if entry_ids:
            await self.redis.xack(self.stream, self.group, *entry_ids)

    async def heartbeat(
        self, stop: asyncio.Event, every_s: float, state: Callable[[], dict[str, Any]]
    ) -> None:
        """Beat until `stop`: a key with the caller's counters that expires after three missed beats."""
        ttl = max(int(every_s * 3), 3)
        while not stop.is_set():
            at = time.time()
            try:
                payload = json.dumps({"at": at, **state()})
            except (TypeError, ValueError):  # a counter JSON cannot hold must not stop the beat
                log.warning("heartbeat counters of %s are not JSON; beating without them", self.consumer)
                payload = json.dumps({"at": at})
            with contextlib.suppress(RedisError, OSError):
                await self.redis.set(self._heartbeat_key, payload, ex=ttl)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self._heartbeat_key)


async def any_heartbeat(redis: Redis, pattern: str) -> bool:
    """True when a consumer whose heartbeat key matches `pattern` is alive (`--check`)."""
    async for _ in redis.scan_iter(match=pattern, count=100):
        return True
    return False


async def sleep_or(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def stats_dict(stats: Any) -> dict[str, Any]:
    """A consumer's stats dataclass as JSON-ready data for its heartbeat.

    Not dataclasses.asdict: that rebuilds a Counter from its (key, count) pairs, counting the pairs."""
    return {
        f.name: dict(value) if isinstance(value := getattr(stats, f.name), collections.Counter) else value
        for f in dataclasses.fields(stats)
    }


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run `main(stop)` on the project's event loop; SIGTERM and SIGINT set `stop`, for a graceful end."""

    async def with_signals() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(with_signals())


def check_main(redis_url: str, pattern: str, what: str = "consumer") -> int:
    """A `--check` command: 0 when a heartbeat matching `pattern` is alive; 1 otherwise (Redis down too),
    saying why on standard error in one sentence (no address: it may hold a password)."""

    async def why_not() -> str | None:
        redis = redis_client(redis_url)
        try:
            if await any_heartbeat(redis, pattern):
                return None
            return f"no {what} is alive: no fresh {what} heartbeat in Redis (none running, or it stopped)"
        except (RedisError, OSError) as exc:
            return f"cannot tell whether a {what} is alive: Redis is not answering ({type(exc).__name__})"
        finally:
            await redis.aclose()

    reason = asyncio.run(why_not())
    if reason is not None:
        print(f"shadowgate: {reason}.", file=sys.stderr)
        return 1
    return 0
