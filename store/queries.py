"""Named read queries for the gate and the dashboard; every aggregate is computed by the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Integer,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)

from comparators.scoring import METRICS
from store.models import FINDINGS, PAIRS, SCORES, UNSCORED

ALL_REPLAYS = "*"
GroupKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class RouteStats:
    """One tenant and route over a window: volumes, failures, metric means, a few percentiles."""

    tenant: str
    route: str
    role: str  # the side the scores compare with the primary
    pairs: int
    scored: int  # pairs with a score row for `role`
    # A side failed when it has an error class, no status, or a 5xx status; a pair without a
    # candidate answer counts as a candidate failure, secondary failures count where one was asked.
    primary_errors: int
    candidate_errors: int
    secondary_errors: int
    means: dict[str, float | None] = field(default_factory=dict)  # every name in METRICS
    # "primary_total_ms", "<role>_total_ms", "semantic_similarity", "wer" → {q: value}; linear
    # interpolation between ranks (PostgreSQL's percentile_cont), NULLs left out.
    quantiles: dict[str, dict[float, float | None]] = field(default_factory=dict)

    @property
    def candidate_error_rate(self) -> float:
        return self.candidate_errors / self.pairs if self.pairs else 0.0


@dataclass(frozen=True, slots=True)
class WorstPair:
    key: str
    exchange_id: str
    captured_at: datetime
    value: float


@dataclass(frozen=True, slots=True)
class FindingCount:
    tenant: str
    route: str
    kind: str
    findings: int
    pairs: int  # distinct pairs with at least one finding of this kind


@dataclass(frozen=True, slots=True)
class UnscoredCount:
    tenant: str
    route: str
    count: int


def route_summary(
    engine: Engine,
    *,
    tenant: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    replay: str | None = None,
    role: str = "candidate",
    qs: Sequence[float] = (0.5, 0.95),
) -> list[RouteStats]:
    """Per tenant and route in [since, until): live pairs only unless `replay` names a run or is "*"."""
    if role not in ("candidate", "secondary"):
        raise ValueError(f"unknown role {role!r}")
    groups = [PAIRS.c.tenant, PAIRS.c.route]
    pair_where = window_filters(PAIRS, tenant=tenant, route=route, since=since, until=until, replay=replay)
    score_where = [
        *window_filters(SCORES, tenant=tenant, route=route, since=since, until=until, replay=replay),
        SCORES.c.role == role,
    ]
    score_groups = [SCORES.c.tenant, SCORES.c.route]

    volumes = (
        select(
            *groups,
            func.count().label("pairs"),
            func.count().filter(failed_side("primary")).label("primary_errors"),
            func.count().filter(failed_side("candidate")).label("candidate_errors"),
            func.count()
            .filter(and_(PAIRS.c.has_secondary, failed_side("secondary")))
            .label("secondary_errors"),
        )
        .where(*pair_where)
        .group_by(*groups)
        .order_by(*groups)
    )
    means = (
        select(
            *score_groups,
            func.count().label("scored"),
            *(func.avg(SCORES.c[name]).label(name) for name in METRICS),
        )
        .where(*score_where)
        .group_by(*score_groups)
    )
    with engine.connect() as conn:
        volume_rows = conn.execute(volumes).all()
        mean_rows = {(r.tenant, r.route): r for r in conn.execute(means)}
        quantiles = {
            "primary_total_ms": _quantiles(conn, PAIRS.c.primary_total_ms, PAIRS, pair_where, groups, qs),
            f"{role}_total_ms": _quantiles(conn, PAIRS.c[f"{role}_total_ms"], PAIRS, pair_where, groups, qs),
            "semantic_similarity": _quantiles(
                conn, SCORES.c.semantic_similarity, SCORES, score_where, score_groups, qs
            ),
            "wer": _quantiles(conn, SCORES.c.wer, SCORES, score_where, score_groups, qs),
        }

    stats = []
    empty = dict.fromkeys(qs)
    for v in volume_rows:
        group = (v.tenant, v.route)
        m = mean_rows.get(group)
        stats.append(
            RouteStats(
                tenant=v.tenant,
                route=v.route,
                role=role,
                pairs=v.pairs,
                scored=m.scored if m is not None else 0,
                primary_errors=v.primary_errors,
                candidate_errors=v.candidate_errors,
                secondary_errors=v.secondary_errors,
                means={name: _float(getattr(m, name, None)) for name in METRICS},
                quantiles={name: q.get(group, empty) for name, q in quantiles.items()},
            )
        )
    return stats


def metric_quantiles(
    engine: Engine,
    metric: str,
    qs: Sequence[float] = (0.5, 0.95, 0.99),
    *,
    tenant: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    replay: str | None = None,
    role: str = "candidate",
) -> dict[float, float | None]:
    """Percentiles of one metric over the filtered scores (linear interpolation, NULLs left out)."""
    column = SCORES.c[_metric(metric)]
    where = [
        *window_filters(SCORES, tenant=tenant, route=route, since=since, until=until, replay=replay),
        SCORES.c.role == role,
    ]
    with engine.connect() as conn:
        found = _quantiles(conn, column, SCORES, where, [], qs)
    return found.get((), dict.fromkeys(qs))


def worst_pairs(
    engine: Engine,
    tenant: str,
    route: str,
    metric: str,
    n: int = 10,
    *,
    ascending: bool,
    since: datetime | None = None,
    until: datetime | None = None,
    replay: str | None = None,
    role: str = "candidate",
) -> list[WorstPair]:
    """The `n` pairs with the lowest (`ascending=True`, e.g. similarity) or highest (e.g. wer) value."""
    column = SCORES.c[_metric(metric)]
    order = column.asc() if ascending else column.desc()
    stmt = (
        select(SCORES.c.pair_key, PAIRS.c.exchange_id, SCORES.c.captured_at, column.label("value"))
        .join(PAIRS, PAIRS.c.key == SCORES.c.pair_key)
        .where(
            *window_filters(SCORES, tenant=tenant, route=route, since=since, until=until, replay=replay),
            SCORES.c.role == role,
            column.is_not(None),
        )
        .order_by(order, SCORES.c.captured_at.desc(), SCORES.c.pair_key)
        .limit(n)
    )
    with engine.connect() as conn:
        return [WorstPair(r.pair_key, r.exchange_id, r.captured_at, r.value) for r in conn.execute(stmt)]


def findings_by_kind(
    engine: Engine,
    *,
    tenant: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    replay: str | None = None,
    role: str = "candidate",
) -> list[FindingCount]:
    """How many findings of each kind per tenant and route, most frequent first."""
    groups = [PAIRS.c.tenant, PAIRS.c.route, FINDINGS.c.kind]
    findings = func.count().label("findings")
    stmt = (
        select(*groups, findings, func.count(FINDINGS.c.pair_key.distinct()).label("pairs"))
        .join(PAIRS, PAIRS.c.key == FINDINGS.c.pair_key)
        .where(
            *window_filters(PAIRS, tenant=tenant, route=route, since=since, until=until, replay=replay),
            FINDINGS.c.role == role,
        )
        .group_by(*groups)
        .order_by(PAIRS.c.tenant, PAIRS.c.route, findings.desc(), FINDINGS.c.kind)
    )
    with engine.connect() as conn:
        return [FindingCount(r.tenant, r.route, r.kind, r.findings, r.pairs) for r in conn.execute(stmt)]


def unscored_counts(
    engine: Engine,
    *,
    tenant: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[UnscoredCount]:
    """Pairs sampled out per tenant and route, over the hour buckets that start in [since, until)."""
    groups = [UNSCORED.c.tenant, UNSCORED.c.route]
    where = []
    if tenant is not None:
        where.append(UNSCORED.c.tenant == tenant)
    if route is not None:
        where.append(UNSCORED.c.route == route)
    if since is not None:
        where.append(UNSCORED.c.hour >= since)
    if until is not None:
        where.append(UNSCORED.c.hour < until)
    stmt = (
        select(*groups, func.sum(UNSCORED.c.count).label("total"))
        .where(*where)
        .group_by(*groups)
        .order_by(*groups)
    )
    with engine.connect() as conn:
        return [UnscoredCount(r.tenant, r.route, int(r.total)) for r in conn.execute(stmt)]


def _metric(name: str) -> str:
    # Column names come only from METRICS: a caller's string never reaches SQL as an identifier.
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}")
    return name


def window_filters(
    t: Table,
    *,
    tenant: str | None,
    route: str | None,
    since: datetime | None,
    until: datetime | None,
    replay: str | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if tenant is not None:
        where.append(t.c.tenant == tenant)
    if route is not None:
        where.append(t.c.route == route)
    if since is not None:
        where.append(t.c.captured_at >= since)
    if until is not None:
        where.append(t.c.captured_at < until)
    # Replayed pairs never mix with live ones unless a caller asks by run id, or for all with "*".
    if replay is None:
        where.append(t.c.replay.is_(None))
    elif replay != ALL_REPLAYS:
        where.append(t.c.replay == replay)
    return where


def failed_side(side: str) -> ColumnElement[bool]:
    """The store's notion of a failed side: an error class, no status, or a 5xx."""
    status = PAIRS.c[f"{side}_status"]
    return or_(PAIRS.c[f"{side}_error"].is_not(None), status.is_(None), status >= 500)


