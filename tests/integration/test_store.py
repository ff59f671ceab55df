"""The store on SQLite and PostgreSQL: idempotent writes, aggregates checked by hand, purge, export."""

from __future__ import annotations

import base64
import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import StatementError

from comparators.scoring import METRICS, Finding, Result
from store.db import SQLITE_BUSY_TIMEOUT_MS, init_db, make_engine
from store.export import export
from store.models import FINDINGS, PAIRS, PAYLOADS, SCORES, ScoreRow, table
from store.queries import (
    findings_by_kind,
    metric_quantiles,
    route_summary,
    unscored_counts,
    worst_pairs,
)
from store.records import Payload, ScoredPair, SideMeta
from store.writes import count_unscored, purge_payloads, save_scored

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def pair(
    key: str,
    *,
    tenant: str = "clinic-a",
    route: str = "chat",
    at: datetime = T0,
    replay: str | None = None,
    primary_ms: float = 100.0,
    candidate_ms: float | None = 200.0,
    candidate_status: int | None = 200,
    candidate_error: str | None = None,
    metrics: dict[str, float] | None = None,
    secondary: dict[str, float] | None = None,
    findings: list[Finding] | None = None,
    payload: Payload | None = None,
) -> ScoredPair:
    candidate = (
        None
        if candidate_ms is None
        else SideMeta(candidate_status, candidate_error, candidate_ms, 20.0, "llama-3.1-70b", "v1", "H100")
    )
    scores = {"candidate": Result(dict(metrics or {}), list(findings or []))}
    if secondary is not None:
        scores["secondary"] = Result(dict(secondary))
    return ScoredPair(
        key=key,
        exchange_id=f"ex-{key}",
        tenant=tenant,
        route=route,
        replay=replay,
        captured_at=at.timestamp(),
        paired_at=at.timestamp() + 1,
        primary=SideMeta(200, None, primary_ms, 10.0, "gpt-4o"),
        candidate=candidate,
        secondary=SideMeta(200, None, 150.0, None) if secondary is not None else None,
        scores=scores,
        payload=payload,
    )


def count(engine: Engine, t: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one())


