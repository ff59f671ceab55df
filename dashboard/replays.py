"""Replays started from the dashboard: each runs in a thread of the server process, watched by run id."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mirror.replay import Selection, count, replay
from mirror.streams import redis_client
from shadowgate.runtime import new_event_loop
from shadowgate.settings import Settings

log = logging.getLogger("shadowgate.dashboard")


@dataclass
class ReplayJob:
    """One replay: what was asked, by whom, and how it went (the pairs' scoring is read from the store)."""

    run_id: str
    by: str
    tenant: str
    route: str
    since_ms: int | None
    until_ms: int | None
    speed: float
    started_at: float = field(default_factory=time.time)
    matched: int | None = None  # captures in the window, known once counted
    finished_at: float | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def state(self) -> str:
        if self.running:
            return "counting" if self.matched is None else "sending"
        return "failed" if self.error else "done"


def new_run_id() -> str:
    return f"replay-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


class ReplayJobs:
    """The replays this server process started, newest first; one instance per process."""

    def __init__(self) -> None:
        self._jobs: dict[str, ReplayJob] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, settings: Settings, job: ReplayJob) -> ReplayJob:
        if not settings.redis_url:
            raise ValueError("a replay needs the Redis URL the tap writes captures to")
        thread = threading.Thread(target=self._run, args=(settings, job), name=job.run_id, daemon=True)
        with self._lock:
            self._jobs[job.run_id] = job
            self._threads[job.run_id] = thread
        thread.start()
        return job

    def get(self, run_id: str) -> ReplayJob | None:
        with self._lock:
            return self._jobs.get(run_id)

    def all(self) -> list[ReplayJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started_at, reverse=True)

    def wait(self, run_id: str, timeout: float) -> bool:
        """Wait for a replay to finish (tests and shutdown); True when it has."""
        with self._lock:
            thread = self._threads.get(run_id)
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self, settings: Settings, job: ReplayJob) -> None:
        selection = Selection(
            tenants=frozenset({job.tenant}),
            routes=frozenset({job.route}),
            since_ms=job.since_ms,
            until_ms=job.until_ms,
        )

        async def main() -> dict[str, Any]:
            assert settings.redis_url is not None
            redis = redis_client(settings.redis_url)
            try:
                job.matched = (await count(redis, settings, selection)).matched
                summary = await replay(
                    redis, settings, selection, speed=job.speed, run_id=job.run_id, progress=False
                )
                return summary.as_dict()
            finally:
                await redis.aclose()

        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                job.summary = runner.run(main())
        except Exception as exc:  # reported on the page; the server goes on
            log.warning("replay %s failed: %s", job.run_id, type(exc).__name__)
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()


# The replays this server process started, shared by every session (a page run is short; a replay is not).
JOBS = ReplayJobs()
