"""Automatic rollback: every tap replica counts the candidate's outcomes in cutover into one window in
Redis, and sends a tenant x route back to mirror when that window breaks the policy.

Where things happen:
- on the request path, `record` adds to a local tally (no I/O);
- every `cutover.modes_refresh_s` the tally is added to Redis: a hash per tenant x route x cutover
  epoch, `<prefix>:outcomes:<tenant>|<route>:<epoch>`, fields `<unix second>:n|e|s`, so the window
  is the sum over every replica;
- every `cutover.rollback_check_s` each replica sums the last `cutover.rollback_window_s` seconds of
  each tenant x route in cutover and applies the rule (`mirror/outcomes.py`). A breach is a
  compare-and-set of the mode back to mirror: only the replica whose write wins logs the line and
  appends the audit entry (in a worker thread, off the event loop), so a breach seen by three
  replicas is one rollback and one entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from gate.policy import Policy
from mirror.consumer import sleep_or
from mirror.metrics import TapMetrics
from mirror.modes import AUTO_ROLLBACK_ACTOR, MIRROR, ModeEntry, ModeWatcher
from mirror.outcomes import Breach, Counts, Limits, Tally, breach, fields_of, window
from shadowgate.settings import Settings

log = logging.getLogger("shadowgate.rollback")

_AUDIT_TRIES = 3


class AutoRollback:
    def __init__(
        self, redis: Redis, settings: Settings, watcher: ModeWatcher, policy: Policy, metrics: TapMetrics
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._c = settings.cutover
        self._watcher = watcher
        self._policy = policy
        self._metrics = metrics
        self._prefix = settings.stream_prefix
        self._tally = Tally()
        self._limits: dict[tuple[str, str], Limits] = {}
        self._audits: set[asyncio.Task[None]] = set()
        self._engine: Engine | None = None
        self._failing = False
        self.rollbacks = 0
        self.unaudited = 0
        self.dropped = 0  # outcomes that could not be written to Redis
        self.replica = f"{socket.gethostname()}:{os.getpid()}"

    def limits(self, tenant: str, route: str) -> Limits:
        limits = self._limits.get((tenant, route))
        if limits is None:
            p = self._policy.for_(tenant, route)
            limits = Limits(p.error_rate_max, p.candidate_p95_ms_max, self._c.rollback_min_requests)
            self._limits[(tenant, route)] = limits
        return limits

    def record(self, entry: ModeEntry, *, ok: bool, ms: float) -> None:
        """One candidate outcome in cutover (the request path: no I/O)."""
        slow = ms > self.limits(entry.tenant, entry.route).p95_ms_max
        self._tally.record((entry.tenant, entry.route, entry.epoch), int(time.time()), ok=ok, slow=slow)

    def key(self, tenant: str, route: str, epoch: str) -> str:
        return f"{self._prefix}:outcomes:{tenant}|{route}:{epoch}"

    async def run(self, stop: asyncio.Event) -> None:
        next_check = 0.0
        while not stop.is_set():
            try:
                await self.flush()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self._c.rollback_check_s
                    await self.check()
                if self._failing:
                    log.info("rollback: Redis reachable again")
                self._failing = False
            except (RedisError, OSError) as exc:
                if not self._failing:
                    log.warning(
                        "rollback: Redis unavailable (%s); outcomes are counted as dropped",
                        type(exc).__name__,
                    )
                self._failing = True
            await sleep_or(stop, min(self._c.modes_refresh_s, self._c.rollback_check_s))

    async def close(self, grace_s: float) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.flush()
        if self._audits:
            await asyncio.wait(set(self._audits), timeout=grace_s)
        if self._engine is not None:
            self._engine.dispose()

    async def flush(self) -> None:
        pending = self._tally.take()
        if not pending:
            return
        ttl = int(self._c.rollback_window_s) + 60
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (tenant, route, epoch), per_second in pending.items():
                    key = self.key(tenant, route, epoch)
                    for name, value in fields_of(per_second).items():
                        pipe.hincrby(key, name, value)
                    pipe.expire(key, ttl)
                await pipe.execute()
        except (RedisError, OSError):
            self.dropped += sum(c.n for per in pending.values() for c in per.values())
            raise

    async def check(self) -> None:
        snap = self._watcher.snapshot
        if snap.killed:
            return
        now = int(time.time())
        for (tenant, route), entry in snap.cutover.items():
            key = self.key(tenant, route, entry.epoch)
            fields: dict[bytes, bytes] = await self._redis.hgetall(key)  # type: ignore[assignment]
            counts, old = window(fields, now, self._c.rollback_window_s)
            if old:
                await self._redis.hdel(key, *old)
            found = breach(counts, self.limits(tenant, route), self._c.rollback_window_s)
            if found is not None:
                await self._roll_back(entry, snap.raw[(tenant, route)], found, counts)

    async def _roll_back(self, entry: ModeEntry, raw: bytes, found: Breach, counts: Counts) -> None:
        back = ModeEntry(
            tenant=entry.tenant,
            route=entry.route,
            mode=MIRROR,
            since=time.time(),
            by=AUTO_ROLLBACK_ACTOR,
            reason=found.reason,
            verdict=entry.verdict,
            verdict_id=entry.verdict_id,
        )
        applied, _ = await self._watcher.store.put(back, expect=raw, compare=True)
        if not applied:
            return  # another replica, or a person, changed it first
        self.rollbacks += 1
        self._metrics.rollbacks.labels(entry.route).inc()
        log.warning(
            "automatic rollback: %s / %s back to mirror (%s: %d answers, %d errors, %d slow in %.0f s)",
            entry.tenant,
            entry.route,
            found.rule,
            counts.n,
            counts.errors,
            counts.slow,
            self._c.rollback_window_s,
        )
        limits = self.limits(entry.tenant, entry.route)
        details = {
            "from": "cutover",
            "to": MIRROR,
            "rule": found.rule,
            "window_s": self._c.rollback_window_s,
            "answers": counts.n,
            "errors": counts.errors,
            "error_rate": round(counts.error_rate, 4),
            "error_rate_max": limits.error_rate_max,
            "slow": counts.slow,
            "p95_ms_max": limits.p95_ms_max,
            "min_requests": limits.min_requests,
            "cutover_since": entry.since,
            "cutover_by": entry.by,
            "verdict": entry.verdict,
            "verdict_id": entry.verdict_id,
            "replica": self.replica,
        }
        task = asyncio.create_task(asyncio.to_thread(self._audit, back, details), name="rollback-audit")
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)
        with contextlib.suppress(RedisError, OSError):
            await self._watcher.refresh()  # this replica stops serving from the candidate at once

    def _audit(self, entry: ModeEntry, details: dict[str, Any]) -> None:
        """Append the rollback to the audit chain (a worker thread; retried, never raises)."""
        from store.audit import append
        from store.db import init_db, make_engine

        for attempt in range(1, _AUDIT_TRIES + 1):
            try:
                if self._engine is None:
                    engine = make_engine(self._settings.database_url)
                    init_db(engine)
                    self._engine = engine
                append(
                    self._engine,
                    actor=entry.by,
                    action="rollback",
                    tenant=entry.tenant,
                    route=entry.route,
                    reason=entry.reason,
                    details=details,
                )
                return
            except Exception as exc:  # the database is another system: report, retry, never crash
                log.warning(
                    "rollback of %s / %s: audit entry not written (%s), try %d of %d",
                    entry.tenant,
                    entry.route,
                    type(exc).__name__,
                    attempt,
                    _AUDIT_TRIES,
                )
                time.sleep(0.5 * attempt)
        self.unaudited += 1
        log.error(
            "rollback of %s / %s is in force but NOT in the audit log: %s",
            entry.tenant,
            entry.route,
            details,
        )
