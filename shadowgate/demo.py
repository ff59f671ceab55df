"""`shadowgate demo`: the whole pipeline on embedded defaults with planted clinics, ending in verdicts.

This process runs the two simulators, the tap and dispatch on one event loop; the embedded Redis, the
clinics' traffic (`python -m shadowgate.traffic`) and a scoring worker (`shadowgate worker`, at a lower CPU
priority, so that scoring never slows the latencies being measured) are its children (demo_setup.py). Once
the traffic stops, the demo lets dispatch and scoring finish (bounded), runs the gate with the demo policy,
stores and audits the verdicts, prints them (demo_report.py), and leaves everything in the data folder for
`shadowgate dashboard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.engine import Engine

from gate.policy import Policy, load_policy
from gate.run import evaluate
from mirror.dispatch import Dispatcher, candidate_session
from mirror.exchange import Exchange, MalformedEntry, decode_entry
from mirror.serve import runner_for
from mirror.streams import Streams, redis_client
from mirror.tap import STATE, TapState, build_app
from shadowgate.crypto import Cipher, cipher_from
from shadowgate.demo_report import PLANTED, by_tenant, means_of, report, summarise
from shadowgate.demo_setup import DemoError, prepare, run_traffic, start_worker, stop
from shadowgate.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from shadowgate.runtime import new_event_loop
from shadowgate.settings import DEFAULT_ROUTES, Settings, Tenant
from shadowgate.traffic import DEMO_TENANTS, TrafficReport, route_counts, schedule
from simulator.profile import demo_profiles
from simulator.server import build_app as build_simulator
from store.db import open_store
from store.queries import route_summary

DEMO_POLICY = "demo_policy.toml"
# Seconds the demo waits, after the traffic, for dispatch and scoring to finish: this plus the run's length.
DRAIN_S = 60.0


class LoopLag:
    """How late this process's event loop wakes up: the simulators, the tap and dispatch share it, so
    its lag is in every latency the demo measures (a busy machine makes the candidate look slower)."""

    def __init__(self, every_s: float = 0.01) -> None:
        self._every = every_s
        self.samples: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._every
            await asyncio.sleep(self._every)
            self.samples.append(max(0.0, (loop.time() - due) * 1000))

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}
        ordered = sorted(self.samples)

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

        return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 1)}


def run(settings: Settings, *, seconds: float, as_json: bool, config: Path | None = None) -> int:
    """Blocking entry of the command. Everything it starts is stopped before it returns, also on Ctrl-C
    and SIGTERM (turned into the same interruption). Exit 0 when every clinic's verdict is the planted
    one, 1 when one is not."""
    if not seconds > 0:
        raise DemoError("--seconds must be more than 0")
    signal.signal(signal.SIGTERM, _interrupt)
    if seconds < 20:
        print(
            f"note: {seconds:g} s of traffic give the equivalent clinic fewer than the 100 pairs per route "
            "that a GO needs under the demo policy; expect HOLD there (20 s or more decide every clinic)",
            file=sys.stderr,
        )
    if settings.log_level == "INFO":  # the demo narrates; the components' own INFO lines would drown it
        logging.getLogger().setLevel(logging.WARNING)
    data_dir = settings.data_dir.absolute()
    prepare(data_dir)
    server = EmbeddedRedis(data_dir)
    try:
        server.start()
    except EmbeddedRedisError as exc:
        raise DemoError(f"could not start the embedded Redis: {exc}") from exc
    demo = settings.model_copy(
        update={
            "redis_url": server.url,
            "db_url": f"sqlite:///{data_dir / 'shadowgate.db'}",
            "data_dir": data_dir,
            "blob_dir": None,
            "routes": DEFAULT_ROUTES,
            "capture": True,
            "tenants": tuple(Tenant(id=t, name=t.replace("-", " ").title()) for t in DEMO_TENANTS),
            # bayu's slow candidate alone keeps ~25 calls in flight; the default 16 would queue them
            "dispatch": settings.dispatch.model_copy(update={"concurrency": 96}),
        }
    )
    worker: subprocess.Popen[bytes] | None = None
    summary: dict[str, Any] | None = None
    try:
        worker = start_worker(demo, config)
        with (
            asyncio.Runner(loop_factory=new_event_loop) as runner,
            open_store(demo.database_url) as engine,
        ):
            try:
                summary = runner.run(_demo(demo, engine, worker, seconds=seconds, quiet=as_json))
            except asyncio.CancelledError:  # Ctrl-C or SIGTERM inside the loop (see _cancel_on_signals)
                raise KeyboardInterrupt from None
            signal.signal(signal.SIGTERM, _interrupt)  # the loop's handler is gone with the loop
    finally:
        if worker is not None:  # interrupted, its batch is not worth waiting for: it is written whole or not
            stop(worker, timeout=15.0 if summary is not None else 3.0)
        server.stop()
    summary["ignored"] = [
        name for name, value in (("redis_url", settings.redis_url), ("db_url", settings.db_url)) if value
    ]
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(report(summary))
    return 0 if all(c["as_planted"] for c in summary["tenants"]) else 1


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM outside the event loop: the same as Ctrl-C."""
    raise KeyboardInterrupt(f"signal {signum}")


