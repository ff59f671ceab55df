"""Scores every route gets (status, latency, speed), and the route table that runs the scorers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from comparators.common import score_common, status_class, tokens_per_s
from comparators.routes import SCORERS, score, scorers_for
from comparators.scoring import METRICS, Comparison, Scorer, Side
from comparators.speech import score_speech
from comparators.vectors import score_embeddings, score_rerank
from shadowgate.settings import RouteKind


def _side(
    status: int | None = 200,
    total_ms: float = 1000.0,
    ttfb_ms: float | None = None,
    tokens: int | None = None,
) -> Side:
    return Side(
        status=status, error=None, total_ms=total_ms, ttfb_ms=ttfb_ms, model="m", completion_tokens=tokens
    )


def _common(primary: Side, other: Side) -> dict[str, float]:
    return score_common(Comparison("chat", primary, other, "candidate")).metrics


def test_latency_deltas_of_a_stream() -> None:
    m = _common(
        _side(total_ms=2000.0, ttfb_ms=400.0, tokens=80),
        _side(total_ms=1500.0, ttfb_ms=250.0, tokens=100),
    )
    assert m == {
        "status_match": 1.0,
        "latency_delta_ms": -500.0,
        "latency_ratio": 0.75,
        "ttfb_delta_ms": -150.0,
        # 100 tokens over the 1.25 s after the first one; the primary's 80 over 1.6 s.
        "tokens_per_s": 80.0,
        "tokens_per_s_primary": 50.0,
        "completion_tokens": 100.0,
        "completion_tokens_primary": 80.0,
    }


def test_without_streams_the_whole_call_is_generation_time() -> None:
    m = _common(_side(total_ms=500.0, tokens=10), _side(total_ms=250.0, tokens=10))
    assert m["tokens_per_s"] == 40.0
    assert m["tokens_per_s_primary"] == 20.0
    assert "ttfb_delta_ms" not in m


def test_unknowns_are_left_out() -> None:
    m = _common(_side(total_ms=0.0, ttfb_ms=10.0), _side(status=None, total_ms=30_000.0))
    assert m == {"status_match": 0.0, "latency_delta_ms": 30_000.0}


@pytest.mark.parametrize(
    ("primary", "other", "match"),
    [(200, 201, 1.0), (200, 500, 0.0), (429, 400, 1.0), (None, None, 1.0), (None, 200, 0.0), (503, 500, 1.0)],
)
def test_status_match(primary: int | None, other: int | None, match: float) -> None:
    assert _common(_side(status=primary), _side(status=other))["status_match"] == match


def test_status_class_and_tokens_per_s_guards() -> None:
    assert [status_class(s) for s in (None, 204, 404, 502)] == [None, 2, 4, 5]
    assert tokens_per_s(_side(total_ms=300.0, ttfb_ms=300.0, tokens=5)) is None  # all in one chunk
    assert tokens_per_s(_side(total_ms=300.0, tokens=None)) is None


def _full() -> tuple[Side, Side]:
    """Two sides with everything any scorer might read filled in, so every scorer speaks."""
    text = "S: Demam 3 hari. O: Suhu 38.5 °C. A: URTI. P: Paracetamol 500 mg."
    primary = replace(
        _side(ttfb_ms=100.0, tokens=20),
        text=text,
        json={"a": 1, "b": [1, 2]},
        finish_reason="stop",
        vectors=[[1.0, 0.0, 0.2], [0.0, 1.0, 0.1], [0.5, 0.5, 0.0], [0.2, 0.1, 1.0]],
        ranking=[2, 0, 1, 3],
    )
    other = replace(
        _side(total_ms=800.0, ttfb_ms=80.0, tokens=22),
        text=text.replace("500", "650").replace("Demam", "Tiada demam"),
        json={"a": "1", "c": [2, 1]},
        finish_reason="length",
        vectors=[[0.9, 0.1, 0.2], [0.1, 1.0, 0.1], [0.4, 0.5, 0.1], [0.2, 0.2, 0.9]],
        ranking=[0, 2, 3, 1],
    )
    return primary, other


@pytest.mark.parametrize("scorer", [score_common, score_speech, score_embeddings, score_rerank])
def test_scorers_emit_contract_names_only(scorer: Scorer) -> None:
    primary, other = _full()
    metrics = scorer(Comparison("chat", primary, other, "candidate")).metrics
    assert metrics
    assert set(metrics) <= set(METRICS)


@pytest.mark.parametrize(
    "route", ["chat", "reason", "vision", "audio", "embed", "rerank", "other", "unknown"]
)
def test_every_route_scores_with_contract_names_only(route: str) -> None:
    primary, other = _full()
    result = score(Comparison(route, primary, other, "candidate"))
    assert set(result.metrics) <= set(METRICS)
    assert "status_match" in result.metrics
    assert scorers_for(route) == SCORERS.get(route, SCORERS["other"])


def test_route_table() -> None:
    assert set(SCORERS) == {kind.value for kind in RouteKind}
    primary, other = _full()
    assert {"wer", "cer", "words_primary", "empty_transcripts"} <= set(
        score(Comparison("audio", primary, other, "candidate")).metrics
    )
    embed = score(Comparison("embed", primary, other, "secondary")).metrics
    assert {"embed_cosine_mean", "embed_rank_correlation", "embed_topk_overlap"} <= set(embed)
    assert {"rerank_kendall_tau", "rerank_top1_match"} <= set(
        score(Comparison("rerank", primary, other, "candidate")).metrics
    )
