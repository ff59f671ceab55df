"""Real processes for the fault tests: `shadowgate tap/dispatch/worker` as subprocesses, private Redis
and PostgreSQL servers that can be killed and restarted, a paced openai-SDK load, and the ledger that
says what was lost or counted twice. Shared by tests/faults and bench/faults_report.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
from redis.asyncio import Redis
from sqlalchemy import Engine, func, select

from mirror.exchange import decode_entry
from mirror.streams import Streams
from shadowgate.embedded_redis import EmbeddedRedis
from store.db import make_engine
from store.models import PairRow, ScoreRow
from tests.integration.tapkit import free_port

PYTHON = sys.executable


# --- processes -----------------------------------------------------------------------------------


class Proc:
    """A `shadowgate` subprocess whose output goes to a log file (a pipe nobody reads would block it)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [PYTHON, "-m", "shadowgate.cli", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            self.popen.send_signal(sig)

    async def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.popen.poll()

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not end in time; the exit code."""
        self.signal(signal.SIGTERM)
        code = await self.wait(timeout)
        if code is None:
            self.popen.kill()
            code = await self.wait(5.0)
        return code if code is not None else -9

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the process."""
        self.signal(signal.SIGKILL)
        self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def peak_rss_mb(self) -> float | None:
        """The process's peak resident memory (VmHWM), while it runs."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None


@dataclass
class Pipeline:
    """tap, dispatch and worker processes on one stream prefix, and the addresses they use."""

    workdir: Path
    redis_url: str
    prefix: str
    primary_url: str
    candidate_url: str
    db_url: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    tap_url: str = ""
    _started: Counter[str] = field(default_factory=Counter)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")}
        env.update(
            {
                "SHADOWGATE_REDIS_URL": self.redis_url,
                "SHADOWGATE_STREAM_PREFIX": self.prefix,
                "SHADOWGATE_PRIMARY_URL": self.primary_url,
                "SHADOWGATE_CANDIDATE_URL": self.candidate_url,
                "SHADOWGATE_DATA_DIR": str(self.workdir / "data"),
                "SHADOWGATE_LOG_LEVEL": "INFO",
                # Faults are found by reclaiming quickly; the defaults (60 s, 120 s) suit production.
                "SHADOWGATE_DISPATCH__RECLAIM_IDLE_S": "1",
                "SHADOWGATE_DISPATCH__HEARTBEAT_S": "0.5",
                "SHADOWGATE_WORKER__RECLAIM_IDLE_S": "2",
                "SHADOWGATE_WORKER__HEARTBEAT_S": "0.5",
                "SHADOWGATE_WORKER__BATCH": "8",
                "SHADOWGATE_EMBEDDING_PRECISION": "fp32",
                "SHADOWGATE_SHUTDOWN_GRACE_S": "5",
                "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            }
        )
        if self.db_url:
            env["SHADOWGATE_DB_URL"] = self.db_url
        env.update(self.settings)
        env.update(extra)
        return env

    def _spawn(self, kind: str, args: list[str], **extra: str) -> Proc:
        self._started[kind] += 1
        proc = Proc(f"{kind}-{self._started[kind]}", args, self.env(**extra), self.workdir)
        self.procs.append(proc)
        return proc

    async def start_tap(self, *flags: str, port: int | None = None, **extra: str) -> Proc:
        port = port or free_port()
        proc = self._spawn("tap", ["tap", "--host", "127.0.0.1", "--port", str(port), *flags], **extra)
        self.tap_url = f"http://127.0.0.1:{port}"
        await self._until(proc, lambda: healthy(self.tap_url), "answer its health check")
        return proc

    async def start_dispatch(self, **extra: str) -> Proc:
        proc = self._spawn("dispatch", ["dispatch"], **extra)
        await self._until(proc, lambda: self._beating(proc, "dispatch"), "beat its heart")
        return proc

    async def start_worker(self, **extra: str) -> Proc:
        proc = self._spawn("worker", ["worker"], **extra)
        await self._until(proc, lambda: self._beating(proc, "worker"), "beat its heart")
        return proc

    async def _beating(self, proc: Proc, kind: str) -> bool:
        redis = Redis.from_url(self.redis_url)
        try:
            pattern = f"{self.prefix}:heartbeat:{kind}:*-{proc.pid}-*"
            return any([k async for k in redis.scan_iter(match=pattern)])
        finally:
            await redis.aclose()

    async def _until(self, proc: Proc, ready: Callable[[], Any], what: str, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited before it could {what}:\n{proc.output()[-3000:]}")
            with contextlib.suppress(Exception):
                if await ready():
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{proc.name} did not {what} within {timeout:.0f} s:\n{proc.output()[-3000:]}")

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(self.tap_url + "/_shadowgate/healthz") as r:
            body: dict[str, Any] = await r.json()
            return body

    async def stop_all(self) -> dict[str, int]:
        codes = {}
        for proc in reversed(self.procs):
            if proc.alive:
                codes[proc.name] = await proc.stop()
        return codes


async def healthy(url: str) -> bool:
    timeout = aiohttp.ClientTimeout(total=1)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(url + "/_shadowgate/healthz") as r,
    ):
        return r.status == 200


# --- servers we may kill -------------------------------------------------------------------------


class PrivateRedis:
    """A Valkey server of our own (the embedded one, with its append-only file), never the shared one."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.server = EmbeddedRedis(workdir, port=self.port, persist=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.server.start()

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a crash would: nothing is flushed beyond what was written."""
        pid = self.server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        self.server.stop()  # reaps it, and forgets it

    def stop(self) -> None:
        self.server.stop()


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free port (run as the postgres user when we are root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sg-faults-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bindir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def crash(self) -> None:
        """Immediate shutdown: every connection dropped, no checkpoint, recovery on the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


# --- load ----------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)

    @property
    def client_errors(self) -> int:
        return sum(self.errors.values())


class Load:
    """Paced traffic through the tap with the real openai SDK: chat, streamed chat and embeddings.

    Every request carries `X-Request-ID: <prefix>-<n>`, so each can be followed into the streams and
    the store. `headers_for(n)` adds headers of the scenario's own (a candidate fault to act out)."""

    def __init__(
        self,
        base_url: str,
        prefix: str,
        *,
        rate: float,
        concurrency: int = 4,
        tenants: tuple[str, ...] = ("klinik-a", "klinik-b"),
        headers_for: Callable[[int], dict[str, str]] | None = None,
        seed: int = 1,
    ) -> None:
        self._base = base_url
        self._prefix = prefix
        self._rate = rate
        self._concurrency = concurrency
        self._tenants = tenants
        self._headers_for = headers_for or (lambda _n: {})
        self._rng = random.Random(seed)
        self._next = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.result = LoadResult()
        self.in_flight = 0

    def start(self, count: int | None = None) -> None:
        self._count = count
        self._t0 = time.monotonic()
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._concurrency)]

    async def stop(self) -> LoadResult:
        """Send no more; wait for every request already sent to end."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.result

    async def finish(self) -> LoadResult:
        """Wait until the `count` given to start() have been sent and answered."""
        await asyncio.gather(*self._tasks)
        return self.result

    async def run(self, count: int) -> LoadResult:
        self.start(count)
        await asyncio.gather(*self._tasks)
        return self.result

    @property
    def sent(self) -> int:
        return self.result.sent

    async def _worker(self) -> None:
        client = openai.AsyncOpenAI(
            base_url=self._base + "/v1", api_key="sk-fault-test", max_retries=0, timeout=60
        )
        try:
            while not self._stop.is_set():
                n = self._next
                if self._count is not None and n >= self._count:
                    return
                self._next += 1
                delay = self._t0 + n / self._rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._stop.is_set():
                    return
                await self._one(client, n)
        finally:
            await client.close()

    async def _one(self, client: openai.AsyncOpenAI, n: int) -> None:
        rid = f"{self._prefix}-{n}"
        tenant = self._tenants[n % len(self._tenants)]
        headers = {"X-Request-ID": rid, "X-Tenant-ID": tenant, **self._headers_for(n)}
        kind = self._rng.random()
        self.result.sent += 1
        self.result.ids.append(rid)
        self.in_flight += 1
        try:
            if kind < 0.6:
                chat = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"SOAP note for visit {n}: demam 38.{n % 10} C"}],
                    extra_headers=headers,
                )
                if not chat.choices or not chat.choices[0].message.content:
                    raise ValueError("empty completion")
            elif kind < 0.8:
                stream = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"Summarise visit {n}"}],
                    stream=True,
                    extra_headers=headers,
                )
                pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
                if not "".join(pieces):
                    raise ValueError("empty stream")
            else:
                emb = await client.embeddings.create(
                    model="text-embedding-3-small", input=[f"batuk {n}", "demam"], extra_headers=headers
                )
                if len(emb.data) != 2:
                    raise ValueError("wrong number of embeddings")
        except Exception as exc:  # every failure the client sees is counted, by class
            self.result.errors[type(exc).__name__] += 1
        else:
            self.result.ok += 1
        finally:
            self.in_flight -= 1


# --- what came out -------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Exchange ids seen at each stage of the pipeline, and what the comparison of stages says."""

    captured: list[str]
    pairs: list[str]
    stored: list[str] | None
    scores: int | None
    dead: int
    pairs_dead: int

    def lost(self, expected: set[str]) -> set[str]:
        last = self.stored if self.stored is not None else self.pairs
        return expected - set(last)

    @property
    def duplicated(self) -> int:
        dup = len(self.pairs) - len(set(self.pairs))
        if self.stored is not None:
            dup += len(self.stored) - len(set(self.stored))
        return dup