def _quantiles(
    conn: Connection,
    value: ColumnElement[Any],
    source: FromClause,
    where: Iterable[ColumnElement[bool]],
    groups: Sequence[ColumnElement[Any]],
    qs: Sequence[float],
) -> dict[GroupKey, dict[float, float | None]]:
    """Percentiles of `value` per group, as percentile_cont: rank h = (n - 1) * q, linear between."""
    where = [*where, value.is_not(None)]
    if conn.dialect.name == "postgresql":
        stmt = (
            select(*groups, *(func.percentile_cont(literal(q)).within_group(value) for q in qs))
            .select_from(source)
            .where(*where)
            .group_by(*groups)
        )
    else:
        # SQLite has no percentile function: rank the values per group with window functions, then
        # pick the two ranks around h and interpolate, all in one query.
        ranked = (
            select(
                *groups,
                value.label("v"),
                func.row_number().over(partition_by=groups or None, order_by=value).label("rn"),
                func.count().over(partition_by=groups or None).label("n"),
            )
            .select_from(source)
            .where(*where)
            .subquery()
        )
        outer_groups = [ranked.c[g.key] for g in groups if g.key is not None]
        picks = []
        for q in qs:
            h = (ranked.c.n - 1) * literal(q)
            lo = cast(h, Integer)  # h >= 0, so truncation is floor
            x_lo = func.max(case((ranked.c.rn == lo + 1, ranked.c.v)))
            x_hi = func.coalesce(func.max(case((ranked.c.rn == lo + 2, ranked.c.v))), x_lo)
            picks.append(x_lo + func.max(h - lo) * (x_hi - x_lo))
        stmt = select(*outer_groups, *picks).group_by(*outer_groups)
    found: dict[GroupKey, dict[float, float | None]] = {}
    width = len(groups)
    for row in conn.execute(stmt):
        values = tuple(row)
        if all(v is None for v in values[width:]):
            continue  # no rows at all: an aggregate without GROUP BY still answers one row of NULLs
        found[values[:width]] = {q: _float(v) for q, v in zip(qs, values[width:], strict=True)}
    return found


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- The dashboard's queries (issue 6): the board's volumes and verdict history, the tenant page's
# --- distributions, one pair's record, replay runs. Aggregated here; no table comes into Python.


