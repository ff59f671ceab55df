"""Run the tap: one process, or several sharing a port (SO_REUSEPORT), with graceful shutdown on signals."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from shadowgate.settings import Settings

log = logging.getLogger("shadowgate.tap")


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float,
    reuse_port: bool = False,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set); then stop accepting, finish in-flight requests,
    and run the app's cleanup (which flushes the capture queue)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = runner_for(app, shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=2048, reuse_port=reuse_port)
        await site.start()
        bound = _bound_port(runner, port)
        if on_ready is not None:
            on_ready(bound)
        await stop.wait()
        log.info("shutting down: finishing in-flight requests (up to %.0f s)", shutdown_timeout)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def runner_for(app: web.Application, shutdown_timeout: float) -> web.AppRunner:
    """The tap's runner settings, shared by the CLI and the tests."""
    return web.AppRunner(
        app,
        access_log=None,  # paths can carry identifiers; request logging is the gateway's business
        auto_decompress=False,  # gzip request bodies reach the primary as the client sent them
        shutdown_timeout=shutdown_timeout,
        handle_signals=False,
    )


def _bound_port(runner: web.AppRunner, default: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return default


def run_tap(
    settings: Settings, host: str, port: int, workers: int = 1, *, with_dispatch: bool = False
) -> int:
    """Blocking entry of `shadowgate tap`; `settings.redis_url` is already resolved."""
    if workers <= 1:
        _run_one(
            settings.model_dump(),
            host,
            port,
            reuse_port=False,
            multiproc_dir=None,
            with_dispatch=with_dispatch,
        )
        return 0
    # Several processes share the port; Prometheus's multiprocess mode sums their metrics.
    with tempfile.TemporaryDirectory(prefix="shadowgate-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(
                target=_run_one,
                args=(settings.model_dump(), host, port),
                kwargs={
                    "reuse_port": True,
                    "multiproc_dir": Path(metrics_dir),
                    "with_dispatch": with_dispatch,
                },
                name=f"tap-{i}",
            )
            for i in range(workers)
        ]
        for proc in procs:
            proc.start()

        def forward(signum: int, _frame: Any) -> None:
            for proc in procs:
                if proc.pid is not None and proc.is_alive():
                    os.kill(proc.pid, signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for proc in procs:
                proc.join()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return max((proc.exitcode or 0) for proc in procs)


def _run_one(
    settings_data: dict[str, Any],
    host: str,
    port: int,
    *,
    reuse_port: bool,
    multiproc_dir: Path | None,
    with_dispatch: bool = False,
) -> None:
    from mirror.tap import build_app
    from shadowgate.logs import setup_logging
    from shadowgate.runtime import new_event_loop

    settings = Settings(**settings_data)
    setup_logging(settings.log_level)
    app = build_app(settings, multiproc_dir=multiproc_dir, with_dispatch=with_dispatch)
    # Everything built so far lives as long as the process: keep the collector from walking it again.
    gc.collect()
    gc.freeze()

    def ready(bound: int) -> None:
        capture = "capture on" if settings.capture else "capture off"
        log.info(
            "tap pid %d listening on http://%s:%d -> %s (%s)",
            os.getpid(),
            host,
            bound,
            settings.primary_url,
            capture,
        )

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(
            serve_app(
                app,
                host,
                port,
                shutdown_timeout=settings.shutdown_grace_s,
                reuse_port=reuse_port,
                on_ready=ready,
            )
        )
