"""Verdicts of the gate, stored with the policy version that produced them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Text, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from store.models import UTCDateTime


class VerdictRow(SQLModel, table=True):
    __tablename__ = "verdicts"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    tenant: str = Field(index=True)
    route: str = Field(index=True)
    status: str
    policy_version: str = Field(index=True)
    look: int
    n: int
    # The whole verdict (reasons, metrics with their statistics, worst pairs) as JSON.
    body: str = Field(sa_column=Column(Text, nullable=False))


@dataclass(frozen=True)
class StoredVerdict:
    id: int
    at: datetime
    tenant: str
    route: str
    status: str
    policy_version: str
    look: int
    body: dict[str, Any]


def save_verdict(engine: Engine, verdict: dict[str, Any], *, at: datetime | None = None) -> int:
    row = VerdictRow(
        at=at or datetime.now(UTC),
        tenant=verdict["tenant"],
        route=verdict["route"],
        status=verdict["status"],
        policy_version=verdict["policy_version"],
        look=int(verdict.get("look", 1)),
        n=int(verdict.get("n", 0)),
        body=json.dumps(verdict, sort_keys=True),
    )
    with engine.begin() as conn:
        result = conn.execute(VerdictRow.__table__.insert().values(**row.model_dump(exclude={"id"})))  # type: ignore[attr-defined]
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def looks(engine: Engine, tenant: str, route: str, policy_version: str) -> int:
    """How many verdicts this tenant x route already had under this policy (the judge's look count)."""
    t = VerdictRow.__table__  # type: ignore[attr-defined]
    stmt = (
        select(func.count())
        .select_from(t)
        .where(t.c.tenant == tenant, t.c.route == route, t.c.policy_version == policy_version)
    )
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def latest(
    engine: Engine,
    *,
    tenant: str | None = None,
    route: str | None = None,
    as_of: datetime | None = None,
) -> list[StoredVerdict]:
    """The newest verdict of every tenant x route (optionally one tenant or route), or the newest made
    at or before `as_of` (the board's "since yesterday")."""
    t = VerdictRow.__table__  # type: ignore[attr-defined]
    newest = select(t.c.tenant, t.c.route, func.max(t.c.id).label("id")).group_by(t.c.tenant, t.c.route)
    if as_of is not None:
        newest = newest.where(t.c.at <= as_of)
    if tenant is not None:
        newest = newest.where(t.c.tenant == tenant)
    if route is not None:
        newest = newest.where(t.c.route == route)
    ids = newest.subquery()
    stmt = select(t).join(ids, t.c.id == ids.c.id).order_by(t.c.tenant, t.c.route)
    with engine.connect() as conn:
        return [
            StoredVerdict(
                id=r.id,
                at=r.at,
                tenant=r.tenant,
                route=r.route,
                status=r.status,
                policy_version=r.policy_version,
                look=r.look,
                body=json.loads(r.body),
            )
            for r in conn.execute(stmt)
        ]
