"""What a signed-in person can do from the dashboard; every action lands in the audit log with their name."""

from __future__ import annotations

import dataclasses
from typing import Any

from dashboard.auth import Identity
from dashboard.replays import ReplayJob, ReplayJobs, new_run_id
from gate.policy import load_policy
from gate.run import GateRun, decide, evaluate
from shadowgate.settings import Settings
from store import reviews
from store.audit import append
from store.db import open_store


class ActionError(Exception):
    """An action that cannot be done; one sentence for the person who tried."""


def _who(identity: Identity | None) -> Identity:
    if identity is None:
        raise ActionError("sign in first: every action is recorded with who took it")
    return identity


def _why(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ActionError("give a reason: it goes into the audit log with your name")
    return reason


def record_decision(
    settings: Settings, identity: Identity | None, *, tenant: str, route: str, decision: str, reason: str
) -> None:
    """Approve or hold a tenant x route (gate.run.decide writes the audit entry with the verdict)."""
    who, why = _who(identity), _why(reason)
    with open_store(settings.database_url) as engine:
        decide(engine, tenant=tenant, route=route, decision=decision, by=who.actor, reason=why)


def review_flag(
    settings: Settings,
    identity: Identity | None,
    *,
    pair_key: str,
    mark: str,
    note: str,
    replace: bool = True,
) -> None:
    """A clinician's mark on a pair's critical clinical flag (store.reviews writes the audit entry).
    `replace=False` (the Review page's queue) refuses a pair someone else has marked meanwhile."""
    who, why = _who(identity), _why(note)
    with open_store(settings.database_url) as engine:
        try:
            reviews.mark(engine, pair_key, mark, by=who.actor, note=why, replace=replace)
        except reviews.ReviewError as exc:
            raise ActionError(str(exc)) from exc


def review_of(settings: Settings, pair_key: str) -> str | None:
    """The pair's current mark, or None when nobody has reviewed it."""
    with open_store(settings.database_url) as engine:
        return reviews.marks(engine, [pair_key]).get(pair_key)


def run_gate(settings: Settings, identity: Identity | None) -> GateRun:
    """Judge every tenant x route now, as `shadowgate gate` would; who asked is in the log first."""
    who = _who(identity)
    policy = load_policy(settings.dashboard.policy)
    with open_store(settings.database_url) as engine:
        append(
            engine,
            actor=who.actor,
            action="gate_run",
            reason="asked the gate to judge every tenant x route from the dashboard",
            details={"policy_version": policy.version},
        )
        return evaluate(engine, policy)


def with_redis(settings: Settings) -> Settings:
    """Settings whose redis_url is set: the configured one, else the embedded server that a shadowgate
    process (tap, dispatch, demo) runs for this data folder."""
    if settings.redis_url:
        return settings
    from shadowgate.embedded_redis import running_url

    url = running_url(settings.data_dir)
    if url is None:
        raise ActionError(
            "no Redis: set SHADOWGATE_REDIS_URL, or start the tap or `shadowgate redis` for this data folder"
        )
    return settings.model_copy(update={"redis_url": url})


def cut_over(settings: Settings, identity: Identity | None, *, tenant: str, route: str, reason: str) -> None:
    """Serve the tenant x route from the candidate (refused unless its latest verdict is GO)."""
    from gate.cutover import CutoverError, cutover

    who, why = _who(identity), _why(reason)
    try:
        cutover(with_redis(settings), tenant=tenant, route=route, by=who.actor, reason=why)
    except CutoverError as exc:
        raise ActionError(str(exc)) from exc


def roll_back(settings: Settings, identity: Identity | None, *, tenant: str, route: str, reason: str) -> None:
    """Return the tenant x route to mirror mode: the primary serves it again."""
    from gate.cutover import CutoverError, rollback

    who, why = _who(identity), _why(reason)
    try:
        rollback(with_redis(settings), tenant=tenant, route=route, by=who.actor, reason=why)
    except CutoverError as exc:
        raise ActionError(str(exc)) from exc


def mode_of(settings: Settings, tenant: str, route: str) -> str | None:
    """The tenant x route's mode as the taps see it now (mirror, cutover); None without Redis."""
    from gate.cutover import modes

    try:
        return modes(with_redis(settings)).mode_of(tenant, route)
    except Exception:  # the board must render without Redis; the buttons say why they are off
        return None


def start_replay(
    jobs: ReplayJobs,
    settings: Settings,
    identity: Identity | None,
    *,
    tenant: str,
    route: str,
    since_ms: int | None,
    until_ms: int | None,
    speed: float,
    reason: str,
) -> ReplayJob:
    """Replay a tenant x route's captures in a window to the candidate, recorded in the audit log first."""
    who, why = _who(identity), _why(reason)
    if speed <= 0:
        raise ActionError("the speed must be positive")
    resolved = with_redis(settings)
    job = ReplayJob(
        run_id=new_run_id(),
        by=who.actor,
        tenant=tenant,
        route=route,
        since_ms=since_ms,
        until_ms=until_ms,
        speed=speed,
    )
    details: dict[str, Any] = {
        k: v for k, v in dataclasses.asdict(job).items() if k in ("run_id", "since_ms", "until_ms", "speed")
    }
    with open_store(settings.database_url) as engine:
        append(
            engine,
            actor=who.actor,
            action="replay_start",
            tenant=tenant,
            route=route,
            reason=why,
            details=details,
        )
    return jobs.start(resolved, job)