async def ids_in(redis: Redis, stream: str) -> list[str]:
    out = []
    for _, fields in await redis.xrange(stream):
        out.append(decode_entry(fields).id)
    return out


def stored_ids(engine: Engine) -> tuple[list[str], int]:
    with engine.connect() as conn:
        ids = list(conn.execute(select(PairRow.exchange_id)).scalars())
        scores = int(conn.execute(select(func.count()).select_from(ScoreRow)).scalar_one())
    return ids, scores


async def ledger(redis: Redis, prefix: str, db_url: str | None) -> Ledger:
    streams = Streams(prefix)
    stored: list[str] | None = None
    scores: int | None = None
    if db_url is not None:
        engine = make_engine(db_url)
        try:
            stored, scores = await asyncio.to_thread(stored_ids, engine)
        finally:
            engine.dispose()
    return Ledger(
        captured=await ids_in(redis, streams.captures),
        pairs=await ids_in(redis, streams.pairs),
        stored=stored,
        scores=scores,
        dead=await redis.xlen(streams.dead_letter),
        pairs_dead=await redis.xlen(streams.compare_dead_letter),
    )


async def group_state(redis: Redis, stream: str, group: str) -> tuple[int, int | None]:
    """(pending, lag) of a consumer group; (0, None) before it exists."""
    with contextlib.suppress(Exception):
        for g in await redis.xinfo_groups(stream):
            name = g.get("name")
            if name in (group, group.encode()):
                lag = g.get("lag")
                return int(g["pending"]), None if lag is None else int(lag)
    return 0, None


async def settle(redis: Redis, prefix: str, *, worker: bool, timeout: float) -> bool:
    """Until dispatch (and the worker) have read and acknowledged everything, or `timeout`."""
    streams = Streams(prefix)
    stages = [(streams.captures, streams.dispatch_group)]
    if worker:
        stages.append((streams.pairs, streams.compare_group))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [await group_state(redis, s, g) for s, g in stages]
        # Checked in order: once dispatch has acknowledged everything, every pair is in its stream
        # (pair and acknowledgement are one step), so the worker's state that follows is final.
        if all(p == 0 and lag == 0 for p, lag in states):
            return True
        await asyncio.sleep(0.2)
    return False


@contextlib.asynccontextmanager
async def shared_redis(url: str, prefix: str) -> AsyncIterator[Redis]:
    """A client on a shared Redis whose keys under `prefix` are deleted afterwards."""
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
