"""Cutover, rollback and the kill switch: change a tenant x route's mode in Redis, with an audit entry.

The sync API here is what `shadowgate cutover|rollback|modes|kill-switch` and the dashboard's buttons
call. Each takes settings whose `redis_url` is set (the CLI resolves the embedded server first).

Order of writes: the mode changes in Redis first, then the audit entry is appended. If the audit entry
cannot be written, a cutover (or turning the kill switch off) is undone in Redis and the error raised,
so nothing risky happens unrecorded; a rollback (or turning the kill switch on) stays in force, since
it is the safe direction, and the error is raised so the caller knows the entry is missing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from mirror.modes import (
    CUTOVER,
    KILL_FIELD,
    MIRROR,
    KillSwitch,
    ModeEntry,
    ModeStore,
    Snapshot,
    decode_kill,
    encode,
    field_for,
)
from mirror.streams import redis_client
from shadowgate.settings import RouteKind, Settings
from store.audit import append
from store.db import open_store
from store.verdicts import StoredVerdict, latest

ROUTES = tuple(k.value for k in RouteKind if k is not RouteKind.OTHER)
GO = "GO"

T = TypeVar("T")


class CutoverError(Exception):
    """A cutover, rollback or kill-switch request that cannot be carried out; one sentence for a person."""


@dataclass(frozen=True)
class ModeChange:
    """One tenant x route whose mode changed, and the audit entry that records it."""

    tenant: str
    route: str
    previous: str
    mode: str
    by: str
    reason: str
    verdict: str | None
    verdict_id: int | None
    forced: bool
    audit_seq: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Modes:
    """The current modes: every tenant x route not listed is in mirror."""

    version: int
    kill: KillSwitch | None
    entries: list[ModeEntry]

    @property
    def killed(self) -> bool:
        return self.kill is not None and self.kill.on

    def mode_of(self, tenant: str, route: str) -> str:
        for e in self.entries:
            if (e.tenant, e.route) == (tenant, route):
                return e.mode
        return MIRROR

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kill_switch": None if self.kill is None else _plain(self.kill),
            "modes": [_plain(e) for e in self.entries],
        }


def cutover(
    settings: Settings,
    *,
    tenant: str,
    route: str | None,
    by: str,
    reason: str,
    force: bool = False,
) -> list[ModeChange]:
    """Serve tenant x route (every route with a verdict, when `route` is None) from the candidate.

    Refused unless the latest verdict of each is GO and recent enough (`cutover.verdict_max_age_s`),
    or `force` with a reason. Routes already in cutover are left as they are (not in the result)."""
    by, reason = _who(by), reason.strip()
    _check_tenant(tenant)
    if force and not reason:
        raise CutoverError("a forced cutover needs a reason (--reason)")
    with open_store(settings.database_url) as engine:
        verdicts = {v.route: v for v in latest(engine, tenant=tenant, route=route)}
        routes = [_check_route(route)] if route is not None else sorted(verdicts)
        if not routes:
            raise CutoverError(f"no verdict for tenant {tenant} yet: name a route (--route) to force one")
        refusals = [why for r in routes if (why := _not_go(verdicts.get(r), settings, tenant, r))]
        if refusals and not force:
            raise CutoverError("cutover refused: " + "; ".join(refusals) + " (use --force with --reason)")
        now = time.time()
        entries = []
        for r in routes:
            v = verdicts.get(r)
            entries.append(
                ModeEntry(
                    tenant=tenant,
                    route=r,
                    mode=CUTOVER,
                    since=now,
                    by=by,
                    reason=reason or _go_reason(v),
                    verdict=None if v is None else v.status,
                    verdict_id=None if v is None else v.id,
                    forced=bool(refusals),
                    shadow_rate=settings.cutover.shadow_rate,
                )
            )
        return _run(lambda: _apply(settings, engine, entries, action="cutover", verdicts=verdicts))


def rollback(settings: Settings, *, tenant: str, route: str | None, by: str, reason: str) -> list[ModeChange]:
    """Return tenant x route (every route of the tenant in cutover, when None) to mirror."""
    by, reason = _who(by), reason.strip()
    _check_tenant(tenant)
    if not reason:
        raise CutoverError("a rollback needs a reason (--reason)")
    current = modes(settings)
    if route is not None:
        routes = [_check_route(route)]
    else:
        routes = sorted(e.route for e in current.entries if e.tenant == tenant and e.mode == CUTOVER)
    now = time.time()
    with open_store(settings.database_url) as engine:
        verdicts = {v.route: v for v in latest(engine, tenant=tenant, route=route)}
        entries = [
            ModeEntry(
                tenant=tenant,
                route=r,
                mode=MIRROR,
                since=now,
                by=by,
                reason=reason,
                verdict=verdicts[r].status if r in verdicts else None,
                verdict_id=verdicts[r].id if r in verdicts else None,
            )
            for r in routes
            if current.mode_of(tenant, r) == CUTOVER
        ]
        return _run(lambda: _apply(settings, engine, entries, action="rollback", verdicts=verdicts))


def modes(settings: Settings) -> Modes:
    """The modes as Redis holds them now."""

    async def read() -> Snapshot:
        async with _store(settings) as store:
            return await store.snapshot()

    snap = _run(read)
    entries = sorted(snap.entries.values(), key=lambda e: (e.tenant, e.route))
    return Modes(snap.version, snap.kill, entries)


def kill_switch(settings: Settings, on: bool, *, by: str, reason: str) -> KillSwitch:
    """Turn every tap's mirroring and cutover off (on=True: all served by the primary) or back on."""
    by, reason = _who(by), reason.strip()
    if not reason:
        raise CutoverError("the kill switch needs a reason (--reason)")
    state = KillSwitch(on=on, since=time.time(), by=by, reason=reason)

    async def flip() -> bytes:
        async with _store(settings) as store:
            _, before = await store.put_kill(state)
            return before

    before = _run(flip)
    previous = decode_kill(before)
    try:
        with open_store(settings.database_url) as engine:
            append(
                engine,
                actor=by,
                action="kill_switch",
                reason=reason,
                details={"on": on, "was_on": bool(previous and previous.on)},
            )
    except Exception:
        if not on:  # turning it off must not go unrecorded: put it back on
            _run(lambda: _restore(settings, KILL_FIELD, before, encode(state)))
        raise
    return state


