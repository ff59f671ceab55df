"""Clinicians' reviews of flagged pairs: each critical clinical flag marked a real difference or a scorer
false alarm, by a named person, with a note; every mark is also an audit entry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, Select, and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel

from shadowgate.crypto import Cipher
from store.audit import AUDIT, append
from store.models import PAIRS, SCORES, table, utc_field
from store.payloads import load_findings, load_payload

Mark = Literal["real", "false_alarm"]
MARKS: tuple[Mark, ...] = ("real", "false_alarm")


class ReviewError(ValueError):
    """A review that cannot be recorded; the message is one sentence for the user."""


class ReviewRow(SQLModel, table=True):
    """The latest mark on one pair's critical flag (the audit log keeps every mark, in order)."""

    __tablename__ = "reviews"

    pair_key: str = Field(primary_key=True, foreign_key="pairs.key", ondelete="CASCADE")
    role: str = Field(primary_key=True)  # "candidate"
    mark: str  # one of MARKS
    actor: str
    reviewed_at: datetime = utc_field()


REVIEWS = table(ReviewRow)


@dataclass(frozen=True)
class Flagged:
    """A pair with a critical clinical flag, in the queue until someone reviews it."""

    key: str
    tenant: str
    route: str
    captured_at: datetime


def mark(
    engine: Engine,
    pair_key: str,
    verdict: str,
    *,
    by: str,
    note: str,
    at: datetime | None = None,
    replace: bool = True,
) -> None:
    """Record a person's mark on a flagged pair, replacing an earlier one, and append it to the audit log.
    Refused in one sentence: an unknown mark, no name, no note, an unknown pair, a pair with no flag, and
    with `replace=False` a pair someone has marked already (a queue's reviewer who was overtaken)."""
    if verdict not in MARKS:
        raise ReviewError(f"a review marks a flag 'real' or 'false_alarm', not {verdict!r}")
    if not by.strip():
        raise ReviewError("a review needs the name of the person who made it")
    if not note.strip():
        raise ReviewError("a review needs a note saying why")
    with engine.connect() as conn:
        row = conn.execute(
            select(
                PAIRS.c.tenant,
                PAIRS.c.route,
                SCORES.c.clinical_ok,
                REVIEWS.c.mark,
                REVIEWS.c.actor,
                REVIEWS.c.reviewed_at,
            )
            .select_from(
                PAIRS.outerjoin(
                    SCORES, and_(SCORES.c.pair_key == PAIRS.c.key, SCORES.c.role == "candidate")
                ).outerjoin(REVIEWS, and_(REVIEWS.c.pair_key == PAIRS.c.key, REVIEWS.c.role == "candidate"))
            )
            .where(PAIRS.c.key == pair_key)
        ).first()
    if row is None:
        raise ReviewError(f"there is no pair {pair_key!r} in the store (purged, or never scored)")
    if row.clinical_ok != 0.0:
        raise ReviewError(f"pair {pair_key!r} has no critical clinical flag to review")
    if not replace and row.mark is not None:
        raise ReviewError(
            f"pair {pair_key!r} was already marked {row.mark.replace('_', ' ')} by {row.actor} "
            f"at {row.reviewed_at:%Y-%m-%d %H:%M} UTC"
        )
    when = (at or datetime.now(UTC)).astimezone(UTC)
    values = {
        "pair_key": pair_key,
        "role": "candidate",
        "mark": verdict,
        "actor": by.strip(),
        "reviewed_at": when,
    }
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(REVIEWS).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["pair_key", "role"],
        set_={"mark": verdict, "actor": by.strip(), "reviewed_at": when},
    )
    # The audit entry first: a mark the log does not hold must not count.
    append(
        engine,
        actor=by.strip(),
        action="review",
        tenant=row.tenant,
        route=row.route,
        reason=note.strip(),
        details={"pair": pair_key, "mark": verdict},
        at=when,
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def corpus_lines(engine: Engine, cipher: Cipher | None) -> Iterator[dict[str, Any]]:
    """Every reviewed pair whose answers are still stored, as a line of the clinical corpus
    (tests/data/clinical/): a false alarm is an equivalent pair, a real difference a different one with
    the critical contradictions the scorer found and the clinician confirmed. `lang` and `category` are
    left for a person to set before the line joins the corpus."""
    with engine.connect() as conn:
        rows = conn.execute(select(REVIEWS).order_by(REVIEWS.c.reviewed_at)).all()
    for row in rows:
        content = load_payload(engine, row.pair_key, cipher)
        if content is None or content.primary is None or content.candidate is None:
            continue
        expected = []
        if row.mark == "real":
            for role, found in load_findings(engine, row.pair_key, cipher):
                if role == "candidate" and found.kind == "critical_contradiction":
                    expected.append(
                        {
                            "kind": "contradiction",
                            "slot": found.where.split(":", 1)[0],
                            "severity": "critical",
                        }
                    )
        yield {
            "id": f"review-{row.pair_key}",
            "lang": "",
            "category": "",
            "label": "different" if row.mark == "real" else "equivalent",
            "primary": content.primary,
            "other": content.candidate,
            "expected": expected,
            "note": f"reviewed by {row.actor} on {row.reviewed_at:%Y-%m-%d}: {row.mark.replace('_', ' ')}",
        }


def marks(engine: Engine, keys: list[str]) -> dict[str, str]:
    """The latest mark of each of these pairs that has one."""
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            stmt = select(REVIEWS.c.pair_key, REVIEWS.c.mark).where(
                REVIEWS.c.pair_key.in_(chunk), REVIEWS.c.role == "candidate"
            )
            out.update({r.pair_key: r.mark for r in conn.execute(stmt)})
    return out


def _unreviewed(*columns: Any) -> Select[Any]:
    """Live pairs (replays never count for a verdict) with a critical clinical flag and no review yet."""
    return (
        select(*columns)
        .select_from(
            PAIRS.join(
                SCORES, and_(SCORES.c.pair_key == PAIRS.c.key, SCORES.c.role == "candidate")
            ).outerjoin(REVIEWS, and_(REVIEWS.c.pair_key == PAIRS.c.key, REVIEWS.c.role == "candidate"))
        )
        .where(SCORES.c.clinical_ok == 0.0, REVIEWS.c.pair_key.is_(None), PAIRS.c.replay.is_(None))
    )


def awaiting(engine: Engine) -> dict[tuple[str, str], int]:
    """How many critical clinical flags nobody has reviewed, per (tenant, route), counted in the database."""
    stmt = _unreviewed(PAIRS.c.tenant, PAIRS.c.route, func.count().label("flags")).group_by(
        PAIRS.c.tenant, PAIRS.c.route
    )
    with engine.connect() as conn:
        return {(r.tenant, r.route): int(r.flags) for r in conn.execute(stmt)}


def queue(
    engine: Engine, *, tenant: str | None = None, route: str | None = None, limit: int = 200
) -> list[Flagged]:
    """Pairs with a critical clinical flag and no review yet, oldest first."""
    stmt = (
        _unreviewed(PAIRS.c.key, PAIRS.c.tenant, PAIRS.c.route, PAIRS.c.captured_at)
        .order_by(PAIRS.c.captured_at)
        .limit(limit)
    )
    if tenant is not None:
        stmt = stmt.where(PAIRS.c.tenant == tenant)
    if route is not None:
        stmt = stmt.where(PAIRS.c.route == route)
    with engine.connect() as conn:
        return [Flagged(r.key, r.tenant, r.route, r.captured_at) for r in conn.execute(stmt)]


@dataclass(frozen=True)
class Reviewed:
    """A reviewed pair: its latest mark, who made it and when, and the note of that mark's audit entry."""

    key: str
    mark: str
    actor: str
    reviewed_at: datetime
    note: str | None


def reviewed(engine: Engine, *, tenant: str, route: str, limit: int = 200) -> list[Reviewed]:
    """One tenant x route's reviewed pairs, latest mark first, each with the note the audit log holds."""
    stmt = (
        select(REVIEWS.c.pair_key, REVIEWS.c.mark, REVIEWS.c.actor, REVIEWS.c.reviewed_at)
        .select_from(REVIEWS.join(PAIRS, PAIRS.c.key == REVIEWS.c.pair_key))
        .where(PAIRS.c.tenant == tenant, PAIRS.c.route == route, REVIEWS.c.role == "candidate")
        .order_by(REVIEWS.c.reviewed_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    notes = _notes(engine, tenant, route, {r.pair_key for r in rows})
    return [Reviewed(r.pair_key, r.mark, r.actor, r.reviewed_at, notes.get(r.pair_key)) for r in rows]


def _notes(engine: Engine, tenant: str, route: str, keys: set[str]) -> dict[str, str]:
    """The note of each pair's latest review entry in the audit log (the reviews table keeps no text)."""
    out: dict[str, str] = {}
    if not keys:
        return out
    stmt = (
        select(AUDIT.c.reason, AUDIT.c.details)
        .where(AUDIT.c.action == "review", AUDIT.c.tenant == tenant, AUDIT.c.route == route)
        .order_by(AUDIT.c.seq.desc())
    )
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            key = json.loads(row.details or "{}").get("pair")
            if key in keys and key not in out:
                out[key] = row.reason
                if len(out) == len(keys):
                    break
    return out
