"""Embeddings and rerank scoring: cosines in one space, similarity structure across spaces, Kendall tau."""

from __future__ import annotations

import math

import numpy as np
import pytest

from comparators import vectors
from comparators.scoring import Comparison, Side
from simulator.vectors import embed


def _side(
    vecs: list[list[float]] | None = None, model: str | None = "m", ranking: list[int] | None = None
) -> Side:
    return Side(
        status=200, error=None, total_ms=50.0, ttfb_ms=None, model=model, vectors=vecs, ranking=ranking
    )


def _embed(primary: Side, other: Side) -> dict[str, float]:
    return vectors.score_embeddings(Comparison("embed", primary, other, "candidate")).metrics


def _rerank(primary: list[int] | None, other: list[int] | None) -> dict[str, float]:
    c = Comparison("rerank", _side(ranking=primary), _side(ranking=other), "candidate")
    return vectors.score_rerank(c).metrics


TEXTS = [
    "patient has fever and cough",
    "fever and cough for three days",
    "pesakit demam dan batuk",
    "blood pressure is high",
    "tekanan darah tinggi",
    "review in two weeks",
]


def test_identical_vectors_have_cosine_one() -> None:
    vecs = [embed(t, 64) for t in TEXTS]
    m = _embed(_side(vecs), _side(vecs))
    assert m["embed_cosine_mean"] == pytest.approx(1.0)
    assert m["embed_cosine_min"] == pytest.approx(1.0)
    assert m["embed_rank_correlation"] == pytest.approx(1.0)
    assert m["embed_topk_overlap"] == 1.0


def test_orthogonal_and_opposite_vectors() -> None:
    m = _embed(_side([[1.0, 0.0], [0.0, 2.0]]), _side([[0.0, 3.0], [0.0, -1.0]]))
    assert m == {"embed_cosine_mean": pytest.approx(-0.5), "embed_cosine_min": pytest.approx(-1.0)}


def test_scale_does_not_matter_and_zero_vectors_count_as_zero() -> None:
    m = _embed(_side([[1.0, 1.0], [0.0, 0.0]]), _side([[5.0, 5.0], [1.0, 0.0]]))
    assert m["embed_cosine_mean"] == pytest.approx(0.5)
    assert m["embed_cosine_min"] == 0.0


def test_different_models_or_dimensions_use_the_structure_within_the_request() -> None:
    rng = np.random.default_rng(7)
    primary = rng.normal(size=(8, 32))
    # Another "model": the same geometry in another space (a rotation into 48 dimensions, and scaled).
    rotation, _ = np.linalg.qr(rng.normal(size=(48, 32)))
    other = 3.0 * primary @ rotation.T
    m = _embed(_side(primary.tolist(), "text-embedding-3-small"), _side(other.tolist(), "bge-m3"))
    assert "embed_cosine_mean" not in m
    assert m["embed_rank_correlation"] == pytest.approx(1.0)
    assert m["embed_topk_overlap"] == 1.0
    # The same dimension but a different named model: no cosines either, they would compare two spaces.
    same_dim = _embed(_side(primary.tolist(), "a"), _side(primary.tolist(), "b"))
    assert "embed_cosine_mean" not in same_dim
    assert same_dim["embed_rank_correlation"] == pytest.approx(1.0)


def test_rank_correlation_falls_when_the_structure_is_scrambled() -> None:
    primary = [embed(t, 128) for t in TEXTS]
    scrambled = [embed(t, 128) for t in TEXTS[3:] + TEXTS[:3]]
    m = _embed(_side(primary, "a"), _side(scrambled, "b"))
    assert m["embed_rank_correlation"] < 0.5


def test_topk_overlap_by_hand() -> None:
    # Four inputs on a line, k = min(3, 4 - 2) = 2. Primary: 0 and 1 close, 2 and 3 close.
    primary = [[1.0, 0.0], [0.95, 0.3], [0.3, 0.95], [0.0, 1.0]]
    # Other: input 0's two nearest are 1 and 2 on both sides; for the rest the sets match too, so 1.
    assert _embed(_side(primary, "a"), _side(primary, "b"))["embed_topk_overlap"] == 1.0
    swapped = [primary[0], primary[3], primary[2], primary[1]]
    # Nearest two on the primary / on the other: 0: {1,2} / {2,3}; 1: {0,2} / {2,3}; 2: {1,3} / {1,3};
    # 3: {1,2} / {0,2}. Shared: 1, 1, 2, 1 of 2 each: (0.5 + 0.5 + 1 + 0.5) / 4.
    assert _embed(_side(primary, "a"), _side(swapped, "b"))["embed_topk_overlap"] == pytest.approx(0.625)