def percentile_cont(values: list[float], q: float) -> float:
    """The reference: PostgreSQL's percentile_cont, linear between the ranks around (n - 1) * q."""
    xs = sorted(values)
    h = (len(xs) - 1) * q
    lo = int(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def test_a_store_from_before_a_new_metric_gains_its_column(store_engine: Engine) -> None:
    """A database made by an older version (here: without the clinical severity columns) is brought up
    to date by init_db: the columns are added, old rows keep NULL there, and new scores are written."""
    save_scored(store_engine, [pair("old", metrics={"clinical_ok": 1.0})])
    with store_engine.begin() as conn:
        conn.execute(text('ALTER TABLE scores DROP COLUMN "clinical_critical"'))
    with pytest.raises(StatementError):
        save_scored(store_engine, [pair("new", metrics={"clinical_critical": 2.0})])
    init_db(store_engine)
    init_db(store_engine)  # and again: nothing left to add
    save_scored(store_engine, [pair("new", metrics={"clinical_critical": 2.0})])
    with store_engine.connect() as conn:
        rows = dict(conn.execute(select(SCORES.c.pair_key, SCORES.c.clinical_critical)).all())
    assert rows == {"old": None, "new": 2.0}


def test_score_columns_are_the_metrics() -> None:
    fixed = {"pair_key", "role", "tenant", "route", "captured_at", "replay"}
    assert {c.name for c in table(ScoreRow).columns} - fixed == set(METRICS)


def test_sqlite_engine(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'store.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def test_postgresql_url_means_psycopg() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/postgres")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_double_write_is_idempotent(store_engine: Engine) -> None:
    items = [
        pair(
            "1-0",
            metrics={"semantic_similarity": 0.9},
            secondary={"semantic_similarity": 0.95},
            findings=[
                Finding("number_mismatch", "mg", "5 mg", "50 mg"),
                Finding("negation_flip", "", "no", ""),
            ],
            payload=Payload(b'{"messages": []}', "a", "b"),
        ),
        pair("2-0", metrics={"semantic_similarity": 0.8}),
    ]
    assert save_scored(store_engine, items) == 2
    assert save_scored(store_engine, items) == 2
    assert save_scored(store_engine, [items[0], items[0]]) == 1  # a key twice in one batch

    assert count(store_engine, PAIRS) == 2
    assert count(store_engine, SCORES) == 3
    assert count(store_engine, SCORES, SCORES.c.role == "secondary") == 1
    assert count(store_engine, FINDINGS) == 2
    assert count(store_engine, PAYLOADS) == 1


def test_rewrite_replaces_scores_and_findings(store_engine: Engine) -> None:
    save_scored(
        store_engine, [pair("1-0", metrics={"wer": 0.5, "cer": 0.2}, findings=[Finding("a", "", "", "")])]
    )
    save_scored(store_engine, [pair("1-0", metrics={"wer": 0.1}, findings=[Finding("b", "", "", "")])])

    with store_engine.connect() as conn:
        wer, cer = conn.execute(select(SCORES.c.wer, SCORES.c.cer)).one()
        kinds = conn.execute(select(FINDINGS.c.kind)).scalars().all()
    assert (wer, cer) == (0.1, None)  # the metric the rescore lacks leaves no stale value
    assert kinds == ["b"]


def test_bad_metric_writes_nothing(store_engine: Engine) -> None:
    good = pair("1-0", metrics={"wer": 0.1})
    bad = pair("2-0", metrics={"no_such_metric": 1.0})
    with pytest.raises(ValueError, match="no_such_metric"):
        save_scored(store_engine, [good, bad])
    assert count(store_engine, PAIRS) == 0


def test_non_finite_metrics_are_null(store_engine: Engine) -> None:
    save_scored(store_engine, [pair("1-0", metrics={"latency_ratio": float("inf"), "wer": float("nan")})])
    with store_engine.connect() as conn:
        assert conn.execute(select(SCORES.c.latency_ratio, SCORES.c.wer)).one() == (None, None)


def fixture_set() -> list[ScoredPair]:
    """Five live pairs of clinic-a/chat and one of clinic-b, with values simple to aggregate by hand."""
    sims = [0.9, 0.8, 0.7, 0.6, None]
    candidate_ms = [100.0, 200.0, 300.0, 400.0, 1000.0]
    items = []
    for i, sim in enumerate(sims):
        metrics = {"rouge_l_f1": 0.1 * (i + 1)}
        if sim is not None:
            metrics["semantic_similarity"] = sim
        items.append(
            pair(
                f"a-{i}",
                at=T0 + timedelta(minutes=i),
                primary_ms=50.0 + 10 * i,
                candidate_ms=candidate_ms[i],
                candidate_status=500 if i == 3 else (None if i == 4 else 200),
                candidate_error="ReadTimeout" if i == 4 else None,
                metrics=metrics,
                secondary={"semantic_similarity": 0.99} if i == 0 else None,
            )
        )
    items.append(pair("b-0", tenant="clinic-b", route="audio", metrics={"wer": 0.25}))
    return items


def test_route_summary_against_hand_computed_values(store_engine: Engine) -> None:
    save_scored(store_engine, fixture_set())

    a, b = route_summary(store_engine)

    assert (a.tenant, a.route, a.pairs, a.scored) == ("clinic-a", "chat", 5, 5)
    assert (a.primary_errors, a.candidate_errors, a.secondary_errors) == (0, 2, 0)
    assert a.candidate_error_rate == pytest.approx(0.4)
    assert a.means["semantic_similarity"] == pytest.approx(0.75)
    assert a.means["rouge_l_f1"] == pytest.approx(0.3)
    assert a.means["wer"] is None
    # candidate ms 100, 200, 300, 400, 1000: p95 at rank 3.8 = 400 + 0.8 * 600
    assert a.quantiles["candidate_total_ms"] == pytest.approx({0.5: 300.0, 0.95: 880.0})
    # primary ms 50..90: p95 at rank 3.8 = 80 + 0.8 * 10
    assert a.quantiles["primary_total_ms"] == pytest.approx({0.5: 70.0, 0.95: 88.0})
    # similarity 0.6, 0.7, 0.8, 0.9 (one NULL left out): p50 at rank 1.5, p95 at rank 2.85
    assert a.quantiles["semantic_similarity"] == pytest.approx({0.5: 0.75, 0.95: 0.885})
    assert a.quantiles["wer"] == {0.5: None, 0.95: None}

    assert (b.tenant, b.route, b.pairs, b.candidate_errors) == ("clinic-b", "audio", 1, 0)
    assert b.quantiles["wer"] == pytest.approx({0.5: 0.25, 0.95: 0.25})

    (secondary,) = route_summary(store_engine, tenant="clinic-a", role="secondary")
    assert secondary.scored == 1
    assert secondary.means["semantic_similarity"] == pytest.approx(0.99)
    assert secondary.quantiles["secondary_total_ms"] == pytest.approx({0.5: 150.0, 0.95: 150.0})


def test_route_summary_window(store_engine: Engine) -> None:
    save_scored(store_engine, fixture_set())
    (a,) = route_summary(
        store_engine, tenant="clinic-a", since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)
    )
    assert a.pairs == 2  # minutes 1 and 2: since is inclusive, until exclusive
    assert route_summary(store_engine, tenant="nobody") == []


def test_quantiles_agree_with_percentile_cont(store_engine: Engine) -> None:
    rng = random.Random(7)
    # Ties and a spread of magnitudes, so interpolation between equal and unequal ranks both happen.
    values = [round(rng.choice([rng.random(), rng.random() * 100, 0.5]), 3) for _ in range(137)]
    save_scored(store_engine, [pair(f"{i}-0", metrics={"wer": v}) for i, v in enumerate(values)])
    qs = (0.0, 0.01, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)

    found = metric_quantiles(store_engine, "wer", qs)

    assert found == pytest.approx({q: percentile_cont(values, q) for q in qs}, rel=1e-12)
    assert metric_quantiles(store_engine, "wer", (0.5,), tenant="nobody") == {0.5: None}


def test_unknown_metric_is_refused(store_engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        metric_quantiles(store_engine, "wer; DROP TABLE scores")
    with pytest.raises(ValueError, match="unknown metric"):
        worst_pairs(store_engine, "clinic-a", "chat", "key", 3, ascending=True)


def test_replayed_pairs_are_left_out_unless_asked(store_engine: Engine) -> None:
    save_scored(
        store_engine,
        [
            pair("live-0", metrics={"wer": 0.1}),
            pair("run1-0", replay="run-1", metrics={"wer": 0.9}),
            pair("run2-0", replay="run-2", metrics={"wer": 0.5}),
        ],
    )

    assert [s.pairs for s in route_summary(store_engine)] == [1]
    assert [s.pairs for s in route_summary(store_engine, replay="run-1")] == [1]
    assert [s.pairs for s in route_summary(store_engine, replay="*")] == [3]
    assert metric_quantiles(store_engine, "wer", (1.0,)) == {1.0: pytest.approx(0.1)}
    assert metric_quantiles(store_engine, "wer", (1.0,), replay="run-1") == {1.0: pytest.approx(0.9)}
    worst = worst_pairs(store_engine, "clinic-a", "chat", "wer", 5, ascending=False)
    assert [w.key for w in worst] == ["live-0"]
    out = io.StringIO()
    assert export(store_engine, out, "jsonl") == 1


def test_worst_pairs_order(store_engine: Engine) -> None:
    sims = {"p0": 0.9, "p1": 0.2, "p2": 0.5, "p3": 0.7}
    items = [pair(k, metrics={"semantic_similarity": v}) for k, v in sims.items()]
    items += [pair("p4", metrics={}), pair("q0", route="reason", metrics={"semantic_similarity": 0.0})]
    save_scored(store_engine, items)

    lowest = worst_pairs(store_engine, "clinic-a", "chat", "semantic_similarity", 3, ascending=True)
    highest = worst_pairs(store_engine, "clinic-a", "chat", "semantic_similarity", 2, ascending=False)

    assert [(w.key, w.value) for w in lowest] == [("p1", 0.2), ("p2", 0.5), ("p3", 0.7)]
    assert [w.key for w in highest] == ["p0", "p3"]
    assert lowest[0].exchange_id == "ex-p1"
    assert lowest[0].captured_at == T0


def test_findings_by_kind(store_engine: Engine) -> None:
    mismatch = Finding("number_mismatch", "mg", "5 mg", "50 mg")
    flip = Finding("negation_flip", "", "no fever", "fever")
    save_scored(
        store_engine,
        [
            pair("1-0", findings=[mismatch, mismatch, flip]),
            pair("2-0", findings=[mismatch]),
            pair("3-0", replay="run-1", findings=[flip]),
        ],
    )

    counts = [(f.kind, f.findings, f.pairs) for f in findings_by_kind(store_engine, tenant="clinic-a")]

    assert counts == [("number_mismatch", 3, 2), ("negation_flip", 1, 1)]


def test_purge_deletes_clinical_rows_and_keeps_metrics(store_engine: Engine) -> None:
    old, new = T0 - timedelta(days=40), T0
    items = [
        pair(
            f"{name}-0",
            at=at,
            metrics={"semantic_similarity": sim},
            findings=[Finding("number_mismatch", "mg", "5 mg", "50 mg")],
            payload=Payload(b"request", "primary text", "candidate text"),
        )
        for name, at, sim in (("old", old, 0.4), ("new", new, 0.8))
    ]
    save_scored(store_engine, items)
    before = route_summary(store_engine)

    assert purge_payloads(store_engine, T0 - timedelta(days=30)) == 2  # one payload, one finding

    assert route_summary(store_engine) == before
    with store_engine.connect() as conn:
        assert conn.execute(select(PAYLOADS.c.pair_key)).scalars().all() == ["new-0"]
        assert conn.execute(select(FINDINGS.c.pair_key)).scalars().all() == ["new-0"]
    assert count(store_engine, SCORES) == 2
    assert purge_payloads(store_engine, T0 - timedelta(days=30)) == 0


def test_unscored_counts(store_engine: Engine) -> None:
    count_unscored(store_engine, "clinic-a", "chat", T0 + timedelta(minutes=5), 3)
    count_unscored(store_engine, "clinic-a", "chat", (T0 + timedelta(minutes=59)).timestamp(), 2)
    count_unscored(store_engine, "clinic-a", "chat", T0 + timedelta(hours=1), 10)
    count_unscored(store_engine, "clinic-b", "audio", T0, 1)

    every = [(u.tenant, u.route, u.count) for u in unscored_counts(store_engine)]
    first_hour = unscored_counts(store_engine, tenant="clinic-a", since=T0, until=T0 + timedelta(hours=1))

    assert every == [("clinic-a", "chat", 15), ("clinic-b", "audio", 1)]
    assert [u.count for u in first_hour] == [5]


def test_naive_datetimes_are_refused(store_engine: Engine) -> None:
    with pytest.raises(StatementError, match="timezone-aware"):
        route_summary(store_engine, since=datetime(2025, 1, 1))


def saved_for_export(store_engine: Engine) -> list[ScoredPair]:
    items = [
        pair(
            f"{i}-0",
            at=T0 + timedelta(seconds=i),
            metrics={"semantic_similarity": 0.5 + i / 10, "rouge_l_f1": 0.25},
            payload=Payload(bytes([0, 1, 2, i]), "primary, with a comma", 'candidate "quoted"\nline'),
        )
        for i in range(3)
    ]
    items.append(pair("r-0", replay="run-1", metrics={"semantic_similarity": 0.1}))
    save_scored(store_engine, items)
    return items[:3]


def test_export_jsonl_round_trip(store_engine: Engine) -> None:
    items = saved_for_export(store_engine)
    out = io.StringIO()

    assert export(store_engine, out, "jsonl", include_payloads=True) == 3

    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["key"] for r in rows] == [i.key for i in items]
    for row, item in zip(rows, items, strict=True):
        assert datetime.fromisoformat(row["captured_at"]) == datetime.fromtimestamp(item.captured_at, UTC)
        assert row["candidate_total_ms"] == 200.0
        assert row["has_secondary"] is False
        assert row["semantic_similarity"] == pytest.approx(
            item.scores["candidate"].metrics["semantic_similarity"]
        )
        assert row["wer"] is None
        assert item.payload is not None
        assert base64.b64decode(row["request_b64"]) == item.payload.request
        assert row["candidate_text"] == item.payload.candidate


def test_export_csv_round_trip(store_engine: Engine) -> None:
    items = saved_for_export(store_engine)
    out = io.StringIO(newline="")

    assert export(store_engine, out, "csv", since=T0 + timedelta(seconds=1)) == 2

    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [r["key"] for r in rows] == ["1-0", "2-0"]
    assert set(rows[0]) == {c.name for c in PAIRS.columns} | set(METRICS)  # no payloads unless asked
    for row, item in zip(rows, items[1:], strict=True):
        assert datetime.fromisoformat(row["captured_at"]).timestamp() == item.captured_at
        assert float(row["semantic_similarity"]) == pytest.approx(
            item.scores["candidate"].metrics["semantic_similarity"]
        )
        assert row["wer"] == ""
        assert row["candidate_model"] == "llama-3.1-70b"
