"""What `shadowgate demo` starts besides its own event loop: a fresh data folder, and its child processes
(the scoring worker and the clinics' traffic), each of which dies with the demo."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shadowgate.embedded_redis import running_url, terminate
from shadowgate.settings import ConfigError, Settings
from shadowgate.traffic import TrafficReport

MARKER = "demo.json"  # in the data folder: its data is the demo's, and the next demo may replace it
# A store or Redis data in a folder without the marker are someone's real data: the demo refuses them.
PRECIOUS = ("shadowgate.db", "shadowgate.db-wal", "shadowgate.db-shm", "redis")
# What a previous demo leaves in its folder, removed before the next one starts. Blobs are not among
# them: the demo's bodies are all small enough to travel inline, and a blob store may hold real bodies
# of a deployment whose store and Redis live elsewhere (content-addressed, the demo's could not clash).
DEMO_FILES = (*PRECIOUS, "worker.log", "traffic.log")
_PR_SET_PDEATHSIG = 1


class DemoError(ConfigError):
    """The demo cannot go on; the message is one sentence for the user."""


def prepare(data_dir: Path) -> None:
    """Start from an empty demo folder; refuse a folder with data that a demo did not make."""
    if running_url(data_dir) is not None:
        raise DemoError(
            f"another shadowgate process is using {data_dir} (its embedded Redis is running); stop it or "
            "run the demo with SHADOWGATE_DATA_DIR set to another folder"
        )
    precious = [name for name in PRECIOUS if (data_dir / name).exists()]
    if precious and not (data_dir / MARKER).exists():
        raise DemoError(
            f"{data_dir} holds data the demo did not make ({', '.join(precious)}); run the demo with "
            "SHADOWGATE_DATA_DIR set to another folder, so synthetic pairs never mix with real ones"
        )
    for name in (name for name in DEMO_FILES if (data_dir / name).exists()):
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text(
        json.dumps({"demo": True, "started": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n"
    )


def child_hook(nice: int = 0) -> Callable[[], None]:
    """A child gets SIGTERM when the demo dies, even by SIGKILL; with `nice` it yields the CPU."""
    parent = os.getpid()
    prctl: Any = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the demo died before the signal was armed
            os._exit(1)
        if nice:
            os.nice(nice)

    return hook


def start_worker(demo: Settings, config: Path | None) -> subprocess.Popen[bytes]:
    """`shadowgate worker` as a child process on the demo's Redis and store; its log goes to a file."""
    env = {
        **os.environ,
        "SHADOWGATE_REDIS_URL": str(demo.redis_url),
        "SHADOWGATE_DB_URL": demo.database_url,
        "SHADOWGATE_DATA_DIR": str(demo.data_dir),
        "SHADOWGATE_BLOB_DIR": str(demo.blob_path),
        "SHADOWGATE_STREAM_PREFIX": demo.stream_prefix,
    }
    command = [sys.executable, "-m", "shadowgate.cli"]
    if config is not None:
        command += ["--config", str(config)]
    with (demo.data_dir / "worker.log").open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own command line, fixed arguments
            [*command, "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            # started from the main thread, which lives as long as the demo (the death signal follows
            # the thread that forked the child)
            # at a lower priority: scoring never slows the latencies being measured
            preexec_fn=child_hook(nice=10),
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (the worker finishes the batch in hand), SIGKILL after `timeout`; safe to call twice."""
    terminate(proc, timeout)


async def run_traffic(
    tap_url: str,
    seconds: float,
    *,
    log: Path,
    progress: Callable[[TrafficReport, float], Awaitable[None]],
) -> TrafficReport:
    """Run the clinics (`python -m shadowgate.traffic`, its own process, so that the openai client's
    work is not on the loop whose timings are measured); report progress every two seconds."""
    started = time.monotonic()
    with log.open("ab") as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shadowgate.traffic",
            "--url",
            tap_url,
            "--seconds",
            str(seconds),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            preexec_fn=child_hook(),
        )
    report, final, shown = TrafficReport(), False, started
    try:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            data = json.loads(line)
            report, final = TrafficReport.from_dict(data), bool(data.get("final"))
            if time.monotonic() - shown >= 2.0 or final:
                shown = time.monotonic()
                await progress(report, shown - started)
        code = await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    if code != 0 or not final:
        raise DemoError(f"the traffic generator stopped (exit {code}); its log is {log}")
    return report