def _cancel_on_signals() -> None:
    """Ctrl-C or SIGTERM inside the event loop cancel the demo's main task, which then stops what it
    started, quietly (an exception raised by a Python signal handler would land in whichever task
    happens to run). A second signal gets Python's default: Ctrl-C interrupts, SIGTERM kills."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None

    def interrupted(signum: int) -> None:
        loop.remove_signal_handler(signum)
        if signum == signal.SIGTERM:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        logging.disable(logging.ERROR)  # connections cut mid-request are expected now, not news
        print("interrupted: stopping everything the demo started ...", file=sys.stderr, flush=True)
        task.cancel()

    signals = [signal.SIGTERM]
    # (asyncio.Runner has put its own Ctrl-C handler in place; a shell's background job ignores Ctrl-C)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signals.append(signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, interrupted, signum)


def load_demo_policy() -> tuple[Policy, str]:
    source = resources.files("shadowgate").joinpath(DEMO_POLICY)
    with resources.as_file(source) as path:
        return load_policy(path), str(path)


@asynccontextmanager
async def _serving(app: web.Application, *, tap: bool = False) -> AsyncIterator[str]:
    # Nothing is in flight when the demo ends normally; when interrupted, nothing is worth waiting for.
    runner = (
        runner_for(app, shutdown_timeout=1.0)
        if tap
        else web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


async def _scoring(redis: Redis, streams: Streams) -> tuple[int, int]:
    """(pairs in the stream, pairs the workers have finished with)."""
    total = int(await redis.xlen(streams.pairs)) if await redis.exists(streams.pairs) else 0
    with contextlib.suppress(Exception):  # no group yet: the worker is still loading its model
        for group in await redis.xinfo_groups(streams.pairs):
            name = group.get("name")
            if name in (streams.compare_group, streams.compare_group.encode()):
                read = int(group.get("entries-read") or 0)
                return total, read - int(group.get("pending") or 0)
    return total, 0


@dataclass
class Driven:
    """What the traffic phase leaves behind for the summary."""

    report: TrafficReport
    dropped: dict[str, int]
    lag: dict[str, float]


async def _demo(
    settings: Settings, engine: Engine, worker: subprocess.Popen[bytes], *, seconds: float, quiet: bool
) -> dict[str, Any]:
    """The demo's phases: traffic through the whole pipeline, scoring, the gate, the summary."""
    assert settings.redis_url is not None
    _cancel_on_signals()
    policy, policy_path = load_demo_policy()
    streams = Streams(settings.stream_prefix)
    redis = redis_client(settings.redis_url)
    started = time.time()
    try:
        driven = await _drive(settings, redis, streams, worker, seconds=seconds, quiet=quiet)
        unscored = await _wait_for_scoring(
            redis,
            streams,
            worker,
            log=settings.data_dir / "worker.log",
            deadline=time.monotonic() + DRAIN_S + seconds,
            quiet=quiet,
        )
        with contextlib.suppress(ProcessLookupError):
            worker.send_signal(signal.SIGTERM)  # it finishes while the gate judges
        since_ms = int(started * 1000)
        cipher = cipher_from(settings.encryption)  # the demo's entries are sealed when keys are set
        captures = await _since(redis, streams.captures, since_ms, cipher)
        pairs = await _since(redis, streams.pairs, since_ms, cipher)
    finally:
        await redis.aclose()

    _say(quiet, f"judging with the gate (policy {policy_path}) ...")
    verdicts = evaluate(engine, policy).verdicts
    stop(worker)
    min_pairs = {(v["tenant"], v["route"]): policy.for_(v["tenant"], v["route"]).min_pairs for v in verdicts}
    rows = summarise(captures, [p for p in pairs if p.replay is None])
    stats = {
        (r.tenant, r.route): r for r in route_summary(engine, since=datetime.fromtimestamp(started, tz=UTC))
    }
    return {
        "seconds": seconds,
        "policy": {"path": policy_path, "version": policy.version, "demo": True},
        "redis_url": settings.redis_url,
        "data_dir": str(settings.data_dir),
        "database": settings.database_url,
        "streams": {"captures": streams.captures, "pairs": streams.pairs},
        "requests": driven.report.total,
        "client_errors": dict(driven.report.errors),
        "captured": len(captures),
        "paired": len(pairs),
        "dropped": driven.dropped,
        "scored": sum(r.scored for r in stats.values()),
        "not_scored_in_time": unscored,
        "loop_lag_ms": driven.lag,
        "tenants": by_tenant(verdicts, min_pairs),
        "by_tenant_route": [asdict(row) | means_of(stats.get((row.tenant, row.route))) for row in rows],
    }


