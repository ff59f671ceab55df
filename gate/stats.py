"""The gate's statistics: confidence intervals, paired deltas and the alpha spent per look, as pure functions.

Every interval is two-sided at confidence 1 - alpha; the judge passes a metric only when the whole interval is
on the good side of its limit, so the chance of a wrong pass at one look is at most alpha / 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
# A statistic reduces the last axis: (n,) -> () and (n_boot, n) -> (n_boot,).
Stat = Callable[[Floats], Floats]

_CHUNK = 4_000_000  # bootstrap draws held in memory at once (floats), so large windows stay small


def mean(x: Floats) -> Floats:
    return np.asarray(np.mean(x, axis=-1), dtype=np.float64)


def median(x: Floats) -> Floats:
    return np.asarray(np.median(x, axis=-1), dtype=np.float64)


def spent_alpha(alpha: float, look: int) -> float:
    """The alpha of the look-th look (1-based): alpha * 6 / (pi^2 k^2); over all looks it sums to alpha."""
    if look < 1:
        raise ValueError(f"looks are counted from 1, got {look}")
    return alpha * 6.0 / (math.pi**2 * look**2)


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def wilson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials; (0, 1) when there are no trials."""
    if n == 0:
        return 0.0, 1.0
    z = _z(alpha)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(k1: int, n1: int, k2: int, n2: int, alpha: float) -> tuple[float, float]:
    """Interval for p1 - p2 of two independent proportions: Newcombe's hybrid score interval (method
    10 of Newcombe 1998), built from the two Wilson intervals; good coverage at rates near 0, where the
    Wald interval fails. (-1, 1) when either side has no trials."""
    if n1 == 0 or n2 == 0:
        return -1.0, 1.0
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, alpha)
    l2, u2 = wilson(k2, n2, alpha)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _boot_stats(values: Floats, stat: Stat, rng: np.random.Generator, n_boot: int) -> Floats:
    n = len(values)
    rows = max(1, _CHUNK // n)
    out = [stat(values[rng.integers(0, n, size=(min(rows, n_boot - i), n))]) for i in range(0, n_boot, rows)]
    return np.concatenate(out)


def bootstrap_ci(
    values: Sequence[float] | Floats, stat: Stat, alpha: float, rng: np.random.Generator, n_boot: int = 2000
) -> tuple[float, float]:
    """Percentile bootstrap interval of stat (e.g. mean, median); (nan, nan) for no values."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return math.nan, math.nan
    boots = _boot_stats(x, stat, rng, n_boot)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def two_sample_ci(
    a: Sequence[float] | Floats,
    b: Sequence[float] | Floats,
    stat: Stat,
    alpha: float,
    rng: np.random.Generator,
    n_boot: int = 2000,
) -> tuple[float, float]:
    """Bootstrap interval of stat(a) - stat(b) for two independent samples (e.g. candidate vs noise floor)."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(xa) == 0 or len(xb) == 0:
        return math.nan, math.nan
    diffs = _boot_stats(xa, stat, rng, n_boot) - _boot_stats(xb, stat, rng, n_boot)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _binom_cdf(n: int, q: float) -> Floats:
    """P(Bin(n, q) <= j) for j = 0..n, from log-pmfs (no scipy needed)."""
    j = np.arange(n + 1, dtype=np.float64)
    lg = np.array([math.lgamma(i + 1.0) for i in range(n + 1)])
    log_pmf = lg[n] - lg - lg[::-1] + j * math.log(q) + (n - j) * math.log1p(-q)
    return np.asarray(np.minimum(np.cumsum(np.exp(log_pmf)), 1.0), dtype=np.float64)


def quantile_ci(values: Sequence[float] | Floats, q: float, alpha: float) -> tuple[float, float]:
    """Distribution-free interval for the q-quantile from order statistics (exact, valid for small n).

    A bound the data cannot support is infinite: with 30 values nothing bounds the p95 from above at 95 %,
    which is the honest answer a percentile bootstrap would hide."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n == 0:
        return math.nan, math.nan
    cdf = _binom_cdf(n, q)
    # lower: x_(l) (1-based) with P(Bin <= l - 1) <= alpha/2; upper: x_(u) with P(Bin <= u - 1) >= 1 - alpha/2
    lo_idx = int(np.searchsorted(cdf, alpha / 2, side="left"))  # = l
    hi_idx = int(np.searchsorted(cdf, 1 - alpha / 2, side="left")) + 1  # = u
    lo = -math.inf if lo_idx < 1 else float(x[lo_idx - 1])
    hi = math.inf if hi_idx > n else float(x[hi_idx - 1])
    return lo, hi


def rank_biserial(deltas: Floats) -> float:
    """Matched-pairs rank-biserial correlation: +1 when every delta is positive, -1 when all are negative."""
    d = deltas[deltas != 0]
    if len(d) == 0:
        return 0.0
    magnitudes = np.abs(d)
    order = np.argsort(magnitudes, kind="stable")
    ranks = np.empty(len(d))
    ranks[order] = np.arange(1, len(d) + 1)
    # ties share the mean of the ranks they span
    uniq, inverse = np.unique(magnitudes, return_inverse=True)
    if len(uniq) < len(d):
        ranks = (np.bincount(inverse, weights=ranks) / np.bincount(inverse))[inverse]
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def paired_delta(
    a: Sequence[float] | Floats, b: Sequence[float] | Floats, alpha: float, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """Per-request a - b: (median delta, its exact order-statistic CI low, high, rank-biserial effect size).
    The interval is distribution-free and, unlike a bootstrap of the median, cheap on large windows."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) == 0:
        return math.nan, math.nan, math.nan, math.nan
    lo, hi = quantile_ci(d, 0.5, alpha)
    return float(np.median(d)), lo, hi, rank_biserial(d)