def _not_go(v: StoredVerdict | None, settings: Settings, tenant: str, route: str) -> str | None:
    if v is None:
        return f"{tenant} / {route} has no verdict"
    if v.status != GO:
        return f"the latest verdict for {tenant} / {route} is {v.status.replace('_', ' ')} (#{v.id})"
    max_age = settings.cutover.verdict_max_age_s
    age = datetime.now(UTC).timestamp() - v.at.timestamp()
    if max_age and age > max_age:
        return (
            f"the GO verdict for {tenant} / {route} (#{v.id}) is {age / 3600:.1f} h old; run the gate again"
        )
    return None


def _go_reason(v: StoredVerdict | None) -> str:
    return "the gate says GO" if v is None else f"verdict #{v.id} is {v.status.replace('_', ' ')}"


async def _apply(
    settings: Settings,
    engine: Engine,
    entries: Iterable[ModeEntry],
    *,
    action: str,
    verdicts: dict[str, StoredVerdict],
) -> list[ModeChange]:
    changes = []
    async with _store(settings) as store:
        seen = await store.snapshot()
        for entry in entries:
            key = (entry.tenant, entry.route)
            if seen.mode_of(*key) == entry.mode:
                continue  # already there: its entry (since, by, why) stays as it is
            before = seen.raw.get(key, b"")
            # Compare-and-set: a change made meanwhile (an automatic rollback) is never overwritten.
            applied, _ = await store.put(entry, expect=before, compare=True)
            if not applied:
                raise CutoverError(
                    f"the mode of {entry.tenant} / {entry.route} changed meanwhile; look and try again"
                )
            previous = _previous_mode(before)
            v = verdicts.get(entry.route)
            try:
                record = await asyncio.to_thread(
                    append,
                    engine,
                    actor=entry.by,
                    action=action,
                    tenant=entry.tenant,
                    route=entry.route,
                    reason=entry.reason,
                    details={
                        "from": previous,
                        "to": entry.mode,
                        "verdict": entry.verdict,
                        "verdict_id": entry.verdict_id,
                        "policy_version": None if v is None else v.policy_version,
                        "forced": entry.forced,
                        "shadow_rate": entry.shadow_rate,
                    },
                )
            except Exception:
                if entry.mode == CUTOVER:  # never serve from the candidate unrecorded
                    await store.restore(field_for(entry.tenant, entry.route), before, expect=encode(entry))
                raise
            changes.append(
                ModeChange(
                    tenant=entry.tenant,
                    route=entry.route,
                    previous=previous,
                    mode=entry.mode,
                    by=entry.by,
                    reason=entry.reason,
                    verdict=entry.verdict,
                    verdict_id=entry.verdict_id,
                    forced=entry.forced,
                    audit_seq=record.seq,
                )
            )
    return changes


