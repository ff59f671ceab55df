"""What the board says about each tenant x route: verdict, decisive metric, trend since yesterday (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.queries import PairVolume
from store.verdicts import StoredVerdict

LABELS = {"GO": "GO", "HOLD": "HOLD", "NO_GO": "NO-GO", "INSUFFICIENT_DATA": "INSUFFICIENT DATA"}
# Streamlit's markdown colours, for badges.
COLORS = {"GO": "green", "HOLD": "orange", "NO_GO": "red", "INSUFFICIENT_DATA": "gray"}
# Better is higher: a NO-GO that became INSUFFICIENT DATA (a new policy, a quiet day) is still progress.
_RANK = {"NO_GO": 0, "INSUFFICIENT_DATA": 1, "HOLD": 2, "GO": 3}
ROUTE_ORDER = ("audio", "chat", "reason", "vision", "embed", "rerank", "other")

METRIC_LABELS = {
    "error_rate": "error rate",
    "candidate_p95_ms": "p95 latency",
    "semantic_similarity": "similarity",
    "rouge_l_f1": "ROUGE-L",
    "wer": "WER",
    "cer": "CER",
    "fact_mismatch_rate": "fact mismatches",
    "embed_rank_correlation": "rank correlation",
    "rerank_top1_match": "top-1 agreement",
}
HIGHER_IS_BETTER = frozenset(
    {"semantic_similarity", "rouge_l_f1", "embed_rank_correlation", "rerank_top1_match"}
)
_RATES = frozenset({"error_rate", "fact_mismatch_rate", "rerank_top1_match"})
# The judge's statuses, worst first: the decisive metric of a verdict is its worst one.
_SEVERITY = {"FAIL": 0, "MARGINAL": 1, "PASS": 2, "NO_DATA": 3}


@dataclass(frozen=True)
class Decisive:
    """The metric that decided a verdict (or, for a GO, the one closest to its limit), in words."""

    name: str
    label: str
    status: str  # the judge's: PASS, FAIL, MARGINAL, NO_DATA
    text: str  # "fact mismatches 12.5 % vs ≤ 2.0 %"


@dataclass(frozen=True)
class Trend:
    arrow: str  # "▲", "▼", "=", "new"
    text: str


@dataclass(frozen=True)
class Cell:
    tenant: str
    route: str
    status: str | None  # the verdict; None when the gate has not judged this tenant x route
    n: int  # pairs the verdict judged
    decisive: Decisive | None
    trend: Trend
    pairs: int  # live pairs in the board's window
    verdict_at: datetime | None = None
    verdict_id: int | None = None
    reasons: list[str] = field(default_factory=list)
    worst: dict[str, list[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS.get(self.status, self.status) if self.status else "NOT JUDGED"

    @property
    def color(self) -> str:
        return COLORS.get(self.status or "", "gray")


@dataclass(frozen=True)
class Board:
    tenants: list[str]
    routes: list[str]
    cells: dict[tuple[str, str], Cell]

    def cell(self, tenant: str, route: str) -> Cell | None:
        return self.cells.get((tenant, route))

    def counts(self) -> dict[str, int]:
        """How many tenant x routes are in each verdict (NOT JUDGED included)."""
        out: dict[str, int] = {}
        for c in self.cells.values():
            out[c.label] = out.get(c.label, 0) + 1
        return out


def fmt_value(metric: str, value: float | None, statistic: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if statistic == "missing":
        return f"missing on {100 * value:.1f} %"
    if metric == "candidate_p95_ms":
        return f"{value / 1000:.2f} s" if abs(value) >= 1000 else f"{value:.0f} ms"
    if metric in _RATES:
        return f"{100 * value:.1f} %"
    return f"{value:.3f}"


def _margin(m: Mapping[str, Any]) -> float:
    """How far a passing metric's interval stays from its limit, relative to the limit (smaller: closer)."""
    limit = float(m["limit"])
    scale = abs(limit) or 1.0
    if m["name"] in HIGHER_IS_BETTER:
        bound = m.get("ci_low")
        return math.inf if bound is None else (float(bound) - limit) / scale
    bound = m.get("ci_high")
    return math.inf if bound is None else (limit - float(bound)) / scale


