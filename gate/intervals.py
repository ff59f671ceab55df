"""How the judge bounds a statistic at one look: anytime-valid bounds (the default) or per-look intervals.

- "anytime": one-sided confidence sequences (gate/sequences.py). The bound a PASS rests on is at the
  policy's `alpha`, the bound a FAIL rests on at its `no_go_alpha`; both hold at every look at once, so the
  chance of any wrong GO over all looks, however many and whenever taken, is at most alpha (and of any
  wrong NO-GO at most no_go_alpha), with no alpha divided between looks.
- "per_look": the judge before confidence sequences: two-sided fixed-n intervals (Wilson, Newcombe, exact
  order statistics, bootstrap) at alpha_k = alpha * 6 / (pi^2 k^2) for the k-th look. Kept so the two can
  be compared side by side (bench/decision_quality.py) and for anyone who must reproduce an old verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from gate import sequences, stats

Method = Literal["anytime", "per_look"]
Values = Sequence[float] | stats.Floats


@dataclass(frozen=True)
class Bounds:
    """The bounds of one look. Every method returns (low, high); `higher_is_better` says which end a PASS
    rests on: the high end for a ceiling (errors, latency), the low end for a floor (similarity)."""

    method: Method
    alpha: float  # a wrong GO, over all looks
    no_go_alpha: float  # a wrong NO-GO, over all looks (anytime only)
    look: int = 1
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(20270102))

    @property
    def alpha_used(self) -> float:
        """The level of this look's GO bound: alpha itself, or the share of it spent on this look."""
        return self.alpha if self.method == "anytime" else stats.spent_alpha(self.alpha, self.look)

    @property
    def label(self) -> str:
        if self.method == "anytime":
            return "bounds valid at every look"
        return f"{100 * (1 - self.alpha_used):.1f} % CI"

    def halved(self) -> Bounds:
        """The same bounds at half of both levels: for one of two comparisons that either may pass."""
        return replace(self, alpha=self.alpha / 2, no_go_alpha=self.no_go_alpha / 2)

    def _levels(self, higher_is_better: bool) -> tuple[float, float]:
        """(alpha of the low end, alpha of the high end): the end a PASS needs gets alpha."""
        return (self.alpha, self.no_go_alpha) if higher_is_better else (self.no_go_alpha, self.alpha)

    def rate(self, k: int, n: int, limit: float, higher_is_better: bool = False) -> tuple[float, float]:
        """Bounds on a rate judged against `limit` (the anytime bounds are tuned to it, never to the data)."""
        if self.method == "per_look":
            return stats.wilson(k, n, self.alpha_used)
        if n == 0:
            return 0.0, 1.0
        a_low, a_high = self._levels(higher_is_better)
        t_opt = sequences.tuned_for(1 - limit if higher_is_better else limit)
        return sequences.lower_bound(k, n, a_low, t_opt), sequences.upper_bound(k, n, a_high, t_opt)

    def quantile(self, values: Values, q: float, higher_is_better: bool = False) -> tuple[float, float]:
        if self.method == "per_look":
            return stats.quantile_ci(values, q, self.alpha_used)
        t_opt = sequences.tuned_for(1 - q)
        return sequences.quantile_bounds(values, q, *self._levels(higher_is_better), t_opt)

    def mean(
        self, values: Values, low: float, high: float, higher_is_better: bool = True
    ) -> tuple[float, float]:
        """values in the order they arrived, each within [low, high] (clipped to it by the anytime bounds)."""
        if self.method == "per_look":
            return stats.bootstrap_ci(values, stats.mean, self.alpha_used, self.rng)
        return sequences.mean_bounds(values, *self._levels(higher_is_better), low, high)

    def rate_difference(
        self, k1: int, n1: int, k2: int, n2: int, margin: float, higher_is_better: bool = False
    ) -> tuple[float, float]:
        """Bounds on rate 1 - rate 2, judged against `margin`."""
        if self.method == "per_look":
            return stats.rate_difference(k1, n1, k2, n2, self.alpha_used)
        t_opt = sequences.tuned_for(margin)
        return sequences.rate_difference_bounds(k1, n1, k2, n2, *self._levels(higher_is_better), t_opt)

    def mean_difference(
        self, a: Values, b: Values, low: float, high: float, higher_is_better: bool = True
    ) -> tuple[float, float]:
        if self.method == "per_look":
            return stats.two_sample_ci(a, b, stats.mean, self.alpha_used, self.rng)
        return sequences.mean_difference_bounds(a, b, *self._levels(higher_is_better), low, high)

    def upper_bounded(self, n: int, q: float) -> bool:
        """Whether n values can bound the q-quantile from above at all (the largest is the first bound)."""
        if self.method == "per_look":
            return q**n <= self.alpha_used / 2
        return sequences.can_bound_quantile(n, q, self._levels(False)[1], sequences.tuned_for(1 - q))
