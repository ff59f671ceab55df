"""Pieces shared by the dispatch and replay benchmarks: starting the tap and dispatchers, open-loop runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from tap_overhead import BENCH, PATH, REDIS_URL, ROOT, Server, Servers, free_port

PYTHON = sys.executable


class Procs(Servers):
    """`Servers`, plus processes that listen on no port (a dispatcher): started, not waited for."""

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Server:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=self.workdir,
                start_new_session=True,
            )
        server = Server(name, 0, proc, log)
        self.running.append(server)
        return server


def shadowgate_env(workdir: Path, name: str, prefix: str, **extra: str) -> dict[str, str]:
    """The environment of one shadowgate process: the machine's Redis, a stream prefix of its own."""
    return {
        "SHADOWGATE_REDIS_URL": REDIS_URL,
        "SHADOWGATE_STREAM_PREFIX": prefix,
        "SHADOWGATE_LOG_LEVEL": "WARNING",
        "SHADOWGATE_DATA_DIR": str(workdir / name),
        "SHADOWGATE_SHUTDOWN_GRACE_S": "2",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def shadowgate(*args: str) -> list[str]:
    return [PYTHON, "-m", "shadowgate.cli", *args]


def start_primary(procs: Procs, name: str, *flags: str) -> int:
    """A bench/primary.py instance (the primary, or a candidate); returns its port."""
    port = free_port()
    procs.start(name, [PYTHON, str(BENCH / "primary.py"), "--port", str(port), *flags], port)
    return port


def start_tap(procs: Procs, name: str, env: dict[str, str], *flags: str) -> str:
    """`shadowgate tap` on a free port; returns the URL the load goes to."""
    port = free_port()
    procs.start(name, shadowgate("tap", "--host", "127.0.0.1", "--port", str(port), *flags), port, env)
    return f"http://127.0.0.1:{port}{PATH}"


def wait_for_heartbeat(client: redis.Redis, prefix: str, procs: Procs, timeout_s: float = 20.0) -> None:
    """A dispatcher is ready once its heartbeat key exists (its consumer group exists by then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if heartbeats(client, prefix):
            return
        for server in procs.running:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"no dispatcher heartbeat under {prefix} within {timeout_s:.0f} s")


def heartbeats(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    """The JSON of every live dispatcher heartbeat under `prefix` (its running stats)."""
    keys = list(client.scan_iter(match=f"{prefix}:heartbeat:dispatch:*", count=100))
    values = client.mget(keys) if keys else []
    return [json.loads(v) for v in values if v]


def open_loop(
    url: str,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    connections: int,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """One run of bench/openloop.py; bounded by its own per-request timeout and a hard wall limit."""
    cmd = [
        PYTHON,
        str(BENCH / "openloop.py"),
        url,
        f"--rate={rate}",
        f"--seconds={seconds}",
        f"--warmup={warmup}",
        f"--connections={connections}",
        f"--timeout={timeout_s}",
    ]
    limit = seconds + warmup + 2 * timeout_s + 60
    done = subprocess.run(cmd, capture_output=True, timeout=limit, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return dict(json.loads(done.stdout))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # Fields 14 and 15 of proc(5) (utime, stime) are the 12th and 13th after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delete_keys(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix:` (streams, heartbeats); returns how many went."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    return int(client.delete(*keys)) if keys else 0


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="shadowgate-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def shadowgate_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shadowgate")
    except PackageNotFoundError:
        return "unknown"


def git_revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, check=False
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        check=False,
    )
    rev = done.stdout.decode().strip() or "unknown"
    return rev + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
