"""Cutover through the tap with real Redis, two upstreams and the real openai SDK: who serves, fallback,
automatic rollback with its audit entry, one route at a time, replicas, the kill switch, the GO rule."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import Engine

from gate.cutover import CutoverError, cutover, kill_switch, modes, rollback
from mirror.dispatch import Dispatcher, candidate_session
from mirror.exchange import Exchange, decode_entry
from mirror.modes import AUTO_ROLLBACK_ACTOR
from mirror.streams import Streams
from mirror.tap import TapState
from shadowgate.settings import Cutover, Settings
from store.audit import entries, verify
from store.db import open_store
from store.verdicts import save_verdict
from tests.conftest import TEST_REDIS_URL
from tests.integration.cutover_kit import Side, tap, two_upstreams, until
from tests.integration.tapkit import free_port, read_captures

CLIENT_KEY = "sk-client-secret-never-to-the-candidate"
CANDIDATE_KEY = "sk-candidate-own-key"
PRIMARY_KEY = "sk-shadow-calls-to-the-primary"
LEAD = "eng-lead@clinic"


@dataclass
class World:
    primary_url: str
    primary: Side
    candidate_url: str
    candidate: Side
    prefix: str
    redis: Redis
    data_dir: Path

    def settings(self, **kw: Any) -> Settings:
        cut: dict[str, Any] = {
            "fallback_timeout_s": 0.5,
            "shadow_rate": 1.0,
            "primary_api_key": SecretStr(PRIMARY_KEY),
            "rollback_min_requests": 10,
            "rollback_check_s": 0.1,
            "modes_refresh_s": 0.1,
        }
        cut.update(kw.pop("cutover", {}))
        base: dict[str, Any] = {
            "primary_url": self.primary_url,
            "candidate_url": self.candidate_url,
            "candidate_api_key": SecretStr(CANDIDATE_KEY),
            "redis_url": TEST_REDIS_URL,
            "stream_prefix": self.prefix,
            "data_dir": self.data_dir,
            "cutover": Cutover(**cut),
        }
        base.update(kw)
        return Settings(**base)


@pytest.fixture
async def world(redis: Redis, stream_prefix: str, tmp_path: Path) -> AsyncIterator[World]:
    async with two_upstreams() as (p_url, primary, c_url, candidate):
        yield World(p_url, primary, c_url, candidate, stream_prefix, redis, tmp_path)


_clients: list[openai.AsyncOpenAI] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _clients:
        await _clients.pop().close()


def client(url: str, tenant: str, **headers: str) -> openai.AsyncOpenAI:
    c = openai.AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key=CLIENT_KEY,
        max_retries=0,
        timeout=60,
        default_headers={"X-Tenant-ID": tenant, **headers},
    )
    _clients.append(c)
    return c


async def ask(url: str, tenant: str, text: str = "nota SOAP: demam 38.5") -> str:
    answer = await client(url, tenant).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    return answer.choices[0].message.content or ""


async def ask_stream(url: str, tenant: str) -> str:
    stream = await client(url, tenant).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}], stream=True
    )
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])


async def embed(url: str, tenant: str) -> str:
    """Who answered an embedding: the primary's vectors start with 1, the candidate's with -1."""
    result = await client(url, tenant).embeddings.create(model="bge-m3", input="sakit kepala")
    return "primary" if result.data[0].embedding[0] > 0 else "candidate"


def give_verdict(settings: Settings, tenant: str, route: str, status: str = "GO", *, age_s: float = 0) -> int:
    with open_store(settings.database_url) as engine:
        return save_verdict(
            engine,
            {"tenant": tenant, "route": route, "status": status, "policy_version": "test", "n": 400},
            at=datetime.now(UTC) - timedelta(seconds=age_s),
        )


async def force(settings: Settings, tenant: str, route: str) -> None:
    await asyncio.to_thread(
        cutover, settings, tenant=tenant, route=route, by=LEAD, reason="test: no verdict needed", force=True
    )


async def in_mode(state: TapState, tenant: str, route: str, mode: str) -> None:
    assert state.modes is not None
    watcher = state.modes
    await until(lambda: watcher.snapshot.mode_of(tenant, route) == mode, what=f"{tenant}/{route} {mode}")


async def captures(world: World, n: int) -> list[Exchange]:
    found: list[Exchange] = []

    async def enough() -> bool:
        nonlocal found
        found = await read_captures(world.redis, world.prefix)
        return len(found) >= n

    deadline = time.monotonic() + 10
    while not await enough():
        assert time.monotonic() < deadline, f"{len(found)} captures, expected {n}"
        await asyncio.sleep(0.02)
    return found


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


async def test_a_cutover_tenant_is_served_by_the_candidate_and_others_are_not(world: World) -> None:
    s = world.settings()
    give_verdict(s, "klinik-a", "chat")
    async with tap(s) as (url, state):
        assert await ask(url, "klinik-a") == "primary: nota SOAP: demam 38.5"

        changes = await asyncio.to_thread(cutover, s, tenant="klinik-a", route=None, by=LEAD, reason="")
        assert [(c.tenant, c.route, c.previous, c.mode, c.verdict) for c in changes] == [
            ("klinik-a", "chat", "mirror", "cutover", "GO")
        ]
        await in_mode(state, "klinik-a", "chat", "cutover")

        assert await ask(url, "klinik-a") == "candidate: nota SOAP: demam 38.5"
        assert await ask_stream(url, "klinik-a") == "candidate: part"
        assert await ask(url, "klinik-b") == "primary: nota SOAP: demam 38.5"
        assert await embed(url, "klinik-a") == "primary"  # only chat was cut over
        assert world.candidate.count("chat") == 2
        assert world.primary.count("chat") == 2  # klinik-a before the cutover, klinik-b

        taken = await captures(world, 5)
    served = [c for c in taken if c.tenant == "klinik-a" and c.route == "chat" and c.served_by == "candidate"]
    assert len(served) == 2
    for c in served:
        assert c.primary.error == "pending"
        assert c.candidate is not None
        assert c.candidate.role == "candidate"
        assert c.candidate.status == 200

    # Dispatch asks the primary for the captures the candidate served (the shadow, with its own key)
    # and the candidate for the others; every pair keeps its roles, so scoring and the gate are unchanged.
    async with candidate_session(s) as session:
        dispatcher = Dispatcher(world.redis, s, session)
        stats = await dispatcher.run(asyncio.Event(), burst=True, grace_s=5)
    assert stats.paired == 5
    assert stats.primary_shadow == 2
    raw = await world.redis.xrange(Streams(world.prefix).pairs)
    pairs = [decode_entry(fields, dispatcher.cipher) for _, fields in raw]
    for p in pairs:
        assert p.primary.role == "primary"
        assert p.candidate is not None
        assert p.candidate.role == "candidate"
    shadowed = [p for p in pairs if p.served_by == "candidate"]
    assert len(shadowed) == 2
    for p in shadowed:
        assert p.primary.status == 200
        assert p.candidate is not None
        assert p.candidate.error is None
        texts = (p.primary.text or (p.primary.body.data or b"").decode(), p.candidate.text or "")
        assert "primary" in texts[0]
    # 2 served + shadow calls for the 2 mirrored chats (klinik-a before the cutover, klinik-b): the
    # answers the candidate served are never asked for again.
    assert world.candidate.count("chat") == 4
    shadow_calls = [h for r, h in world.primary.seen if h.get("x-shadowgate-shadow") == "1"]
    assert len(shadow_calls) == 2
    assert {h["authorization"] for h in shadow_calls} == {f"Bearer {PRIMARY_KEY}"}


async def test_the_clients_credentials_never_reach_the_candidate(world: World) -> None:
    s = world.settings()
    async with tap(s) as (url, state):
        await force(s, "klinik-a", "chat")
        await in_mode(state, "klinik-a", "chat", "cutover")
        c = client(url, "klinik-a", Cookie="session=client-cookie", **{"OpenAI-Organization": "org-client"})
        answer = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "candidate: hi"
        assert await ask(url, "klinik-b") == "primary: nota SOAP: demam 38.5"

    ((_, got),) = world.candidate.seen
    assert got["authorization"] == f"Bearer {CANDIDATE_KEY}"
    assert "cookie" not in got
    assert "openai-organization" not in got
    assert "x-shadowgate-shadow" not in got  # real traffic, not a shadow call
    assert CLIENT_KEY not in json.dumps(got)
    # The primary still gets the client's own key: it serves that client.
    assert world.primary.seen[-1][1]["authorization"] == f"Bearer {CLIENT_KEY}"


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("slow", "timeout"),
        ("500", "http_5xx"),
        ("429", "http_429"),
        ("reset", "reset"),
        ("refused", "connect_refused"),
    ],
)
async def test_a_failing_candidate_falls_back_to_the_primary(
    world: World, behaviour: str, reason: str
) -> None:
    if behaviour == "refused":
        s = world.settings(candidate_url=f"http://127.0.0.1:{free_port()}")
    else:
        world.candidate.behaviour["chat"] = behaviour
        s = world.settings()
    async with tap(s) as (url, state):
        await force(s, "klinik-a", "chat")
        await in_mode(state, "klinik-a", "chat", "cutover")

        started = time.monotonic()
        assert await ask(url, "klinik-a") == "primary: nota SOAP: demam 38.5"
        # The slow candidate would take 30 s; the answer came from the primary once 0.5 s had passed.
        assert time.monotonic() - started < 10

        assert state.cutover is not None
        assert dict(state.cutover.fallbacks) == {reason: 1}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/_shadowgate/healthz") as resp:
                health = await resp.json()
            async with session.get(f"{url}/_shadowgate/metrics") as resp:
                metrics = await resp.text()
        assert health["cutover"]["fallbacks"] == {reason: 1}
        assert health["cutover"]["in_cutover"] == ["klinik-a|chat"]
        assert f'shadowgate_tap_fallbacks_total{{reason="{reason}",route="chat"}} 1.0' in metrics
        (capture,) = await captures(world, 1)
    assert capture.served_by == "primary"
    assert capture.fallback == reason
    assert capture.primary.status == 200
    assert capture.candidate is not None
    assert capture.candidate.error == reason
    # The primary's side is timed from when it was asked, after the candidate's attempt ended.
    attempt_ended = capture.candidate.started_at + capture.candidate.total_ms / 1000
    assert capture.primary.started_at >= attempt_ended - 0.005
    # Dispatch pairs it as it is (the candidate's failure is what the gate must count), calling no one.
    async with candidate_session(s) as session:
        dispatcher = Dispatcher(world.redis, s, session)
        stats = await dispatcher.run(asyncio.Event(), burst=True, grace_s=5)
    assert (stats.paired, stats.primary_shadow, dict(stats.candidate_errors)) == (1, 0, {reason: 1})
    ((_, fields),) = await world.redis.xrange(Streams(world.prefix).pairs)
    pair = decode_entry(fields, dispatcher.cipher)
    assert pair.candidate is not None
    assert (pair.fallback, pair.candidate.error, pair.primary.status) == (reason, reason, 200)
    assert world.candidate.count("chat") == (0 if behaviour == "refused" else 1)
    assert world.primary.count("chat") == 1


async def test_an_error_burst_rolls_back_that_route_only_and_the_audit_chain_records_it(
    world: World, store_engine: Engine
) -> None:
    s = world.settings(db_url=url_of(store_engine))
    for route in ("chat", "embed"):
        save_verdict(
            store_engine, {"tenant": "klinik-a", "route": route, "status": "GO", "policy_version": "t"}
        )
    async with tap(s) as (url, state):
        changes = await asyncio.to_thread(cutover, s, tenant="klinik-a", route=None, by=LEAD, reason="pilot")
        assert sorted(c.route for c in changes) == ["chat", "embed"]
        await in_mode(state, "klinik-a", "chat", "cutover")
        await in_mode(state, "klinik-a", "embed", "cutover")
        assert await embed(url, "klinik-a") == "candidate"

        world.candidate.behaviour["chat"] = "500"
        for _ in range(12):  # every user still gets an answer: the primary's
            assert await ask(url, "klinik-a") == "primary: nota SOAP: demam 38.5"
        await in_mode(state, "klinik-a", "chat", "mirror")

        # Back in mirror, chat goes straight to the primary; embed is still served by the candidate.
        tried = world.candidate.count("chat")
        assert await ask(url, "klinik-a") == "primary: nota SOAP: demam 38.5"
        assert world.candidate.count("chat") == tried
        assert await embed(url, "klinik-a") == "candidate"
        await until(lambda: bool(entries(store_engine, action="rollback")), what="the rollback's audit entry")

    (entry,) = entries(store_engine, action="rollback")
    assert entry.actor == AUTO_ROLLBACK_ACTOR
    assert (entry.tenant, entry.route) == ("klinik-a", "chat")
    assert "error rate" in entry.reason
    details = json.loads(entry.details)
    assert details["rule"] == "error_rate"
    assert details["answers"] >= 10
    assert details["errors"] == details["answers"]
    assert details["error_rate_max"] == 0.05
    assert details["verdict"] == "GO"
    assert [e.action for e in reversed(entries(store_engine))] == ["cutover", "cutover", "rollback"]
    assert verify(store_engine).ok

    current = await asyncio.to_thread(modes, s)
    assert current.mode_of("klinik-a", "chat") == "mirror"
    assert current.mode_of("klinik-a", "embed") == "cutover"
    (chat,) = [e for e in current.entries if e.route == "chat"]
    assert chat.by == AUTO_ROLLBACK_ACTOR


async def test_rolling_back_one_route_leaves_the_tenants_other_routes_in_cutover(world: World) -> None:
    s = world.settings()
    async with tap(s) as (url, state):
        await force(s, "klinik-a", "chat")
        await force(s, "klinik-a", "embed")
        await in_mode(state, "klinik-a", "embed", "cutover")
        await in_mode(state, "klinik-a", "chat", "cutover")

        changes = await asyncio.to_thread(
            rollback, s, tenant="klinik-a", route="audio", by=LEAD, reason="nothing to roll back"
        )
        assert changes == []
        (change,) = await asyncio.to_thread(
            rollback, s, tenant="klinik-a", route="chat", by=LEAD, reason="Llama regression on SOAP notes"
        )
        assert (change.route, change.previous, change.mode) == ("chat", "cutover", "mirror")
        await in_mode(state, "klinik-a", "chat", "mirror")

        assert await ask(url, "klinik-a") == "primary: nota SOAP: demam 38.5"
        assert await embed(url, "klinik-a") == "candidate"
    with open_store(s.database_url) as engine:
        assert [(e.action, e.route) for e in reversed(entries(engine))] == [
            ("cutover", "chat"),
            ("cutover", "embed"),
            ("rollback", "chat"),
        ]
        assert verify(engine).ok


async def test_a_second_tap_replica_follows_a_mode_change(world: World) -> None:
    s = world.settings(cutover={"modes_refresh_s": 0.25})
    async with tap(s) as (url1, state1), tap(s) as (url2, state2):
        assert await ask(url2, "klinik-a") == "primary: nota SOAP: demam 38.5"
        await force(s, "klinik-a", "chat")
        await in_mode(state2, "klinik-a", "chat", "cutover")
        assert await ask(url2, "klinik-a") == "candidate: nota SOAP: demam 38.5"
        await in_mode(state1, "klinik-a", "chat", "cutover")
        assert await ask(url1, "klinik-a") == "candidate: nota SOAP: demam 38.5"

        await asyncio.to_thread(rollback, s, tenant="klinik-a", route=None, by=LEAD, reason="drill")
        await in_mode(state2, "klinik-a", "chat", "mirror")
        assert await ask(url2, "klinik-a") == "primary: nota SOAP: demam 38.5"


async def test_the_kill_switch_sends_everything_to_the_primary_and_captures_nothing(world: World) -> None:
    s = world.settings()
    async with tap(s) as (url, state):
        await force(s, "klinik-a", "chat")
        await in_mode(state, "klinik-a", "chat", "cutover")
        assert await ask(url, "klinik-a") == "candidate: nota SOAP: demam 38.5"
        await captures(world, 1)

        await asyncio.to_thread(kill_switch, s, True, by=LEAD, reason="drill: all traffic to the cloud")
        assert state.modes is not None
        watcher = state.modes
        await until(lambda: watcher.snapshot.killed, what="the kill switch")
        assert state.capture is not None
        submitted = state.capture.captured + state.capture.depth + sum(state.capture.dropped.values())
        assert await ask(url, "klinik-a") == "primary: nota SOAP: demam 38.5"
        assert await ask(url, "klinik-b") == "primary: nota SOAP: demam 38.5"
        assert await embed(url, "klinik-a") == "primary"
        assert state.capture.captured + state.capture.depth + sum(state.capture.dropped.values()) == submitted
        assert world.candidate.count("chat") == 1
        # Dispatch stops too: what was captured before stays in the stream, nothing is sent.
        async with candidate_session(s) as session:
            stats = await Dispatcher(world.redis, s, session).run(asyncio.Event(), burst=True, grace_s=5)
        assert (stats.read, stats.paired) == (0, 0)
        assert world.primary.count("chat") == 2

        await asyncio.to_thread(kill_switch, s, False, by=LEAD, reason="drill over")
        await until(lambda: not watcher.snapshot.killed, what="the kill switch off")
        assert await ask(url, "klinik-a") == "candidate: nota SOAP: demam 38.5"
    with open_store(s.database_url) as engine:
        kills = [json.loads(e.details)["on"] for e in reversed(entries(engine, action="kill_switch"))]
        assert kills == [True, False]


async def test_cutover_needs_a_current_go_verdict_or_force_with_a_reason(
    world: World, store_engine: Engine
) -> None:
    s = world.settings(db_url=url_of(store_engine))

    def go(**kw: Any) -> list[Any]:
        args: dict[str, Any] = {"tenant": "klinik-a", "route": "chat", "by": LEAD, "reason": "", **kw}
        return cutover(s, **args)

    with pytest.raises(CutoverError, match="no verdict"):
        await asyncio.to_thread(go)
    hold = save_verdict(
        store_engine, {"tenant": "klinik-a", "route": "chat", "status": "HOLD", "policy_version": "t"}
    )
    with pytest.raises(CutoverError, match=f"HOLD \\(#{hold}\\)"):
        await asyncio.to_thread(go)
    with pytest.raises(CutoverError, match="needs a reason"):
        await asyncio.to_thread(go, force=True)
    old = datetime.now(UTC) - timedelta(days=2)
    save_verdict(
        store_engine, {"tenant": "klinik-a", "route": "embed", "status": "GO", "policy_version": "t"}, at=old
    )
    with pytest.raises(CutoverError, match="old"):
        await asyncio.to_thread(go, route="embed")
    assert (await asyncio.to_thread(modes, s)).entries == []
    assert entries(store_engine) == []

    (forced,) = await asyncio.to_thread(go, force=True, reason="the clinic asked; HOLD is on ROUGE only")
    assert (forced.verdict, forced.verdict_id, forced.forced) == ("HOLD", hold, True)
    good = save_verdict(
        store_engine, {"tenant": "klinik-a", "route": "embed", "status": "GO", "policy_version": "t"}
    )
    (fine,) = await asyncio.to_thread(go, route="embed")
    assert (fine.verdict, fine.verdict_id, fine.forced) == ("GO", good, False)
    assert await asyncio.to_thread(go, route="embed") == []  # already in cutover: nothing changes

    audit = list(reversed(entries(store_engine, action="cutover")))
    assert [(e.route, e.actor) for e in audit] == [("chat", LEAD), ("embed", LEAD)]
    assert json.loads(audit[0].details)["forced"] is True
    assert json.loads(audit[0].details)["verdict_id"] == hold
    assert json.loads(audit[1].details)["verdict"] == "GO"
    assert verify(store_engine).ok


async def test_the_cli_refuses_without_go_and_records_a_forced_cutover(
    tmp_path: Path, stream_prefix: str, redis: Redis
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_REDIS_URL": TEST_REDIS_URL,
        "SHADOWGATE_STREAM_PREFIX": stream_prefix,
        "SHADOWGATE_DATA_DIR": str(tmp_path),
    }

    async def sg(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "shadowgate.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refused = await sg("cutover", "klinik-a", "--route", "chat", "--by", LEAD)
    assert refused.returncode == 1
    assert "refused" in refused.stderr
    forced = await sg(
        "cutover", "klinik-a", "--route", "chat", "--by", LEAD, "--force", "--reason", "pilot clinic"
    )
    assert forced.returncode == 0, forced.stderr
    assert "mirror -> cutover" in forced.stdout
    shown = await sg("modes", "--json")
    assert shown.returncode == 0, shown.stderr
    (entry,) = json.loads(shown.stdout)["modes"]
    assert (entry["tenant"], entry["route"], entry["mode"], entry["by"]) == (
        "klinik-a",
        "chat",
        "cutover",
        LEAD,
    )