async def _drive(
    settings: Settings,
    redis: Redis,
    streams: Streams,
    worker: subprocess.Popen[bytes],
    *,
    seconds: float,
    quiet: bool,
) -> Driven:
    """Simulators, tap and dispatch on this loop; the planned traffic through the tap; then the last
    captures paired. Everything here is stopped before it returns, also when cancelled."""
    profiles = demo_profiles(seed=7)
    plan = schedule(DEMO_TENANTS, seconds)
    counts = route_counts(plan)
    async with (
        _serving(build_simulator(profiles["primary"])) as primary_url,
        _serving(build_simulator(profiles["candidate"])) as candidate_url,
    ):
        demo = settings.model_copy(update={"primary_url": primary_url, "candidate_url": candidate_url})
        tap_app = build_app(demo)
        state = tap_app[STATE]
        async with candidate_session(demo) as session:
            dispatcher = Dispatcher(redis, demo, session)
            stop_dispatch = asyncio.Event()
            live = asyncio.create_task(dispatcher.run(stop_dispatch))
            try:
                async with _serving(tap_app, tap=True) as tap_url:
                    _say(quiet, f"redis      {settings.redis_url} (embedded, in {settings.data_dir}/redis)")
                    _say(quiet, f"primary    {primary_url} (simulator: the cloud route)")
                    _say(quiet, f"candidate  {candidate_url} (simulator: the new GPU server)")
                    _say(quiet, f"tap        {tap_url} -> primary; captures into {streams.captures}")
                    _say(quiet, f"dispatch   -> candidate; pairs into {streams.pairs}")
                    _say(quiet, f"worker     pid {worker.pid} (shadowgate worker) -> {settings.database_url}")
                    _say(quiet, f"driving {seconds:g} s of traffic through the tap, {len(plan)} requests:")
                    for tenant in DEMO_TENANTS:
                        routes = ", ".join(f"{r} {n}" for (t, r), n in sorted(counts.items()) if t == tenant)
                        _say(quiet, f"  {tenant:<17} {routes or 'none'}")
                        _say(quiet, f"  {'':<17} planted: {PLANTED[tenant].situation}")

                    async def progress(report: TrafficReport, elapsed: float) -> None:
                        _, scored = await _scoring(redis, streams)
                        line = _progress_line(report, state, dispatcher, scored)
                        _say(quiet, f"  [{elapsed:4.0f} s] {line}")

                    # What exists so far is left out of garbage collection: no pauses in the timings.
                    gc.collect()
                    gc.freeze()
                    lag = LoopLag()
                    watching = asyncio.create_task(lag.run())
                    try:
                        report = await run_traffic(
                            tap_url, seconds, log=settings.data_dir / "traffic.log", progress=progress
                        )
                    finally:
                        gc.unfreeze()
                        watching.cancel()
                        await asyncio.gather(watching, return_exceptions=True)
                # The tap has stopped and flushed its queue; dispatch finishes what is left, then stops.
                _say(quiet, "pairing the last captures ...")
                stop_dispatch.set()
                await live
            finally:
                if not live.done():  # interrupted: no grace for calls to a simulator that is going away
                    live.cancel()
                    await asyncio.gather(live, return_exceptions=True)
            await Dispatcher(redis, demo, session, consumer=dispatcher.consumer).run(
                asyncio.Event(), burst=True
            )
    dropped = dict(state.capture.dropped) if state.capture else {}
    return Driven(report, dropped, lag.summary())


async def _wait_for_scoring(
    redis: Redis,
    streams: Streams,
    worker: subprocess.Popen[bytes],
    *,
    log: Path,
    deadline: float,
    quiet: bool,
) -> int:
    """Wait until the worker has scored every pair, it stops, or the deadline passes; the pairs left."""
    last = 0.0
    while True:
        total, scored = await _scoring(redis, streams)
        if scored >= total:
            return 0
        if worker.poll() is not None:
            raise DemoError(f"the scoring worker stopped (exit {worker.returncode}); its log is {log}")
        if time.monotonic() >= deadline:
            _say(quiet, f"scoring took too long: {total - scored} pairs are left unscored and unjudged")
            return total - scored
        if time.monotonic() - last >= 2.0:
            _say(quiet, f"scoring: {scored} of {total} pairs ...")
            last = time.monotonic()
        await asyncio.sleep(0.25)


def _progress_line(report: TrafficReport, state: TapState, dispatcher: Dispatcher, scored: int) -> str:
    capture = state.capture
    captured = capture.captured if capture else 0
    dropped = sum(capture.dropped.values()) if capture else 0
    lost = f", {dropped} capture drops" if dropped else ""
    return (
        f"{report.total}/{report.planned} requests sent, {captured} captured{lost}, "
        f"{dispatcher.stats.paired} paired, {scored} scored"
    )


async def _since(redis: Redis, stream: str, since_ms: int, cipher: Cipher | None) -> list[Exchange]:
    out: list[Exchange] = []
    start = f"{since_ms}-0"
    while True:
        batch: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(
            stream, min=start, max="+", count=1000
        )  # type: ignore[assignment]
        if not batch:
            return out
        for _, fields in batch:
            try:
                out.append(decode_entry(fields, cipher))
            except MalformedEntry:
                continue
        start = "(" + batch[-1][0].decode()
