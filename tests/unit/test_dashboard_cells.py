"""What a board cell says: the decisive metric, the trend, the grid (dashboard/cells.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dashboard.cells import build_board, decisive, describe, trend
from store.queries import PairVolume
from store.verdicts import StoredVerdict

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def metric(
    name: str, status: str, value: float, lo: float, hi: float, limit: float, **kw: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "statistic": kw.get("statistic", "mean"),
        "value": value,
        "ci_low": lo,
        "ci_high": hi,
        "limit": limit,
        "critical": kw.get("critical", False),
        "reason": "",
    }


def verdict(
    status: str, *metrics: dict[str, Any], tenant: str = "t", route: str = "chat", n: int = 100
) -> StoredVerdict:
    body = {"status": status, "n": n, "metrics": list(metrics), "reasons": [f"because {status}"], "worst": {}}
    return StoredVerdict(1, AT, tenant, route, status, "v1", 1, body)


def test_a_no_go_is_decided_by_its_failed_metric_critical_first() -> None:
    v = verdict(
        "NO_GO",
        metric("candidate_p95_ms", "FAIL", 3200.0, 3000.0, 3500.0, 2000.0, statistic="p95"),
        metric("fact_mismatch_rate", "FAIL", 0.125, 0.08, 0.19, 0.02, statistic="rate", critical=True),
        metric("semantic_similarity", "PASS", 0.95, 0.94, 0.96, 0.85),
    )
    d = decisive(v.body)
    assert d is not None
    assert d.name == "fact_mismatch_rate"
    assert d.text == "fact mismatches 12.5 % vs ≤ 2.0 %"


def test_a_hold_is_decided_by_its_marginal_metric() -> None:
    v = verdict(
        "HOLD",
        metric("error_rate", "PASS", 0.0, 0.0, 0.01, 0.05, statistic="rate"),
        metric("candidate_p95_ms", "MARGINAL", 1900.0, 1700.0, 2300.0, 2000.0, statistic="p95"),
    )
    d = decisive(v.body)
    assert d is not None
    assert d.name == "candidate_p95_ms"
    assert d.text == "p95 latency 1.90 s vs ≤ 2.00 s"


def test_a_go_names_the_metric_closest_to_its_limit() -> None:
    v = verdict(
        "GO",
        metric("error_rate", "PASS", 0.0, 0.0, 0.01, 0.05, statistic="rate"),  # 80 % of the limit to spare
        metric("semantic_similarity", "PASS", 0.9, 0.88, 0.92, 0.85),  # 3.5 % to spare: the closest
        metric("rouge_l_f1", "PASS", 0.7, 0.6, 0.8, 0.2),
    )
    d = decisive(v.body)
    assert d is not None
    assert d.name == "semantic_similarity"
    assert d.text == "similarity 0.900 vs ≥ 0.850"


def test_insufficient_data_is_decided_by_the_count_not_a_metric() -> None:
    v = verdict("INSUFFICIENT_DATA", metric("wer", "FAIL", 0.4, 0.3, 0.5, 0.15), n=3)
    assert decisive(v.body) is None


def test_the_noise_floor_comparison_is_described_as_a_drop() -> None:
    m = metric("semantic_similarity", "FAIL", -0.05, -0.07, -0.04, -0.03, statistic="mean minus noise floor")
    assert describe(m) == "similarity 0.050 below the noise floor vs ≤ 0.030"


def test_trend_since_yesterday() -> None:
    go, hold, no_go = verdict("GO"), verdict("HOLD", n=40), verdict("NO_GO")
    assert trend(go, hold).arrow == "▲"
    assert trend(go, hold).text == "up from HOLD (pairs 40 → 100)"
    assert trend(no_go, go).arrow == "▼"
    assert trend(go, go).arrow == "="
    assert trend(go, None).arrow == "new"
    assert trend(None, None).text == "not judged yet"


def test_the_grid_has_every_tenant_and_route_seen() -> None:
    board = build_board(
        [verdict("GO", tenant="a", route="chat"), verdict("NO_GO", tenant="b", route="audio")],
        [verdict("HOLD", tenant="a", route="chat")],
        [PairVolume("a", "chat", 100, 0, AT), PairVolume("c", "embed", 5, 0, AT)],
        tenants=("z-configured",),
    )
    assert board.tenants == ["z-configured", "a", "b", "c"]
    assert board.routes == ["audio", "chat", "embed"]  # the routes' own order, not alphabetical by chance
    a_chat = board.cell("a", "chat")
    assert a_chat is not None
    assert (a_chat.label, a_chat.trend.arrow, a_chat.pairs) == ("GO", "▲", 100)
    c_embed = board.cell("c", "embed")
    assert c_embed is not None
    assert (c_embed.status, c_embed.label, c_embed.pairs) == (None, "NOT JUDGED", 5)
    assert board.cell("a", "audio") is None
    assert board.counts() == {"GO": 1, "NO-GO": 1, "NOT JUDGED": 1}
