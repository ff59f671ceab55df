"""The gate's statistics against known values and simulated coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gate import stats


def test_wilson_known_values() -> None:
    # Wilson 95 % for 0/10, 5/10 and 81/263 (Newcombe 1998 and the usual textbook examples)
    assert stats.wilson(0, 10, 0.05) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert stats.wilson(5, 10, 0.05) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert stats.wilson(81, 263, 0.05) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert stats.wilson(0, 0, 0.05) == (0.0, 1.0)


def test_spent_alpha_sums_to_alpha() -> None:
    assert stats.spent_alpha(0.05, 1) == pytest.approx(0.05 * 6 / math.pi**2)
    assert sum(stats.spent_alpha(0.05, k) for k in range(1, 100_000)) == pytest.approx(0.05, rel=1e-4)
    with pytest.raises(ValueError, match="from 1"):
        stats.spent_alpha(0.05, 0)


def test_bootstrap_mean_ci_covers_the_true_mean() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        x = rng.exponential(1.0, size=80)  # skewed, true mean 1
        lo, hi = stats.bootstrap_ci(x, stats.mean, 0.1, rng, n_boot=500)
        hits += lo <= 1.0 <= hi
    assert 0.82 <= hits / 200 <= 0.97  # nominal 90 %, percentile bootstrap runs a little short on skew


def test_bootstrap_is_reproducible_and_handles_empty() -> None:
    x = np.arange(50, dtype=float)
    a = stats.bootstrap_ci(x, stats.median, 0.05, np.random.default_rng(7))
    assert a == stats.bootstrap_ci(x, stats.median, 0.05, np.random.default_rng(7))
    assert all(math.isnan(v) for v in stats.bootstrap_ci([], stats.mean, 0.05, np.random.default_rng(7)))


def test_quantile_ci_coverage_and_small_n() -> None:
    rng = np.random.default_rng(2)
    true_p95 = -math.log(0.05)  # exponential(1)
    hits = sum(
        lo <= true_p95 <= hi
        for lo, hi in (stats.quantile_ci(rng.exponential(1.0, 300), 0.95, 0.1) for _ in range(300))
    )
    assert hits / 300 >= 0.87  # exact method: at least the nominal 90 % (less Monte-Carlo noise)
    # 30 values cannot bound a p95 from above at 95 %
    assert stats.quantile_ci(np.arange(30.0), 0.95, 0.05)[1] == math.inf


def test_paired_delta_and_effect_size() -> None:
    rng = np.random.default_rng(3)
    primary = rng.uniform(800, 1200, 200)
    med, lo, hi, effect = stats.paired_delta(primary + 100, primary, 0.05, rng)
    assert med == pytest.approx(100)
    assert lo == pytest.approx(100)
    assert hi == pytest.approx(100)
    assert effect == 1.0
    assert stats.rank_biserial(np.array([-1.0, -2.0, 3.0])) == pytest.approx(0.0)
    assert stats.rank_biserial(np.zeros(5)) == 0.0