def _previous_mode(before: bytes) -> str:
    if not before:
        return MIRROR
    try:
        return str(json.loads(before).get("mode", MIRROR))
    except ValueError:
        return MIRROR


async def _restore(settings: Settings, name: str, value: bytes, expect: bytes) -> bool:
    async with _store(settings) as store:
        return await store.restore(name, value, expect=expect)


@contextlib.asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[ModeStore]:
    if not settings.redis_url:
        raise CutoverError("modes live in Redis: set SHADOWGATE_REDIS_URL (the CLI finds the embedded one)")
    redis = redis_client(settings.redis_url)
    try:
        yield ModeStore(redis, settings.stream_prefix)
    finally:
        await redis.aclose()


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code: on this thread, or on a fresh one when a loop is already running
    here (the dashboard, a test)."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _who(by: str) -> str:
    by = by.strip()
    if not by:
        raise CutoverError("say who makes the change (--by)")
    return by


def _check_tenant(tenant: str) -> None:
    if not tenant or "|" in tenant or len(tenant) > 64:
        raise CutoverError(f"not a tenant id: {tenant[:70]!r}")


def _check_route(route: str) -> str:
    if route not in ROUTES:
        raise CutoverError(f"unknown route {route!r}; one of {', '.join(ROUTES)}")
    return route


def _plain(value: ModeEntry | KillSwitch) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(encode(value))
    return out


def command_main(
    settings: Settings,
    command: str,
    *,
    tenant: str | None = None,
    route: str | None = None,
    by: str = "",
    reason: str = "",
    force: bool = False,
    as_json: bool = False,
    switch: str | None = None,
) -> int:
    """Blocking entry of `shadowgate cutover|rollback|modes|kill-switch`: 0 done, 1 refused."""
    try:
        if command == "modes":
            current = modes(settings)
            print(json.dumps(current.as_dict(), indent=2) if as_json else modes_table(current))
            return 0
        if command == "kill-switch":
            if switch == "status":
                current = modes(settings)
                print(json.dumps(current.as_dict()["kill_switch"]) if as_json else _kill_line(current.kill))
                return 0
            state = kill_switch(settings, switch == "on", by=by, reason=reason)
            print(_kill_line(state))
            return 0
        assert tenant is not None
        if command == "cutover":
            changes = cutover(settings, tenant=tenant, route=route, by=by, reason=reason, force=force)
        else:
            changes = rollback(settings, tenant=tenant, route=route, by=by, reason=reason)
    except CutoverError as exc:
        print(f"shadowgate: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps([c.as_dict() for c in changes], indent=2))
    elif not changes:
        print(f"nothing to change: {tenant} / {route or 'every route'} is already in {command_mode(command)}")
    for c in changes if not as_json else []:
        basis = f"verdict #{c.verdict_id} {c.verdict}" if c.verdict_id is not None else "no verdict"
        forced = ", forced" if c.forced else ""
        print(
            f"{c.tenant} / {c.route}: {c.previous} -> {c.mode} ({basis}{forced}; audit entry #{c.audit_seq})"
        )
    if command == "cutover" and changes and modes(settings).killed:
        print(
            "note: the kill switch is ON; the primary serves everything until it is turned off",
            file=sys.stderr,
        )
    return 0


def command_mode(command: str) -> str:
    return CUTOVER if command == "cutover" else MIRROR


def modes_table(current: Modes) -> str:
    lines = [_kill_line(current.kill), ""]
    if not current.entries:
        lines.append("every tenant x route is in mirror (nothing was ever cut over)")
        return "\n".join(lines)
    lines.append(f"{'tenant':<20} {'route':<7} {'mode':<8} {'since (UTC)':<20} {'by':<26} why")
    for e in current.entries:
        since = datetime.fromtimestamp(e.since, UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{e.tenant:<20} {e.route:<7} {e.mode:<8} {since:<20} {e.by:<26} {e.reason}")
    return "\n".join(lines)


def _kill_line(kill: KillSwitch | None) -> str:
    if kill is None or not kill.on:
        return "kill switch: off" + ("" if kill is None else f" (turned off by {kill.by}: {kill.reason})")
    since = datetime.fromtimestamp(kill.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"kill switch: ON since {since}, by {kill.by}: {kill.reason} (the primary serves everything)"
