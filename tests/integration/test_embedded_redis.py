"""The embedded Valkey server: Streams work, data persists, and the server never outlives us."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from shadowgate.embedded_redis import (
    STATE_FILE,
    EmbeddedRedis,
    EmbeddedRedisError,
    proc_stat,
    server_binary,
    server_version,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

ROOT = Path(__file__).resolve().parents[2]


def is_live(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat.state not in ("Z", "X", "x")


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while is_live(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def read_line(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the child printed nothing in time"
    line = proc.stdout.readline()
    assert line, f"the child exited with {proc.wait(5)} before printing"
    return line.strip()


@pytest.fixture
def reap() -> Iterator[Callable[[int], None]]:
    """Remember pids of servers started by children; kill any left at the end."""
    pids: list[int] = []
    yield pids.append
    binary = server_binary()
    for pid in pids:
        # Only ever kill our own server binary, never a process that reused the pid.
        with contextlib.suppress(OSError):
            if is_live(pid) and Path(os.readlink(f"/proc/{pid}/exe")) == binary:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def python() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Run a Python script in a child; the child is killed and reaped at the end."""
    children: list[subprocess.Popen[str]] = []

    def run(script: str, *args: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        children.append(child)
        return child

    yield run
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        assert child.stdout is not None
        child.stdout.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path) as embedded:
        yield embedded


async def test_streams_work(server: EmbeddedRedis) -> None:
    client = redis.asyncio.Redis.from_url(server.url)
    try:
        await client.xgroup_create("exchanges", "workers", id="0", mkstream=True)
        first = await client.xadd("exchanges", {"id": "a"})
        await client.xadd("exchanges", {"id": "b"})
        entries = await client.xrange("exchanges")
        assert [fields[b"id"] for _, fields in entries] == [b"a", b"b"]
        read = await client.xreadgroup("workers", "dead", {"exchanges": ">"}, count=1)
        assert read[0][1][0][0] == first
        _, claimed, _ = await client.xautoclaim("exchanges", "workers", "alive", 0)
        assert [entry_id for entry_id, _ in claimed] == [first]
    finally:
        await client.aclose()


def test_stop_closes_the_port_and_is_idempotent(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path, persist=False)
    embedded.stop()  # before start: nothing to do
    embedded.start()
    port, pid = embedded.port, embedded.pid
    assert pid is not None
    assert accepts(port)
    assert embedded.url == f"redis://127.0.0.1:{port}/0"
    assert json.loads((tmp_path / "redis" / STATE_FILE).read_text())["pid"] == pid
    embedded.stop()
    embedded.stop()
    assert not accepts(port)
    assert not is_live(pid)
    assert not embedded.running
    assert not (tmp_path / "redis" / STATE_FILE).exists()


def test_data_persists_across_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        client = redis.Redis.from_url(first.url)
        client.xadd("exchanges", {"id": "kept"})
        client.close()
    with EmbeddedRedis(tmp_path) as second:
        client = redis.Redis.from_url(second.url)
        assert [f[b"id"] for _, f in client.xrange("exchanges")] == [b"kept"]
        client.close()


def test_a_taken_port_fails_with_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        embedded = EmbeddedRedis(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(EmbeddedRedisError, match="Address already in use"):
            embedded.start(timeout=5)
    assert not embedded.running


def test_a_data_dir_in_use_is_refused(server: EmbeddedRedis, tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="in use"):
        EmbeddedRedis(tmp_path).start()
    assert server.running


def test_started_from_a_short_lived_thread_it_keeps_running(tmp_path: Path) -> None:
    # The parent-death signal follows the thread that forked; the server must outlive this one.
    embedded = EmbeddedRedis(tmp_path, persist=False)
    try:
        thread = threading.Thread(target=embedded.start)
        thread.start()
        thread.join(15)
        time.sleep(0.3)
        assert embedded.running
        client = redis.Redis.from_url(embedded.url)
        assert client.ping()
        client.close()
    finally:
        embedded.stop()


def test_an_orphan_of_a_crash_is_terminated(
    tmp_path: Path, reap: Callable[[int], None], python: Callable[..., subprocess.Popen[str]]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        fixed_port = probe.getsockname()[1]
    crashed = python(
        """
        import os, sys
        from pathlib import Path
        from shadowgate.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis(Path(sys.argv[1]), port=int(sys.argv[2]), _parent_death_signal=False)
        server.start()
        print(server.pid, flush=True)
        os._exit(0)
        """,
        str(tmp_path),
        str(fixed_port),
    )
    orphan = int(read_line(crashed))
    reap(orphan)
    assert crashed.wait(10) == 0
    assert is_live(orphan)
    assert accepts(fixed_port)

    with EmbeddedRedis(tmp_path, port=fixed_port) as fresh:
        assert not is_live(orphan)
        assert fresh.pid != orphan
        client = redis.Redis.from_url(fresh.url)
        assert client.info("server")["process_id"] == fresh.pid
        client.close()


def test_an_unrelated_process_with_the_recorded_pid_is_left_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stat = proc_stat(bystander.pid)
        assert stat is not None
        state = tmp_path / "redis" / STATE_FILE
        state.parent.mkdir()
        record = {
            "pid": bystander.pid,
            "start_time": stat.start_time,
            "port": 1,
            "host": "127.0.0.1",
            "binary": str(server_binary()),
            "owner_pid": 1,
            "owner_start_time": None,
        }
        state.write_text(json.dumps(record))
        with EmbeddedRedis(tmp_path, persist=False):
            assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait(5)


def test_the_server_dies_with_a_killed_parent(
    tmp_path: Path, reap: Callable[[int], None], python: Callable[..., subprocess.Popen[str]]
) -> None:
    parent = python(
        """
        import sys, time
        from pathlib import Path
        from shadowgate.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis(Path(sys.argv[1]), persist=False)
        server.start()
        print(server.pid, flush=True)
        time.sleep(60)
        """,
        str(tmp_path),
    )
    child = int(read_line(parent))
    reap(child)
    assert is_live(child)
    parent.kill()
    parent.wait(5)
    assert wait_gone(child, 5.0), "the server outlived its SIGKILLed parent"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_foreground_server(
    tmp_path: Path,
    reap: Callable[[int], None],
    python: Callable[..., subprocess.Popen[str]],
    sig: signal.Signals,
) -> None:
    foreground = python(
        """
        import sys
        from pathlib import Path
        from shadowgate.embedded_redis import main_foreground
        sys.exit(main_foreground(Path(sys.argv[1]), "127.0.0.1", None))
        """,
        str(tmp_path),
    )
    line = read_line(foreground)
    assert line.startswith(f"embedded Redis (Valkey {server_version()}) at redis://127.0.0.1:")
    assert line.endswith("; Ctrl-C to stop")
    client = redis.Redis.from_url(line.split(" at ")[1].split(";")[0])
    pid = client.info("server")["process_id"]
    client.close()
    reap(pid)
    foreground.send_signal(sig)
    assert foreground.wait(10) == 0
    assert wait_gone(pid, 5.0)
