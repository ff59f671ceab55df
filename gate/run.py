"""`shadowgate gate`: judge every tenant x route in the window, store and audit the verdicts, report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from gate.collect import collect, judged_groups
from gate.judge import judge
from gate.policy import Policy, load_policy
from shadowgate.settings import ConfigError, Settings
from store.audit import append, entries
from store.db import open_store
from store.verdicts import latest, save_verdict

# Exit codes: every judged tenant x route GO; any NO-GO; otherwise HOLD or INSUFFICIENT DATA (2 is usage).
EXIT_GO, EXIT_NO_GO, EXIT_UNDECIDED = 0, 1, 3


@dataclass(frozen=True)
class GateRun:
    policy_version: str
    verdicts: list[dict[str, Any]]

    @property
    def exit_code(self) -> int:
        statuses = {v["status"] for v in self.verdicts}
        if "NO_GO" in statuses:
            return EXIT_NO_GO
        if statuses and statuses == {"GO"}:
            return EXIT_GO
        return EXIT_UNDECIDED


def evaluate(
    engine: Engine,
    policy: Policy,
    *,
    tenant: str | None = None,
    route: str | None = None,
    now: datetime | None = None,
    record: bool = True,
) -> GateRun:
    """Judge each tenant x route with live pairs in its policy window; store and audit each verdict."""
    now = now or datetime.now(UTC)
    if record:
        note_policy(engine, policy, at=now)
    verdicts = []
    for t, r in judged_groups(engine, since=None, tenant=tenant, route=route):
        route_policy = policy.for_(t, r)
        # Looks are counted per tenant x route under its own effective policy, so editing one tenant's
        # limits restarts only that tenant's alpha budget (and every policy change is audited).
        samples = collect(
            engine, t, r, since=_since(now, route_policy.window_s), policy_version=route_policy.version
        )
        if samples.n == 0:
            continue  # nothing live in this tenant x route's own window
        verdict = judge(samples, route_policy).to_dict()
        if record:
            save_verdict(engine, verdict, at=now)
            append(
                engine,
                actor="gate",
                action="verdict",
                tenant=t,
                route=r,
                reason="; ".join(verdict["reasons"])[:2000] or verdict["status"],
                details={
                    "status": verdict["status"],
                    "policy_version": verdict["policy_version"],
                    "n": verdict["n"],
                    "look": verdict["look"],
                },
                at=now,
            )
        verdicts.append(verdict)
    return GateRun(policy.version, verdicts)


def note_policy(engine: Engine, policy: Policy, *, at: datetime | None = None) -> bool:
    """Audit the policy the gate judges by, the first time it is used: a changed policy is on record
    (it also restarts the looks, so an unrecorded change could buy a cheap GO)."""
    last = entries(engine, action="policy_change", limit=1)
    if last and json.loads(last[0].details).get("version") == policy.version:
        return False
    append(
        engine,
        actor="gate",
        action="policy_change",
        reason=f"the gate judges by policy {policy.version}",
        details={"version": policy.version, "policy": policy.model_dump(mode="json")},
        at=at,
    )
    return True


def decide(engine: Engine, *, tenant: str, route: str, decision: str, by: str, reason: str) -> None:
    """A person's decision on a tenant x route (approve or hold), with who and why, into the audit log."""
    if decision not in ("approve", "hold"):
        raise ValueError(f"unknown decision {decision!r}")
    if not by.strip() or not reason.strip():
        raise ConfigError("a decision needs who (--by) and why (--reason)")
    current = latest(engine, tenant=tenant, route=route)
    append(
        engine,
        actor=by.strip(),
        action=decision,
        tenant=tenant,
        route=route,
        reason=reason.strip(),
        details={
            "verdict": current[0].status if current else None,
            "verdict_id": current[0].id if current else None,
            "policy_version": current[0].policy_version if current else None,
        },
    )


def _since(now: datetime, window_s: float) -> datetime | None:
    return datetime.fromtimestamp(now.timestamp() - window_s, tz=UTC) if window_s > 0 else None


def run(
    settings: Settings,
    *,
    policy_path: Path | None,
    tenant: str | None,
    route: str | None,
    as_json: bool,
) -> int:
    """Blocking entry of `shadowgate gate`."""
    policy = load_policy(policy_path)
    with open_store(settings.database_url) as engine:
        result = evaluate(engine, policy, tenant=tenant, route=route)
    if as_json:
        print(json.dumps({"policy_version": result.policy_version, "verdicts": result.verdicts}, indent=2))
    else:
        print(table(result))
    return result.exit_code


def table(result: GateRun) -> str:
    if not result.verdicts:
        return "No live pairs in the judged window: nothing to decide yet."
    lines = [f"{'tenant':<18} {'route':<7} {'verdict':<18} {'pairs':>6}  why", "-" * 100]
    for v in result.verdicts:
        reasons = v["reasons"] or ["every metric within its limit"]
        lines.append(f"{v['tenant']:<18} {v['route']:<7} {v['status']:<18} {v['n']:>6}  {reasons[0]}")
        lines.extend(f"{'':<52}{reason}" for reason in reasons[1:])
    lines.append("")
    lines.append(f"policy {result.policy_version}; exit code {result.exit_code}")
    return "\n".join(lines)


def decide_main(settings: Settings, *, tenant: str, route: str, decision: str, by: str, reason: str) -> int:
    """Blocking entry of `shadowgate decide`."""
    with open_store(settings.database_url) as engine:
        decide(engine, tenant=tenant, route=route, decision=decision, by=by, reason=reason)
    print(f"recorded: {by} {decision}s {tenant} / {route}")
    return 0
