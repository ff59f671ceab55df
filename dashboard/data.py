"""The dashboard's one data module: store queries behind Streamlit's caches, aggregates only.

Each `load_*` function takes an engine and does the work (the benchmark times these); the cached
function of the same name without `load_` is what pages call, keyed by the database URL. Clinical
text is never cached: `payload` reads it through store.payloads.load_payload on every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import streamlit as st
from sqlalchemy import Engine

from dashboard.cells import Board, build_board
from shadowgate.crypto import cipher_from
from shadowgate.settings import Settings
from store import audit, reviews
from store.db import init_db, make_engine
from store.payloads import load_payload
from store.queries import (
    ALL_REPLAYS,
    FindingCount,
    PairRecord,
    ReplayRun,
    RouteStats,
    WorstPair,
    findings_by_kind,
    latency_quantiles,
    metric_histogram,
    pair_record,
    pair_volumes,
    replay_runs,
    route_summary,
    unscored_counts,
    worst_pairs,
)
from store.records import Payload
from store.verdicts import StoredVerdict, latest

# Seconds a cached aggregate is reused: the board refreshes itself on `dashboard.refresh_s`.
TTL_S = 10
BOARD_WINDOW = timedelta(hours=24)
WINDOWS: dict[str, timedelta | None] = {
    "last hour": timedelta(hours=1),
    "last 6 hours": timedelta(hours=6),
    "last 24 hours": timedelta(hours=24),
    "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30),
    "all time": None,
}
QS = (0.5, 0.95, 0.99)
# The empirical CDF's points; p50, p95 and p99 among them, so one query serves the table and the plot.
CDF_POINTS = tuple(sorted({i / 50 for i in range(51)} | set(QS)))
HIST_BINS = 20
# Which distributions and worst lists a route has: (metric, label, lowest first?).
TEXT_ROUTES = frozenset({"chat", "reason", "vision"})
WORST: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "text": (
        ("semantic_similarity", "lowest similarity", True),
        ("fact_mismatches", "most fact mismatches", False),
        ("negation_flips", "flipped negations", False),
        ("json_differences", "most JSON field differences", False),
        ("latency_delta_ms", "slowest against the primary", False),
    ),
    "audio": (
        ("wer", "highest WER", False),
        ("fact_mismatches", "most fact mismatches", False),
        ("latency_delta_ms", "slowest against the primary", False),
    ),
    "embed": (
        ("embed_rank_correlation", "lowest rank correlation", True),
        ("latency_delta_ms", "slowest against the primary", False),
    ),
    "rerank": (
        ("rerank_kendall_tau", "lowest Kendall tau", True),
        ("latency_delta_ms", "slowest against the primary", False),
    ),
    "other": (("latency_delta_ms", "slowest against the primary", False),),
}
# Counts that only matter above zero: a "worst" list of pairs with none would mislead.
_POSITIVE_ONLY = frozenset({"fact_mismatches", "negation_flips", "json_differences"})


def route_family(route: str) -> str:
    return "text" if route in TEXT_ROUTES else route if route in WORST else "other"


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """One engine (and pool) per database for the whole server process; tables created if missing."""
    e = make_engine(url)
    init_db(e)
    return e


def engine_for(settings: Settings) -> Engine:
    return engine(settings.database_url)


# --- the board -----------------------------------------------------------------------------------


def load_board(e: Engine, tenants: Sequence[str] = (), *, now: datetime | None = None) -> Board:
    """The latest verdicts, yesterday's, and the last day's live pairs per tenant x route, as a grid."""
    now = now or datetime.now(UTC)
    return build_board(
        latest(e),
        latest(e, as_of=now - BOARD_WINDOW),
        pair_volumes(e, since=now - BOARD_WINDOW),
        tenants,
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def board(url: str, tenants: tuple[str, ...] = ()) -> Board:
    return load_board(engine(url), tenants)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def awaiting_review(url: str) -> dict[tuple[str, str], int]:
    """Critical clinical flags on live pairs that no clinician has marked yet, per tenant x route."""
    return reviews.awaiting(engine(url))


def review_queue(url: str, tenant: str, route: str, limit: int = 500) -> list[reviews.Flagged]:
    """One tenant x route's unreviewed flags, oldest first (not cached: a mark takes a pair out at once)."""
    return reviews.queue(engine(url), tenant=tenant, route=route, limit=limit)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def reviewed(url: str, tenant: str, route: str) -> list[reviews.Reviewed]:
    """One tenant x route's reviewed pairs, latest mark first, with who, when and the note."""
    return reviews.reviewed(engine(url), tenant=tenant, route=route)


# --- a tenant's routes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    lo: float
    hi: float
    counts: list[int]

    @property
    def edges(self) -> list[float]:
        width = (self.hi - self.lo) / len(self.counts)
        return [self.lo + i * width for i in range(len(self.counts))]


@dataclass(frozen=True)
class RouteDetail:
    tenant: str
    route: str
    window: str
    replay: str | None
    stats: RouteStats | None
    # Each side's total time and time to first byte at CDF_POINTS (p50, p95 and p99 among them).
    cdf: dict[str, dict[float, float | None]]
    histograms: dict[str, Histogram]  # "similarity", "similarity_noise", "wer"
    findings: list[FindingCount]
    unscored: int
    worst: dict[str, list[WorstPair]] = field(default_factory=dict)  # label -> pairs
    verdict: StoredVerdict | None = None