@dataclass(frozen=True, slots=True)
class PairVolume:
    tenant: str
    route: str
    pairs: int
    candidate_errors: int
    last_captured_at: datetime | None


def pair_volumes(
    engine: Engine,
    *,
    tenant: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    replay: str | None = None,
) -> list[PairVolume]:
    """Pairs, candidate failures and the newest capture time per tenant and route: the board's volumes."""
    groups = [PAIRS.c.tenant, PAIRS.c.route]
    stmt = (
        select(
            *groups,
            func.count().label("pairs"),
            func.count().filter(failed_side("candidate")).label("candidate_errors"),
            func.max(PAIRS.c.captured_at).label("last"),
        )
        .where(*window_filters(PAIRS, tenant=tenant, route=route, since=since, until=until, replay=replay))
        .group_by(*groups)
        .order_by(*groups)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [PairVolume(r.tenant, r.route, r.pairs, r.candidate_errors, r.last) for r in rows]


def metric_histogram(
    engine: Engine,
    metric: str,
    *,
    lo: float,
    hi: float,
    bins: int,
    tenant: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    replay: str | None = None,
    role: str = "candidate",
) -> list[int]:
    """Counts of a metric's values in `bins` equal bins over [lo, hi]; values outside go to the end bins."""
    if bins < 1 or not hi > lo:
        raise ValueError("a histogram needs bins >= 1 and hi > lo")
    column = SCORES.c[_metric(metric)]
    width = (hi - lo) / bins
    where = [
        *window_filters(SCORES, tenant=tenant, route=route, since=since, until=until, replay=replay),
        SCORES.c.role == role,
        column.is_not(None),
    ]
    with engine.connect() as conn:
        scaled = (column - literal(lo)) / literal(width)
        # floor on PostgreSQL (a cast there rounds); SQLite's cast truncates, which is floor for x >= 0.
        raw = func.floor(scaled) if conn.dialect.name == "postgresql" else cast(scaled, Integer)
        bucket = case((column < lo, 0), (column >= hi, bins - 1), else_=cast(raw, Integer)).label("bucket")
        stmt = select(bucket, func.count()).where(*where).group_by(bucket)
        counts = [0] * bins
        for b, n in conn.execute(stmt):
            counts[min(max(int(b), 0), bins - 1)] += int(n)
    return counts


LATENCY_COLUMNS = ("primary_total_ms", "candidate_total_ms", "primary_ttfb_ms", "candidate_ttfb_ms")


def latency_quantiles(
    engine: Engine,
    qs: Sequence[float],
    *,
    tenant: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    replay: str | None = None,
) -> dict[str, dict[float, float | None]]:
    """Percentiles of both sides' total time and time to first byte (TTFT of a stream), failed sides left out.

    With many `qs` (0.00, 0.02, ... 1.00) this is the empirical CDF, computed by the database."""
    base = window_filters(PAIRS, tenant=tenant, route=route, since=since, until=until, replay=replay)
    found: dict[str, dict[float, float | None]] = {}
    with engine.connect() as conn:
        for name in LATENCY_COLUMNS:
            side = name.split("_", 1)[0]
            where = [*base, ~failed_side(side)]
            found[name] = _quantiles(conn, PAIRS.c[name], PAIRS, where, [], qs).get((), dict.fromkeys(qs))
    return found


@dataclass(frozen=True, slots=True)
class PairRecord:
    """One pair as the store keeps it, without its clinical content: metadata, scores, finding counts."""

    key: str
    exchange_id: str
    tenant: str
    route: str
    replay: str | None
    captured_at: datetime
    paired_at: datetime | None
    scored_at: datetime
    # "primary", "candidate", "secondary" (where asked) -> status, error, total_ms, ttfb_ms, model, ...
    sides: dict[str, dict[str, Any]]
    # role -> metric -> value, the metrics that were measured
    scores: dict[str, dict[str, float]]
    # role -> finding kind -> how many
    findings: dict[str, dict[str, int]]


_SIDE_FIELDS = ("status", "error", "total_ms", "ttfb_ms", "model", "model_version", "gpu")


def pair_record(engine: Engine, key: str) -> PairRecord | None:
    """The metrics-only record of one pair by its key, or None."""
    with engine.connect() as conn:
        pair = conn.execute(select(PAIRS).where(PAIRS.c.key == key)).mappings().first()
        if pair is None:
            return None
        score_rows = conn.execute(select(SCORES).where(SCORES.c.pair_key == key)).mappings().all()
        kinds = conn.execute(
            select(FINDINGS.c.role, FINDINGS.c.kind, func.count())
            .where(FINDINGS.c.pair_key == key)
            .group_by(FINDINGS.c.role, FINDINGS.c.kind)
        ).all()
    sides = {
        side: {f: pair[f"{side}_{f}"] for f in _SIDE_FIELDS}
        for side in ("primary", "candidate", "secondary")
        if side != "secondary" or pair["has_secondary"]
    }
    scores = {row["role"]: {m: float(row[m]) for m in METRICS if row[m] is not None} for row in score_rows}
    findings: dict[str, dict[str, int]] = {}
    for role, kind, n in kinds:
        findings.setdefault(role, {})[kind] = int(n)
    return PairRecord(
        key=pair["key"],
        exchange_id=pair["exchange_id"],
        tenant=pair["tenant"],
        route=pair["route"],
        replay=pair["replay"],
        captured_at=pair["captured_at"],
        paired_at=pair["paired_at"],
        scored_at=pair["scored_at"],
        sides=sides,
        scores=scores,
        findings=findings,
    )


@dataclass(frozen=True, slots=True)
class ReplayRun:
    run_id: str
    pairs: int  # pairs of the run scored into the store so far
    candidate_errors: int
    tenants: int
    routes: int
    last_scored_at: datetime | None


def replay_runs(
    engine: Engine,
    *,
    run_id: str | None = None,
    tenant: str | None = None,
    route: str | None = None,
    limit: int = 50,
) -> list[ReplayRun]:
    """Replay runs with pairs in the store, newest first: how far each one's scoring has come."""
    last = func.max(PAIRS.c.scored_at)
    stmt = (
        select(
            PAIRS.c.replay,
            func.count().label("pairs"),
            func.count().filter(failed_side("candidate")).label("candidate_errors"),
            func.count(PAIRS.c.tenant.distinct()).label("tenants"),
            func.count(PAIRS.c.route.distinct()).label("routes"),
            last.label("last"),
        )
        .where(PAIRS.c.replay.is_not(None))
        .group_by(PAIRS.c.replay)
        .order_by(last.desc())
        .limit(limit)
    )
    if run_id is not None:
        stmt = stmt.where(PAIRS.c.replay == run_id)
    if tenant is not None:
        stmt = stmt.where(PAIRS.c.tenant == tenant)
    if route is not None:
        stmt = stmt.where(PAIRS.c.route == route)
    with engine.connect() as conn:
        return [
            ReplayRun(r.replay, r.pairs, r.candidate_errors, r.tenants, r.routes, r.last)
            for r in conn.execute(stmt)
        ]
