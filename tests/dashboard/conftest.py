"""A store filled by the real pipeline — tap, dispatch, worker, gate — once per backend per session.

Traffic goes through the tap with the real `openai` client to two simulators (served from a thread of
their own for the whole session, so that replays started by the tests find the candidate too):

- klinik-same: the candidate answers exactly as the primary (GO under the test policy);
- klinik-drift: every number changed and every negation flipped, transcripts with dropped words (NO-GO);
- klinik-edge: one number in 25 changed, about a pair in four (the gate cannot tell yet: HOLD);
- a few transcriptions and embeddings per tenant (INSUFFICIENT DATA).

Yesterday's verdicts come from the packaged (strict) policy judged 25 hours ago, today's from a looser
test policy, so the board has a trend to show.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import openai
import pytest
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from comparators.embedder import Embedder
from comparators.worker import ScoringWorker
from dashboard.auth import hash_password
from gate.policy import load_policy
from gate.run import evaluate
from mirror.dispatch import Dispatcher, candidate_session
from shadowgate.settings import Route, RouteKind, Settings, Tenant
from simulator.profile import Drift, Latency, SimulatorProfile, TenantProfile
from simulator.server import build_app as build_simulator
from store.db import init_db, make_engine
from tests.conftest import TEST_REDIS_URL
from tests.integration.conftest import TEST_PG_URL
from tests.integration.tapkit import running_tap

FAST = Latency(median_ms=3, p95_ms=8, chunk_ms=1)
# klinik-same needs ~90 pairs before the p95 latency has a finite upper bound at the first look.
CHAT = {"klinik-same": 90, "klinik-drift": 24, "klinik-edge": 30}
STREAMED = 4  # of klinik-same's chat requests, streamed (time to first token)
AUDIO, EMBED = 3, 2  # per tenant: too few for a verdict
USER, PASSWORD = "alice", "correct horse battery staple"
T = TypeVar("T")
NAMES = {"klinik-same": "Klinik Sama", "klinik-drift": "Klinik Hanyut", "klinik-edge": "Klinik Tepi"}

TEST_POLICY = """
[defaults]
min_pairs = 20
error_rate_max = 0.3
fact_mismatch_rate_max = 0.3
fact_margin_vs_noise = 0.3
omission_rate_max = 0.3
omission_margin_vs_noise = 0.3
candidate_p95_ms_max = 2000
require_review = false  # klinik-drift: a NO-GO on flags as the scorer raised them
"""


def pg_database(prefix: str) -> tuple[Engine, Callable[[], None]]:
    """A PostgreSQL database of its own on the test server, and how to drop it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(TEST_PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(TEST_PG_URL).set(database=name).render_as_string(hide_password=False))

    def drop() -> None:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return engine, drop


@dataclass(frozen=True)
class Filled:
    """One filled store and everything a dashboard needs to run on it."""

    backend: str
    engine: Engine
    db_url: str
    prefix: str
    primary_url: str
    candidate_url: str
    config: Path  # the TOML file the dashboard reads ($SHADOWGATE_CONFIG)
    settings: Settings


class ServerThread:
    """aiohttp apps served from one event loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="simulators", daemon=True)
        self.runners: list[web.AppRunner] = []
        self.thread.start()

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        async def main() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(main(), self.loop).result(30)

    def serve(self, profile: SimulatorProfile) -> str:
        async def start() -> str:
            runner = web.AppRunner(build_simulator(profile), auto_decompress=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.runners.append(runner)
            port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
            return f"http://127.0.0.1:{port}"

        return self.call(start)

    def close(self) -> None:
        for runner in self.runners:
            self.call(runner.cleanup)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="session")
def simulators() -> Iterator[tuple[str, str]]:
    primary = SimulatorProfile(role="primary", seed=5, default=TenantProfile(latency=FAST))
    candidate = SimulatorProfile(
        role="candidate",
        seed=5,
        default=TenantProfile(latency=FAST),
        tenants={
            "klinik-drift": TenantProfile(
                latency=FAST, drift={"chat": Drift(numbers=1.0, negation=1.0), "audio": Drift(drop_words=0.3)}
            ),
            "klinik-edge": TenantProfile(latency=FAST, drift={"chat": Drift(numbers=0.04)}),
        },
    )
    servers = ServerThread()
    try:
        yield servers.serve(primary), servers.serve(candidate)
    finally:
        servers.close()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(precision="fp32")


class Stores:
    """Filled stores by backend, made on first use and dropped at the end of the session."""

    def __init__(self, root: Path, sims: tuple[str, str], embedder: Embedder) -> None:
        self.root, self.sims, self.embedder = root, sims, embedder
        self.filled: dict[str, Filled] = {}
        self._cleanups: list[Callable[[], None]] = []

    def get(self, backend: str) -> Filled:
        if backend not in self.filled:
            self.filled[backend] = self._fill(backend)
        return self.filled[backend]

    def _engine(self, backend: str) -> Engine:
        if backend == "sqlite":
            engine = make_engine(f"sqlite:///{self.root / 'sqlite' / 'shadowgate.db'}")
            self._cleanups.append(engine.dispose)
            return engine
        engine, drop = pg_database("sg_dash")
        self._cleanups.append(drop)
        return engine

    def _fill(self, backend: str) -> Filled:
        engine = self._engine(backend)
        init_db(engine)
        prefix = f"sgdash-{uuid.uuid4().hex[:10]}"
        self._cleanups.append(lambda: asyncio.run(_drop_keys(prefix)))
        primary, candidate = self.sims
        db_url = engine.url.render_as_string(hide_password=False)
        settings = Settings(
            primary_url=primary,  # type: ignore[arg-type]
            candidate_url=candidate,  # type: ignore[arg-type]
            redis_url=TEST_REDIS_URL,
            stream_prefix=prefix,
            db_url=db_url,
            data_dir=self.root / backend,
            tenants=tuple(Tenant(id=t, name=n) for t, n in NAMES.items()),
            routes=(
                Route(prefix="/v1/chat/completions", kind=RouteKind.CHAT, secondary_rate=0.5),
                Route(prefix="/v1/audio/transcriptions", kind=RouteKind.AUDIO),
                Route(prefix="/v1/embeddings", kind=RouteKind.EMBED),
            ),
        )
        asyncio.run(_pipeline(settings, engine, self.embedder))
        policy = self.root / "test_policy.toml"
        policy.write_text(TEST_POLICY)
        now = datetime.now(UTC)
        evaluate(engine, load_policy(None), now=now - timedelta(hours=25))  # yesterday, strict
        evaluate(engine, load_policy(policy), now=now)  # today, the test's limits
        config = self.root / f"{backend}.toml"
        config.write_text(_config_toml(settings, policy))
        return Filled(backend, engine, db_url, prefix, primary, candidate, config, settings)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()


def _config_toml(settings: Settings, policy: Path) -> str:
    tenants = "".join(f'\n[[tenants]]\nid = "{t.id}"\nname = "{t.name}"\n' for t in settings.tenants)
    return f"""
