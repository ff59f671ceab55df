"""Anytime-valid confidence sequences: bounds that hold at every look at once, as pure functions.

A lower bound at level alpha is a sequence L_1, L_2, ... with P(the true value is below L_n for some n) <=
alpha (upper bounds alike): the gate may be run after every pair, as often as anyone likes, and the chance
that any of its looks is wrong stays alpha. A fixed-n interval looked at again and again gives no such
promise. The price is a wider bound at any single n, repaid because alpha need not be divided between looks.
Bounds are one-sided, each with its own level: the gate holds a GO to alpha and a NO-GO to its own level.

- Rates (`lower_bound`, `upper_bound`): the one-sided beta-binomial mixture of Howard, Ramdas, McAuliffe
  and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Annals of Statistics
  2021), with the prior centred on each candidate rate and tuned for `T_OPT` pairs, as in their reference
  implementation (confseq's `beta_binomial_log_mixture`; compared with it in the tests when it is
  installed). It depends only on the count, not on the order of the pairs.
- Quantiles (`quantile_bounds`): whether a value falls below a fixed quantile is a Bernoulli trial, so the
  rate bounds turn into order statistics (Howard & Ramdas, "Sequential estimation of quantiles with
  applications to A/B testing and best-arm identification", Bernoulli 2022).
- Means of bounded values (`mean_bounds`): the predictable-mixture empirical-Bernstein sequence of
  Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting" (JRSS-B 2024), over the
  values in the order they arrived, with the running intersection (confseq's `predmix_empbern_lower_cs`).
  It adapts to the values' spread, where a Hoeffding sequence would not.
- Differences (`rate_difference_bounds`, `mean_difference_bounds`): each side's bound at half the level,
  the extreme differences (a union bound: valid, a little conservative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

Floats = NDArray[np.float64]

# The rate bounds are tuned to be tightest around t_opt pairs, fixed before any data is seen: where a
# clean candidate could first pass. Any n stays valid; far from t_opt a bound is wider than it could be.
T_OPT = 1000


def tuned_for(limit: float) -> float:
    """t_opt for a rate judged against `limit` (its distance from 0 or 1 for a floor): the rule of three,
    the number of pairs at which zero bad ones first bound the rate at the limit (30 to 100,000)."""
    return min(max(3.0 / max(limit, 1e-9), 30.0), 100_000.0)


# The largest bet of the mean bounds (any value below 1 is valid). confseq's default is 1/2; a larger one
# tightens the bounds of low-spread values such as similarity scores, whose width is then about
# log(1 / alpha) / (TRUNCATION * n) of the range, and barely changes the others.
TRUNCATION = 0.8


def _rho(v_opt: float, alpha: float) -> float:
    """The normal mixture's precision that makes its one-sided boundary tightest at intrinsic time v_opt."""
    ell = 2 * math.log(1 / (2 * alpha))
    return v_opt / (ell + math.log(1 + ell))


def log_mixture(
    k: int | NDArray[np.int64], n: int, p: float, alpha: float, t_opt: float = T_OPT
) -> NDArray[np.float64]:
    """Log of the one-sided beta-binomial mixture supermartingale after k successes in n trials: the evidence
    that the rate is above p. Its prior is a Beta with mean p, tuned for t_opt pairs and cut to the rates
    above p; by Ville's inequality, when the rate is p or less it reaches log(1 / alpha) at any n with
    probability at most alpha. (confseq's `beta_binomial_log_mixture(..., is_one_sided=True)`.) k may be an
    array: the evidence for each count at once."""
    g, h = p, 1 - p
    r = max(_rho(g * h * t_opt, alpha) - g * h, 1e-3 * g * h)
    a0, b0 = r / h, r / g  # the prior Beta(a0, b0) of the rate: mean p
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore"):  # a mass that underflows is no evidence: -inf, never a rejection
        posterior = special.betaln(a0 + k, b0 + n - k) + np.log(special.betainc(b0 + n - k, a0 + k, h))
    prior = special.betaln(a0, b0) + math.log(special.betainc(b0, a0, h))
    return np.asarray(posterior - prior - k * math.log(g) - (n - k) * math.log(h), dtype=np.float64)


def _rejects(k: int, n: int, p: float, alpha: float, t_opt: float) -> bool:
    return bool(log_mixture(k, n, p, alpha, t_opt) >= math.log(1 / alpha))


def can_bound_quantile(n: int, q: float, alpha: float, t_opt: float = T_OPT) -> bool:
    """Whether n values can bound the q-quantile from above at all: n values all below it must be evidence
    enough against a rate of q (then the largest value is the first upper bound)."""
    return _rejects(n, n, q, alpha, t_opt)


def lower_bound(k: int, n: int, alpha: float, t_opt: float = T_OPT) -> float:
    """The least rate not rejected after k successes in n trials: below the true rate at some n with
    probability at most alpha, however many n are looked at. 0 with no trials or no successes."""
    if not 0 <= k <= n:
        raise ValueError(f"successes must be between 0 and the {n} trials, got {k}")
    if k == 0:
        return 0.0
    inside = min(k / n, 1 - 1e-12)  # the observed rate is never rejected
    outside = 1e-12
    if not _rejects(k, n, outside, alpha, t_opt):
        return 0.0
    threshold = math.log(1 / alpha)
    return float(
        optimize.brentq(
            lambda p: float(log_mixture(k, n, p, alpha, t_opt)) - threshold, outside, inside, xtol=1e-12
        )
    )


