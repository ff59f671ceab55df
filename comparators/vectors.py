"""Embeddings and rerank orderings compared: per-input cosines, or agreement within the request."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from comparators.scoring import Comparison, Result, Side

Matrix = npt.NDArray[np.float64]


def score_embeddings(c: Comparison) -> Result:
    """Per-input cosines when both sides use one embedding space; agreement of the similarity structure
    within the request always (it needs no shared space, so the candidate, a different model, and the
    secondary, the same one, are measured alike and the noise floor stays comparable)."""
    p, o = c.primary.vectors, c.other.vectors
    if not p or not o or len(p) != len(o):
        return Result()  # nothing lines up input for input
    left, right = _matrix(p), _matrix(o)
    if left is None or right is None:
        return Result()
    metrics: dict[str, float] = {}
    if left.shape[1] == right.shape[1] and _same_model(c.primary, c.other):
        cosines = np.einsum("ij,ij->i", _unit_rows(left), _unit_rows(right))
        metrics["embed_cosine_mean"] = float(cosines.mean())
        metrics["embed_cosine_min"] = float(cosines.min())
    n = len(p)
    if n >= 3:
        sim_left, sim_right = _similarities(left), _similarities(right)
        # k stops short of n - 1: with every other input a neighbour, the overlap is 1 whatever the sides say.
        metrics["embed_topk_overlap"] = topk_overlap(sim_left, sim_right, min(3, n - 2))
        upper = np.triu_indices(n, k=1)
        rho = spearman(sim_left[upper], sim_right[upper])
        if rho is not None:
            metrics["embed_rank_correlation"] = rho
    return Result(metrics=metrics)


def _same_model(a: Side, b: Side) -> bool:
    # An unnamed model is given the benefit of the doubt; the dimensions must still agree.
    return a.model is None or b.model is None or a.model == b.model


def _matrix(vectors: list[list[float]]) -> Matrix | None:
    if len({len(v) for v in vectors}) != 1 or not vectors[0]:
        return None  # ragged or empty vectors: a broken answer, not an embedding space
    return np.asarray(vectors, dtype=np.float64)


def _unit_rows(m: Matrix) -> Matrix:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    # A zero vector has no direction: its cosine with anything is taken as 0.
    unit: Matrix = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    return unit


def _similarities(m: Matrix) -> Matrix:
    unit = _unit_rows(m)
    result: Matrix = unit @ unit.T
    return result


def topk_overlap(sim_a: Matrix, sim_b: Matrix, k: int) -> float:
    """Mean over inputs of the share of its k nearest neighbours (itself excluded) both sides agree on."""
    near_a, near_b = _neighbours(sim_a, k), _neighbours(sim_b, k)
    shared = [len(set(near_a[i].tolist()) & set(near_b[i].tolist())) for i in range(len(near_a))]
    return float(np.mean(shared)) / k


def _neighbours(sim: Matrix, k: int) -> npt.NDArray[np.intp]:
    masked = sim.copy()
    np.fill_diagonal(masked, -np.inf)
    # Stable, so ties go to the lower index on both sides alike.
    return np.argsort(-masked, axis=1, kind="stable")[:, :k]


def average_ranks(values: Matrix) -> Matrix:
    """1-based ranks, ties sharing the mean of the ranks they span (as scipy.stats.rankdata does)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    sizes = np.diff(np.append(starts, len(values)))
    mean_rank = starts + (sizes - 1) / 2.0 + 1.0
    ranks: Matrix = np.empty(len(values), dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def spearman(a: Matrix, b: Matrix) -> float | None:
    """Spearman's rho: Pearson's correlation of the average ranks. None when either side is constant."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    if denominator == 0.0:
        return None
    return float((ra * rb).sum() / denominator)


def score_rerank(c: Comparison) -> Result:
    p, o = c.primary.ranking, c.other.ranking
    if not p or not o:
        return Result()
    metrics = {"rerank_top1_match": float(p[0] == o[0])}
    # Documents missing from the shorter top list count as not shared.
    k = min(3, max(len(p), len(o)))
    metrics["rerank_top3_overlap"] = len(set(p[:3]) & set(o[:3])) / k
    tau = kendall_tau(p, o)
    if tau is not None:
        metrics["rerank_kendall_tau"] = tau
    return Result(metrics=metrics)


def kendall_tau(primary: list[int], other: list[int]) -> float | None:
    """Kendall's tau-b between two orderings, over the documents both contain; None under two of them.

    Each ordering lists a document once, so there are no ties and tau-b is (concordant - discordant)
    over the number of pairs."""
    place_other = {doc: rank for rank, doc in enumerate(other)}
    shared = [doc for doc in dict.fromkeys(primary) if doc in place_other]
    n = len(shared)
    if n < 2:
        return None
    # `shared` is in the primary's order, so a pair is concordant when the other side keeps it in order.
    ranks = np.array([place_other[doc] for doc in shared])
    signs = np.sign(ranks[None, :] - ranks[:, None])[np.triu_indices(n, k=1)]
    return float(signs.sum() / (n * (n - 1) / 2))