primary_url = "{settings.primary_url}"
candidate_url = "{settings.candidate_url}"
redis_url = "{settings.redis_url}"
stream_prefix = "{settings.stream_prefix}"
db_url = "{settings.db_url}"
data_dir = "{settings.data_dir}"

[dashboard]
policy = "{policy}"
refresh_s = 60
users = [{{ name = "{USER}", password_scrypt = "{hash_password(PASSWORD, n=2**10)}" }}]
{tenants}"""


async def _drop_keys(prefix: str) -> None:
    client = Redis.from_url(TEST_REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _pipeline(settings: Settings, engine: Engine, embedder: Embedder) -> None:
    """Tap -> dispatch -> worker, as in production, on this session's stream prefix."""
    expected = 0
    async with running_tap(settings) as (tap, state):
        calls = []
        for tenant, n in CHAT.items():
            client = openai.AsyncOpenAI(
                base_url=f"{tap}/v1", api_key="sk-x", max_retries=0, default_headers={"X-Tenant-ID": tenant}
            )
            for i in range(n):
                prompt = f"Write a SOAP note for visit {i}: fever {38 + i / 10:.1f} C for {i % 5 + 2} days."
                if tenant == "klinik-same" and i < STREAMED:
                    calls.append(_streamed(client, prompt))
                else:
                    calls.append(
                        client.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
                        )
                    )
            calls.extend(
                client.audio.transcriptions.create(
                    model="whisper-1",
                    file=(f"{i}.wav", random.Random(f"{tenant}{i}").randbytes(40_000), "audio/wav"),
                )
                for i in range(AUDIO)
            )
            calls.extend(
                client.embeddings.create(model="e", input=[f"demam {i}", "batuk kering", "sakit kepala"])
                for i in range(EMBED)
            )
            expected += n + AUDIO + EMBED
            # Eight at a time: traffic the way clinics send it, not all at once.
            for start in range(0, len(calls), 8):
                await asyncio.gather(*calls[start : start + 8])
            calls.clear()
            await client.close()
        assert state.capture is not None
        deadline = time.monotonic() + 10
        while state.capture.captured < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert state.capture.captured == expected
    redis = Redis.from_url(TEST_REDIS_URL)
    try:
        async with candidate_session(settings) as session:
            await asyncio.wait_for(Dispatcher(redis, settings, session).run(asyncio.Event(), burst=True), 60)
        worker = ScoringWorker(redis, settings, engine, embedder)
        stats = await asyncio.wait_for(worker.run(asyncio.Event(), burst=True), 100)
        assert stats.scored == expected
    finally:
        await redis.aclose()


async def _streamed(client: openai.AsyncOpenAI, prompt: str) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
    )
    async for _ in stream:
        pass


@pytest.fixture(scope="session")
def stores(
    tmp_path_factory: pytest.TempPathFactory, simulators: tuple[str, str], embedder: Embedder
) -> Iterator[Stores]:
    made = Stores(tmp_path_factory.mktemp("dashboard"), simulators, embedder)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest, stores: Stores) -> Filled:
    """A store filled by the real pipeline (shared by the tests of one backend: treat it as read-mostly)."""
    return stores.get(request.param)


@pytest.fixture
def dashboard_env(filled: Filled, monkeypatch: pytest.MonkeyPatch) -> Filled:
    """The process environment a dashboard on `filled` runs with: its config file and nothing else."""
    for name in list(os.environ):
        if name.startswith("SHADOWGATE_") and not name.startswith("SHADOWGATE_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SHADOWGATE_CONFIG", str(filled.config))
    return filled