def upper_bound(k: int, n: int, alpha: float, t_opt: float = T_OPT) -> float:
    """The greatest rate not rejected: above the true rate at every n with probability 1 - alpha."""
    return 1.0 - lower_bound(n - k, n, alpha, t_opt)


def quantile_bounds(
    values: Sequence[float] | Floats, q: float, alpha_low: float, alpha_high: float, t_opt: float = T_OPT
) -> tuple[float, float]:
    """Bounds on the q-quantile from order statistics: the lower one wrong at some n with probability at
    most alpha_low, the upper one at most alpha_high, however many n are looked at.

    The u-th smallest value is an upper bound once u values below the quantile would reject a rate of q
    (whether a value falls below the quantile is a Bernoulli trial of rate q at most); the l-th smallest is a
    lower bound while n - l + 1 values above it would reject a rate of 1 - q. A bound the data cannot support
    yet is infinite."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n == 0:
        return math.nan, math.nan
    counts = np.arange(n + 1)
    high_evidence = log_mixture(counts, n, q, alpha_high, t_opt) >= math.log(1 / alpha_high)
    low_evidence = log_mixture(counts, n, 1 - q, alpha_low, t_opt) >= math.log(1 / alpha_low)
    upper = int(np.argmax(high_evidence)) if high_evidence.any() else None  # the least rejecting count u
    # the greatest l such that n - l + 1 values above it reject 1 - q; `least` is that count, n - l + 1
    least = int(np.argmax(low_evidence)) if low_evidence.any() else None
    hi = math.inf if upper is None or upper < 1 else float(x[upper - 1])
    lower = None if least is None else n - least + 1
    lo = -math.inf if lower is None or lower > n else float(x[lower - 1])
    return lo, hi


def _lambdas(x: Floats, alpha: float, truncation: float) -> Floats:
    """The predictable bets: from the regularised mean and variance of the values before each one."""
    t = np.arange(1, len(x) + 1, dtype=np.float64)
    mu = np.minimum((0.5 + np.cumsum(x)) / (t + 1), 1.0)
    sigma2 = (0.25 + np.cumsum((x - mu) ** 2)) / (t + 1)
    sigma2_before = np.append(0.25, sigma2[:-1])
    lambdas = np.sqrt(2 * math.log(1 / alpha) / (t * np.log1p(t) * sigma2_before))
    return np.asarray(np.minimum(np.nan_to_num(lambdas, nan=0.0), truncation), dtype=np.float64)


def _lower_cs(x: Floats, alpha: float, truncation: float = TRUNCATION) -> Floats:
    """Lower ends of the empirical-Bernstein sequence for values in [0, 1], at every n (running maximum)."""
    t = np.arange(1, len(x) + 1, dtype=np.float64)
    mu_before = np.append(0.0, (np.cumsum(x) / t)[:-1])
    v = (x - mu_before) ** 2
    lambdas = _lambdas(x, alpha, truncation)
    psi = -np.log1p(-lambdas) - lambdas
    margin = (math.log(1 / alpha) + np.cumsum(v * psi)) / np.cumsum(lambdas)
    centre = np.cumsum(lambdas * x) / np.cumsum(lambdas)
    return np.asarray(np.maximum.accumulate(np.maximum(centre - margin, 0.0)), dtype=np.float64)


def mean_bounds(
    values: Sequence[float] | Floats, alpha_low: float, alpha_high: float, low: float = 0.0, high: float = 1.0
) -> tuple[float, float]:
    """Bounds on the mean of values known to lie in [low, high], given in the order they arrived: the lower
    one wrong at some n with probability at most alpha_low, the upper one at most alpha_high. Values outside
    the range are clipped to it (the caller says so per metric). (nan, nan) for no values."""
    if not high > low:
        raise ValueError(f"a mean's range must have high > low, got [{low}, {high}]")
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return math.nan, math.nan
    y = (np.clip(x, low, high) - low) / (high - low)
    lo = float(_lower_cs(y, alpha_low)[-1])
    hi = 1.0 - float(_lower_cs(1.0 - y, alpha_high)[-1])
    return low + lo * (high - low), low + hi * (high - low)


def rate_difference_bounds(
    k1: int, n1: int, k2: int, n2: int, alpha_low: float, alpha_high: float, t_opt: float = T_OPT
) -> tuple[float, float]:
    """Bounds on p1 - p2 for two independent rates: each rate's bounds at half the level, the extreme
    differences (a union bound). (-1, 1) when either side has no trials."""
    if n1 == 0 or n2 == 0:
        return -1.0, 1.0
    lo = lower_bound(k1, n1, alpha_low / 2, t_opt) - upper_bound(k2, n2, alpha_low / 2, t_opt)
    hi = upper_bound(k1, n1, alpha_high / 2, t_opt) - lower_bound(k2, n2, alpha_high / 2, t_opt)
    return lo, hi


def mean_difference_bounds(
    a: Sequence[float] | Floats,
    b: Sequence[float] | Floats,
    alpha_low: float,
    alpha_high: float,
    low: float = 0.0,
    high: float = 1.0,
) -> tuple[float, float]:
    """Bounds on mean(a) - mean(b) for two independent samples in [low, high], each in arrival order."""
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    lo_a, hi_a = mean_bounds(a, alpha_low / 2, alpha_high / 2, low, high)
    lo_b, hi_b = mean_bounds(b, alpha_high / 2, alpha_low / 2, low, high)
    return lo_a - hi_b, hi_a - lo_b
