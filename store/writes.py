"""Writes to the store: scored pairs in one idempotent transaction per batch, unscored counts, purges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from comparators.scoring import METRICS
from shadowgate.crypto import Cipher
from store.models import FINDINGS, PAIRS, PAYLOADS, SCORES, UNSCORED
from store.payloads import sealed_finding_row, sealed_payload_row
from store.records import ScoredPair, SideMeta

ROLES = ("candidate", "secondary")
SIDES = ("primary", "candidate", "secondary")
SIDE_FIELDS = ("status", "error", "total_ms", "ttfb_ms", "model", "model_version", "gpu")


def save_scored(engine: Engine, items: Sequence[ScoredPair], cipher: Cipher | None = None) -> int:
    """Write a batch of scored pairs in one transaction; returns how many pairs it wrote.

    With a cipher, the clinical cells (the payload's request and texts, the findings' excerpts) are
    sealed, each bound to its pair and column (store/payloads.py reads them back).

    Idempotent by `key`: writing an item again replaces its rows (pairs, scores and payloads are
    upserted, findings deleted and inserted again), so a worker retrying an entry duplicates nothing.
    A payload-less item leaves a stored payload as it is. Raises ValueError, before writing anything,
    on a metric or a role the store has no column or meaning for.
    """
    # The last write of a key wins within a batch, as it would across batches; sorting keeps the
    # locks of two overlapping batches in one order, so they cannot deadlock on PostgreSQL.
    latest = {item.key: item for item in items}
    batch = [latest[k] for k in sorted(latest)]
    if not batch:
        return 0
    scored_at = datetime.now(UTC)
    pairs = [_pair_row(item, scored_at) for item in batch]
    scores = [row for item in batch for row in _score_rows(item)]
    findings = [sealed_finding_row(row, cipher) for item in batch for row in _finding_rows(item)]
    payloads = [sealed_payload_row(_payload_row(i, scored_at), cipher) for i in batch if i.payload]

    with engine.begin() as conn:
        _upsert(conn, PAIRS, pairs, ["key"])
        conn.execute(delete(FINDINGS).where(FINDINGS.c.pair_key.in_(list(latest))))
        _upsert(conn, SCORES, scores, ["pair_key", "role"])
        if findings:
            conn.execute(insert(FINDINGS), findings)
        _upsert(conn, PAYLOADS, payloads, ["pair_key"])
    return len(batch)


def count_unscored(engine: Engine, tenant: str, route: str, at: datetime | float, n: int = 1) -> None:
    """Count `n` sampled-out pairs of tenant and route in the UTC hour of `at` (unix seconds or aware)."""
    if n <= 0:
        return
    when = _utc(at)
    hour = when.replace(minute=0, second=0, microsecond=0)
    with engine.begin() as conn:
        row = {"tenant": tenant, "route": route, "hour": hour, "count": n}
        if conn.dialect.name == "postgresql":
            pg = postgresql.insert(UNSCORED).values(row)
            conn.execute(
                pg.on_conflict_do_update(
                    index_elements=["tenant", "route", "hour"],
                    set_={"count": UNSCORED.c.count + pg.excluded["count"]},
                )
            )
        else:
            lite = sqlite.insert(UNSCORED).values(row)
            conn.execute(
                lite.on_conflict_do_update(
                    index_elements=["tenant", "route", "hour"],
                    set_={"count": UNSCORED.c.count + lite.excluded["count"]},
                )
            )


def purge_payloads(engine: Engine, older_than: datetime) -> int:
    """Delete the clinical rows (payloads and findings) of pairs captured before `older_than`.

    Pairs and scores stay, so aggregates over old traffic keep working. Retention counts from the
    capture, when the clinical data entered the system, not from when a copy was stored. Returns the
    number of rows deleted from both tables.
    """
    old = select(PAIRS.c.key).where(PAIRS.c.captured_at < older_than)
    with engine.begin() as conn:
        payloads = conn.execute(delete(PAYLOADS).where(PAYLOADS.c.pair_key.in_(old)))
        findings = conn.execute(delete(FINDINGS).where(FINDINGS.c.pair_key.in_(old)))
    return payloads.rowcount + findings.rowcount


def _upsert(conn: Connection, t: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(t)
        update = {c.name: pg.excluded[c.name] for c in t.columns if c.name not in keys}
        conn.execute(pg.on_conflict_do_update(index_elements=keys, set_=update), rows)
    elif conn.dialect.name == "sqlite":
        lite = sqlite.insert(t)
        update = {c.name: lite.excluded[c.name] for c in t.columns if c.name not in keys}
        conn.execute(lite.on_conflict_do_update(index_elements=keys, set_=update), rows)
    else:
        raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {conn.dialect.name}")


def _utc(ts: datetime | float) -> datetime:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise ValueError("the store takes timezone-aware datetimes only")
        return ts.astimezone(UTC)
    return datetime.fromtimestamp(ts, UTC)


def _pair_row(item: ScoredPair, scored_at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": item.key,
        "exchange_id": item.exchange_id,
        "tenant": item.tenant,
        "route": item.route,
        "replay": item.replay,
        "captured_at": _utc(item.captured_at),
        "paired_at": None if item.paired_at is None else _utc(item.paired_at),
        "scored_at": scored_at,
        "has_secondary": item.secondary is not None,
    }
    for name, side in zip(SIDES, (item.primary, item.candidate, item.secondary), strict=True):
        row.update(_side_columns(name, side))
    return row


def _side_columns(name: str, side: SideMeta | None) -> dict[str, Any]:
    return {f"{name}_{f}": None if side is None else getattr(side, f) for f in SIDE_FIELDS}


def _score_rows(item: ScoredPair) -> list[dict[str, Any]]:
    rows = []
    for role, result in item.scores.items():
        if role not in ROLES:
            raise ValueError(f"pair {item.key}: unknown role {role!r}")
        unknown = set(result.metrics) - METRICS.keys()
        if unknown:
            raise ValueError(f"pair {item.key}: metrics without a column: {sorted(unknown)}")
        row: dict[str, Any] = {
            "pair_key": item.key,
            "role": role,
            "tenant": item.tenant,
            "route": item.route,
            "captured_at": _utc(item.captured_at),
            "replay": item.replay,
        }
        # Every metric column is written, so a rescore leaves no stale value. NaN and infinities
        # (a ratio over a zero) become NULL: undefined, and they would poison every mean over them.
        for name in METRICS:
            value = result.metrics.get(name)
            row[name] = float(value) if value is not None and math.isfinite(value) else None
        rows.append(row)
    return rows


def _finding_rows(item: ScoredPair) -> list[dict[str, Any]]:
    return [
        {
            "pair_key": item.key,
            "role": role,
            "kind": f.kind,
            "where": f.where,
            "primary_excerpt": f.primary,
            "other_excerpt": f.other,
        }
        for role, result in item.scores.items()
        for f in result.findings
    ]


def _payload_row(item: ScoredPair, stored_at: datetime) -> dict[str, Any]:
    assert item.payload is not None
    return {
        "pair_key": item.key,
        "request": item.payload.request,
        "primary_text": item.payload.primary,
        "candidate_text": item.payload.candidate,
        "secondary_text": item.payload.secondary,
        "stored_at": stored_at,
    }