def test_too_few_inputs_for_the_structure() -> None:
    two = [[1.0, 0.0], [0.0, 1.0]]
    assert _embed(_side(two, "a"), _side(two, "b")) == {}


@pytest.mark.parametrize(
    ("primary", "other"),
    [
        (None, [[1.0]]),
        ([[1.0]], []),
        ([[1.0], [2.0]], [[1.0]]),  # a different number of inputs
        ([[1.0, 2.0], [1.0]], [[1.0, 2.0], [1.0, 2.0]]),  # ragged
    ],
)
def test_nothing_comparable(primary: list[list[float]] | None, other: list[list[float]] | None) -> None:
    assert _embed(_side(primary), _side(other)) == {}


def test_average_ranks_and_spearman_with_ties() -> None:
    ranks = vectors.average_ranks(np.array([10.0, 20.0, 10.0, 30.0]))
    assert ranks.tolist() == [1.5, 3.0, 1.5, 4.0]
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert vectors.spearman(a, a**3) == pytest.approx(1.0)
    assert vectors.spearman(a, -a) == pytest.approx(-1.0)
    assert vectors.spearman(a, np.ones(5)) is None
    # d = rank differences (0, 0, 1, -1, 0) without ties: rho = 1 - 6 * 2 / (5 * 24) = 0.9
    assert vectors.spearman(a, np.array([1.0, 2.0, 4.0, 3.0, 5.0])) == pytest.approx(0.9)


def test_rerank_same_order() -> None:
    assert _rerank([2, 0, 1, 3], [2, 0, 1, 3]) == {
        "rerank_kendall_tau": 1.0,
        "rerank_top1_match": 1.0,
        "rerank_top3_overlap": 1.0,
    }


def test_rerank_one_swap_by_hand() -> None:
    # 4 documents, 6 pairs; swapping the first two makes 1 pair discordant: (5 - 1) / 6.
    m = _rerank([0, 1, 2, 3], [1, 0, 2, 3])
    assert m["rerank_kendall_tau"] == pytest.approx(4 / 6)
    assert m["rerank_top1_match"] == 0.0
    assert m["rerank_top3_overlap"] == 1.0
    # Swapping the last two: the top 3 now share 2 of 3.
    m = _rerank([0, 1, 2, 3], [0, 1, 3, 2])
    assert m["rerank_kendall_tau"] == pytest.approx(4 / 6)
    assert m["rerank_top1_match"] == 1.0
    assert m["rerank_top3_overlap"] == pytest.approx(2 / 3)
    # 0 and 3 swapped: pairs (0,1), (0,2), (0,3), (1,3), (2,3) discordant, (1,2) kept: (1 - 5) / 6.
    assert _rerank([0, 1, 2, 3], [3, 1, 2, 0])["rerank_kendall_tau"] == pytest.approx(-4 / 6)
    assert _rerank([0, 1, 2, 3], [3, 2, 1, 0])["rerank_kendall_tau"] == -1.0


def test_rerank_over_the_documents_both_contain() -> None:
    # top_n cut the lists: shared documents 5 and 7, in the same order.
    m = _rerank([5, 9, 7], [5, 7, 1])
    assert m["rerank_kendall_tau"] == 1.0
    assert m["rerank_top3_overlap"] == pytest.approx(2 / 3)
    # One list shorter than three: the missing places count as not shared.
    assert _rerank([4, 2, 1], [4])["rerank_top3_overlap"] == pytest.approx(1 / 3)
    assert "rerank_kendall_tau" not in _rerank([4, 2, 1], [4])
    assert _rerank(None, [1, 2]) == {}


def test_kendall_tau_is_symmetric() -> None:
    a, b = [3, 1, 4, 0, 2], [1, 3, 0, 2, 4]
    tau = vectors.kendall_tau(a, b)
    assert tau is not None
    assert tau == vectors.kendall_tau(b, a)
    assert not math.isnan(tau)