def describe(m: Mapping[str, Any]) -> str:
    """One metric result against its limit, short enough for a board cell."""
    name = str(m["name"])
    label = METRIC_LABELS.get(name, name)
    statistic = str(m.get("statistic") or "")
    if m.get("status") == "NO_DATA":
        return f"{label}: no data"
    if statistic == "mean minus noise floor":
        drop = -float(m["value"]) if m.get("value") is not None else None
        allowed = -float(m["limit"])
        return f"{label} {fmt_value(name, drop)} below the noise floor vs ≤ {allowed:.3f}"
    op = "≥" if name in HIGHER_IS_BETTER else "≤"
    value = fmt_value(name, m.get("value"), statistic)
    return f"{label} {value} vs {op} {fmt_value(name, float(m['limit']))}"


def decisive(body: Mapping[str, Any]) -> Decisive | None:
    """The metric that decided the verdict: its worst (critical first); for a GO, the closest to its limit."""
    metrics = [m for m in body.get("metrics", []) if isinstance(m, Mapping) and "name" in m]
    judged = [m for m in metrics if m.get("status") != "NO_DATA"]
    if not judged or body.get("status") == "INSUFFICIENT_DATA":  # the pair count decided, said in reasons
        return None
    if body.get("status") == "GO" or all(m.get("status") == "PASS" for m in judged):
        pick = min(judged, key=_margin)
    else:
        pick = min(judged, key=lambda m: (_SEVERITY.get(str(m.get("status")), 9), not m.get("critical")))
    name = str(pick["name"])
    return Decisive(name, METRIC_LABELS.get(name, name), str(pick.get("status")), describe(pick))


def trend(now: StoredVerdict | None, before: StoredVerdict | None) -> Trend:
    """The verdict now against the newest one made a day ago or earlier."""
    if now is None:
        return Trend("", "not judged yet")
    if before is None:
        return Trend("new", "first judged in the last day")
    was = LABELS.get(before.status, before.status)
    pairs = f" (pairs {before.body.get('n', '?')} → {now.body.get('n', '?')})"
    if now.status == before.status:
        return Trend("=", f"unchanged since yesterday{pairs}")
    up = _RANK.get(now.status, 0) > _RANK.get(before.status, 0)
    return Trend("▲" if up else "▼", f"{'up' if up else 'down'} from {was}{pairs}")


def route_key(route: str) -> tuple[int, str]:
    return (ROUTE_ORDER.index(route) if route in ROUTE_ORDER else len(ROUTE_ORDER), route)


def build_board(
    latest: Iterable[StoredVerdict],
    yesterday: Iterable[StoredVerdict],
    volumes: Iterable[PairVolume],
    tenants: Sequence[str] = (),
) -> Board:
    """The grid: every tenant (configured, judged or with traffic) x every route seen."""
    now = {(v.tenant, v.route): v for v in latest}
    before = {(v.tenant, v.route): v for v in yesterday}
    pairs = {(v.tenant, v.route): v.pairs for v in volumes}
    keys = set(now) | set(pairs)
    cells: dict[tuple[str, str], Cell] = {}
    for key in keys:
        v = now.get(key)
        cells[key] = Cell(
            tenant=key[0],
            route=key[1],
            status=v.status if v else None,
            n=int(v.body.get("n", 0)) if v else 0,
            decisive=decisive(v.body) if v else None,
            trend=trend(v, before.get(key)),
            pairs=pairs.get(key, 0),
            verdict_at=v.at if v else None,
            verdict_id=v.id if v else None,
            reasons=[str(r) for r in v.body.get("reasons", [])] if v else [],
            worst={str(k): [str(x) for x in ks] for k, ks in v.body.get("worst", {}).items()} if v else {},
        )
    names = list(dict.fromkeys([*tenants, *sorted({k[0] for k in keys})]))
    routes = sorted({k[1] for k in keys}, key=route_key)
    return Board(tenants=names, routes=routes, cells=cells)