class _Scope(TypedDict):
    tenant: str
    route: str
    since: datetime | None
    until: datetime | None
    replay: str | None


def _since(window: str, now: datetime) -> datetime | None:
    span = WINDOWS.get(window)
    return None if span is None else now - span


def load_routes(e: Engine, tenant: str, window: str, replay: str | None = None) -> list[str]:
    """The routes this tenant has pairs on in the window (live, or the replay run)."""
    since = _since(window, datetime.now(UTC))
    return sorted({v.route for v in pair_volumes(e, tenant=tenant, since=since, replay=replay)})


@st.cache_data(ttl=TTL_S, show_spinner=False)
def routes(url: str, tenant: str, window: str, replay: str | None = None) -> list[str]:
    return load_routes(engine(url), tenant, window, replay)


def load_route_detail(
    e: Engine, tenant: str, route: str, window: str, replay: str | None = None, *, now: datetime | None = None
) -> RouteDetail:
    now = now or datetime.now(UTC)
    since = _since(window, now)
    scope = _Scope(tenant=tenant, route=route, since=since, until=None, replay=replay)
    stats = route_summary(e, role="candidate", qs=(), **scope)  # the percentiles come from the CDF below
    histograms: dict[str, Histogram] = {}
    means = stats[0].means if stats else {}
    if means.get("semantic_similarity") is not None:
        histograms["similarity"] = Histogram(
            0.0, 1.0, metric_histogram(e, "semantic_similarity", lo=0.0, hi=1.0, bins=HIST_BINS, **scope)
        )
        noise = metric_histogram(
            e, "semantic_similarity", lo=0.0, hi=1.0, bins=HIST_BINS, role="secondary", **scope
        )
        if any(noise):
            histograms["similarity_noise"] = Histogram(0.0, 1.0, noise)
    if means.get("wer") is not None:
        histograms["wer"] = Histogram(
            0.0, 1.0, metric_histogram(e, "wer", lo=0.0, hi=1.0, bins=HIST_BINS, **scope)
        )
    worst: dict[str, list[WorstPair]] = {}
    for metric, label, ascending in WORST[route_family(route)]:
        if means.get(metric) is None:
            continue
        found = worst_pairs(
            e, tenant, route, metric, 10, ascending=ascending, since=since, until=None, replay=replay
        )
        if metric in _POSITIVE_ONLY:
            found = [w for w in found if w.value > 0]
        if found:
            worst[label] = found
    verdicts = latest(e, tenant=tenant, route=route) if replay is None else []
    return RouteDetail(
        tenant=tenant,
        route=route,
        window=window,
        replay=replay,
        stats=stats[0] if stats else None,
        cdf=latency_quantiles(e, CDF_POINTS, **scope),
        histograms=histograms,
        findings=findings_by_kind(e, **scope),
        unscored=sum(u.count for u in unscored_counts(e, tenant=tenant, route=route, since=since))
        if replay is None
        else 0,
        worst=worst,
        verdict=verdicts[0] if verdicts else None,
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def route_detail(url: str, tenant: str, route: str, window: str, replay: str | None = None) -> RouteDetail:
    return load_route_detail(engine(url), tenant, route, window, replay)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def tenants(url: str) -> list[str]:
    """Every tenant with pairs (live or replayed) or a verdict."""
    e = engine(url)
    names = {v.tenant for v in pair_volumes(e, replay=ALL_REPLAYS)} | {v.tenant for v in latest(e)}
    return sorted(names)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def runs(url: str, tenant: str | None = None) -> list[ReplayRun]:
    """Replay runs with pairs in the store, newest first."""
    return replay_runs(engine(url), tenant=tenant)


def replay_progress(url: str, run_id: str) -> int:
    """Pairs of one replay run scored into the store so far (not cached: the Replay page watches it)."""
    return sum(r.pairs for r in replay_runs(engine(url), run_id=run_id))


# --- one pair ------------------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def pair(url: str, key: str) -> PairRecord | None:
    return pair_record(engine(url), key)


def payload(settings: Settings, key: str) -> Payload | None:
    """The pair's clinical content, read anew each time (never cached: it must not outlive a sign-out
    in a cache shared by every session)."""
    return load_payload(engine_for(settings), key, cipher_from(settings.encryption))


# --- the audit log -------------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def audit_entries(
    url: str, tenant: str | None = None, route: str | None = None, action: str | None = None, limit: int = 200
) -> list[dict[str, object]]:
    found = audit.entries(engine(url), tenant=tenant, route=route, action=action, limit=limit)
    return [e.model_dump() for e in found]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def audit_verify(url: str) -> audit.VerifyResult:
    return audit.verify(engine(url))


def audit_head(url: str) -> tuple[int, str] | None:
    return audit.head(engine(url))


def forget() -> None:
    """Drop every cached aggregate, after an action changed what they show."""
    st.cache_data.clear()
