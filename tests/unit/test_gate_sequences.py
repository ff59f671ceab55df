"""The anytime-valid bounds: they cover at every look at once, where fixed-n intervals looked at again and
again do not; and they are the published constructions (compared with confseq where it is installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gate import sequences, stats
from gate.intervals import Bounds

LOOKS = range(25, 2001, 25)  # 80 looks at one growing sample


def _miss_rate(streams: np.ndarray, truth: float, bound: object) -> float:
    """The share of streams in which `bound(prefix)` excluded the truth at any look."""
    assert callable(bound)
    return float(np.mean([any(bound(row[:n], truth) for n in LOOKS) for row in streams]))


def test_rate_bounds_cover_at_every_look_where_repeated_fixed_intervals_do_not() -> None:
    alpha, reps = 0.05, 300
    for p in (0.005, 0.05):
        rng = np.random.default_rng(11)
        streams = rng.random((reps, max(LOOKS))) < p
        t_opt = sequences.tuned_for(p)

        def upper_wrong(x: np.ndarray, truth: float, t_opt: float = t_opt) -> bool:
            return sequences.upper_bound(int(x.sum()), len(x), alpha, t_opt) < truth

        def lower_wrong(x: np.ndarray, truth: float, t_opt: float = t_opt) -> bool:
            return sequences.lower_bound(int(x.sum()), len(x), alpha, t_opt) > truth

        def naive_wrong(x: np.ndarray, truth: float) -> bool:  # one-sided 95 % Wilson, looked at 80 times
            return stats.wilson(int(x.sum()), len(x), 2 * alpha)[1] < truth

        upper, lower, naive = (_miss_rate(streams, p, f) for f in (upper_wrong, lower_wrong, naive_wrong))
        print(f"p={p}: upper wrong {upper:.3f}, lower wrong {lower:.3f}, naive wrong {naive:.3f}")
        assert upper <= alpha + 0.02  # Monte-Carlo slack: the standard error is ~0.013
        assert lower <= alpha + 0.02
        assert naive > alpha + 0.04  # the failure the sequences exist for


def test_quantile_bounds_cover_the_p95_at_every_look() -> None:
    rng = np.random.default_rng(5)
    streams = rng.lognormal(6.8, 0.35, (200, max(LOOKS)))
    p95 = math.exp(6.8 + 0.35 * 1.6448536269514722)

    def above(x: np.ndarray, truth: float) -> bool:
        lo, hi = sequences.quantile_bounds(x, 0.95, 0.05, 0.05, sequences.tuned_for(0.05))
        return not lo <= truth <= hi

    def naive(x: np.ndarray, truth: float) -> bool:
        lo, hi = stats.quantile_ci(x, 0.95, 0.1)
        return not lo <= truth <= hi

    wrong, naive_wrong = _miss_rate(streams, p95, above), _miss_rate(streams, p95, naive)
    print(f"p95: wrong at some look {wrong:.3f}, naive {naive_wrong:.3f}")
    assert wrong <= 0.10 + 0.03  # two one-sided bounds at 0.05 each
    assert naive_wrong > wrong


def test_mean_bounds_cover_at_every_look() -> None:
    rng = np.random.default_rng(9)
    streams = rng.beta(30, 3, (200, max(LOOKS)))  # similarity-like: near 1, little spread
    mean = 30 / 33

    def wrong(x: np.ndarray, truth: float) -> bool:
        lo, hi = sequences.mean_bounds(x, 0.05, 0.05)
        return not lo <= truth <= hi

    def naive(x: np.ndarray, truth: float) -> bool:  # a normal interval at 90 %, looked at 80 times
        half = 1.6448536269514722 * x.std(ddof=1) / math.sqrt(len(x))
        return not x.mean() - half <= truth <= x.mean() + half

    miss, naive_miss = _miss_rate(streams, mean, wrong), _miss_rate(streams, mean, naive)
    print(f"mean: wrong at some look {miss:.3f}, naive {naive_miss:.3f}")
    assert miss <= 0.10 + 0.03
    assert naive_miss > 0.10 + 0.05
    # The bounds adapt to the spread: far narrower than the range over a square root of n.
    lo, hi = sequences.mean_bounds(streams[0], 0.05, 0.05)
    assert hi - lo < 0.03


def test_the_bounds_narrow_as_pairs_accumulate_and_refuse_nonsense() -> None:
    widths = [
        sequences.upper_bound(n // 100, n, 0.05) - sequences.lower_bound(n // 100, n, 0.05)
        for n in (
            500,
            2000,
            8000,
        )
    ]
    assert widths[0] > widths[1] > widths[2]
    assert sequences.lower_bound(0, 500, 0.05) == 0.0
    assert sequences.upper_bound(500, 500, 0.05) == 1.0
    with pytest.raises(ValueError, match="between 0 and the 10 trials"):
        sequences.lower_bound(11, 10, 0.05)
    with pytest.raises(ValueError, match="high > low"):
        sequences.mean_bounds([0.5], 0.05, 0.05, 1.0, 1.0)
    assert all(math.isnan(v) for v in sequences.mean_bounds([], 0.05, 0.05))
    assert all(math.isnan(v) for v in sequences.quantile_bounds([], 0.95, 0.05, 0.05))


def test_a_go_rests_on_alpha_and_a_no_go_on_its_own_level() -> None:
    b = Bounds("anytime", alpha=0.05, no_go_alpha=0.2)
    # a ceiling: the high end (the GO side) at 0.05, the low end (the NO-GO side) at 0.2
    lo, hi = b.rate(20, 2000, limit=0.005)
    t_opt = sequences.tuned_for(0.005)
    assert hi == sequences.upper_bound(20, 2000, 0.05, t_opt)
    assert lo == sequences.lower_bound(20, 2000, 0.2, t_opt)
    # a floor: the other way round
    lo, hi = b.rate(1900, 2000, limit=0.8, higher_is_better=True)
    t_opt = sequences.tuned_for(0.2)
    assert lo == sequences.lower_bound(1900, 2000, 0.05, t_opt)
    assert hi == sequences.upper_bound(1900, 2000, 0.2, t_opt)
    # per look: today's two-sided interval at the alpha spent on the look
    old = Bounds("per_look", alpha=0.05, no_go_alpha=0.2, look=3)
    assert old.rate(20, 2000, limit=0.005) == stats.wilson(20, 2000, stats.spent_alpha(0.05, 3))


# --- the published reference --------------------------------------------------------------------------
# confseq (the authors' package) builds only from source; to run these two where it is missing:
#   python -m venv /tmp/cs && /tmp/cs/bin/pip install "numpy<2" scipy pybind11 scikit-build cmake pytest \
#       pytest-asyncio pytest-timeout redis && apt-get install libboost-dev && \
#   /tmp/cs/bin/pip install --no-build-isolation confseq==0.0.11 && \
#   PYTHONPATH=. /tmp/cs/bin/python -m pytest tests/unit/test_gate_sequences.py -k confseq


def test_the_rate_mixture_is_confseq_s() -> None:
    boundaries = pytest.importorskip("confseq.boundaries")
    for k, n, p, alpha, t_opt in (
        (3, 500, 0.004, 0.05, 750),
        (40, 2000, 0.01, 0.2, 1000),
        (9, 100, 0.2, 0.05, 60),
    ):
        ours = sequences.log_mixture(k, n, p, alpha, t_opt)
        theirs = boundaries.beta_binomial_log_mixture(
            k - p * n, p * (1 - p) * n, p * (1 - p) * t_opt, p, 1 - p, alpha, True
        )
        assert ours == pytest.approx(float(theirs), rel=1e-9, abs=1e-9)


def test_the_mean_bounds_are_confseq_s() -> None:
    predmix = pytest.importorskip("confseq.predmix")
    x = np.random.default_rng(3).beta(8, 2, 700)
    theirs = predmix.predmix_empbern_lower_cs(
        x, alpha=0.025, truncation=sequences.TRUNCATION, running_intersection=True
    )
    ours = sequences._lower_cs(x, 0.025)
    assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-12)
