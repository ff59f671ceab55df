"""Read what the judge needs from the store: the judged window's pairs of one tenant x route."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from comparators.scoring import METRICS
from gate.samples import Samples
from store.models import PAIRS, SCORES
from store.queries import failed_side, unscored_counts, window_filters
from store.reviews import marks
from store.verdicts import looks

# The newest pairs judged per tenant x route: enough for tight intervals, bounded in memory.
MAX_PAIRS = 20_000


def judged_groups(
    engine: Engine, *, since: datetime | None, tenant: str | None, route: str | None
) -> list[tuple[str, str]]:
    """The tenant x route combinations with live pairs in the window."""
    pairs = PAIRS
    stmt = (
        select(pairs.c.tenant, pairs.c.route)
        .where(*window_filters(pairs, tenant=tenant, route=route, since=since, until=None, replay=None))
        .group_by(pairs.c.tenant, pairs.c.route)
        .order_by(pairs.c.tenant, pairs.c.route)
    )
    with engine.connect() as conn:
        return [(r.tenant, r.route) for r in conn.execute(stmt)]


def collect(
    engine: Engine, tenant: str, route: str, *, since: datetime | None, policy_version: str
) -> Samples:
    pairs, scores = PAIRS, SCORES
    metric_cols = [scores.c[m] for m in METRICS]
    where = window_filters(pairs, tenant=tenant, route=route, since=since, until=None, replay=None)
    cand = scores.alias("cand")
    stmt = (
        select(
            pairs.c.key,
            pairs.c.primary_total_ms,
            pairs.c.candidate_total_ms,
            failed_side("candidate").label("candidate_failed"),
            failed_side("primary").label("primary_failed"),
            *[cand.c[m] for m in METRICS],
        )
        .select_from(pairs.outerjoin(cand, and_(cand.c.pair_key == pairs.c.key, cand.c.role == "candidate")))
        .where(*where)
        .order_by(pairs.c.captured_at.desc())
        .limit(MAX_PAIRS)
    )
    noise_stmt = (
        select(*metric_cols)
        .select_from(pairs.join(scores, and_(scores.c.pair_key == pairs.c.key, scores.c.role == "secondary")))
        .where(*where)
        .order_by(pairs.c.captured_at.desc())
        .limit(MAX_PAIRS)
    )
    keys: list[str] = []
    primary_ms: list[float] = []
    candidate_ms: list[float | None] = []
    candidate_failed: list[bool] = []
    primary_failed: list[bool] = []
    metrics: dict[str, list[float | None]] = {m: [] for m in METRICS}
    noise: dict[str, list[float | None]] = {m: [] for m in METRICS}
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            keys.append(row.key)
            primary_ms.append(float(row.primary_total_ms))
            candidate_ms.append(None if row.candidate_total_ms is None else float(row.candidate_total_ms))
            candidate_failed.append(bool(row.candidate_failed))
            primary_failed.append(bool(row.primary_failed))
            for m in METRICS:
                metrics[m].append(getattr(row, m))
        for row in conn.execute(noise_stmt):
            for m in METRICS:
                noise[m].append(getattr(row, m))
    left = sum(c.count for c in unscored_counts(engine, tenant=tenant, route=route, since=since, until=None))
    return Samples(
        tenant=tenant,
        route=route,
        keys=keys,
        primary_ms=primary_ms,
        candidate_ms=candidate_ms,
        candidate_failed=candidate_failed,
        primary_failed=primary_failed,
        metrics={m: v for m, v in metrics.items() if any(x is not None for x in v)},
        noise={m: v for m, v in noise.items() if any(x is not None for x in v)},
        unscored=left,
        looks=looks(engine, tenant, route, policy_version),
        reviews=marks(engine, keys),
    )
