"""The gate's judge: one tenant x route's samples and policy in, a verdict with its evidence out (pure).

Each metric the route judges gets a statistic, bounds and a status: PASS when the bound on the good side is
within the policy's limit, FAIL when the bound on the bad side is beyond it, MARGINAL in between, NO_DATA
when there are no values (a metric the policy marks `required` FAILs instead once more than
`max_missing_rate` of the answered pairs lack it). The bounds (gate/intervals.py, gate/sequences.py) are
anytime-valid by default: rates from a beta-binomial mixture, the p95 latency from order statistics, means
of bounded scores from an empirical-Bernstein sequence. The clinical rates (critical contradictions, major
omissions) are judged against production's own rate where the noise floor is measured, against a small
margin, else against an absolute ceiling. Latency is also compared per request (candidate - primary) where
both sides answered: median delta, its order-statistic interval and a rank-biserial effect size are in the
latency reason (shown, not judged).

Verdict: fewer than `min_pairs` pairs -> INSUFFICIENT_DATA; any FAIL -> NO_GO (a critical metric's failure is
named first, Kayenta-style: it cannot be outweighed); any MARGINAL -> HOLD, a person decides; a critical
metric that cannot be computed -> HOLD; a critical clinical flag not yet reviewed (require_review) -> HOLD;
too many unscored pairs -> HOLD; otherwise GO. Every verdict lists its reasons in plain words, how far a
marginal metric is from a decision, and the keys of the worst pairs per metric.

Repeated looks. The gate is run again and again while traffic accumulates, and each run is another chance of
a wrong GO. The anytime bounds hold at every look at once: the chance that any look at a growing sample
passes a metric that is truly beyond its limit is at most `alpha`, however often the gate is run, and the
chance of any wrong FAIL at most `no_go_alpha`. (The policy's `intervals = "per_look"` keeps the judge of
before, which divided alpha between looks: alpha_k = alpha * 6 / (pi^2 * k^2) at the k-th look.) The look
count restarts when the policy version changes and is reported with each verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from gate import distance, stats
from gate.intervals import Bounds
from gate.policy import RoutePolicy
from gate.samples import Samples

Status = Literal["PASS", "FAIL", "MARGINAL", "NO_DATA"]
VerdictStatus = Literal["GO", "HOLD", "NO_GO", "INSUFFICIENT_DATA"]

_TEXT = (
    "error_rate",
    "candidate_p95_ms",
    "semantic_similarity",
    "rouge_l_f1",
    "fact_mismatch_rate",
    "omission_rate",
)
# What each route judges; a route not listed judges what "other" does.
ROUTE_METRICS: dict[str, tuple[str, ...]] = {
    "audio": ("error_rate", "candidate_p95_ms", "wer", "cer", "fact_mismatch_rate", "omission_rate"),
    "chat": _TEXT,
    "reason": _TEXT,
    "vision": _TEXT,
    "embed": ("error_rate", "candidate_p95_ms", "embed_rank_correlation"),
    "rerank": ("error_rate", "candidate_p95_ms", "rerank_top1_match"),
    "other": ("error_rate", "candidate_p95_ms"),
}
_SEED = 20270102  # fixed: a verdict is a function of its inputs
# The range each averaged metric's values lie in (the anytime bounds need one). Word and character error
# rates can pass 1 with inserted words; a pair is counted at most 1 (every word wrong), documented.
_RANGE: dict[str, tuple[float, float]] = {
    "semantic_similarity": (-1.0, 1.0),
    "rouge_l_f1": (0.0, 1.0),
    "wer": (0.0, 1.0),
    "cer": (0.0, 1.0),
    "embed_rank_correlation": (-1.0, 1.0),
}
_WORST = 5  # example pairs per metric
_WORST_MISMATCHES = 20  # every fact mismatch is worth reading, up to this many


@dataclass(frozen=True)
class MetricResult:
    name: str
    status: Status
    statistic: str  # "p95", "rate", "mean", "mean drop vs noise floor"
    value: float | None
    ci_low: float | None
    ci_high: float | None
    limit: float
    n: int
    critical: bool
    reason: str
    effect_size: float | None = None  # latency: rank-biserial of candidate - primary per request


@dataclass(frozen=True)
class Verdict:
    tenant: str
    route: str
    status: VerdictStatus
    reasons: list[str]
    metrics: list[MetricResult]
    worst: dict[str, list[str]]
    n: int
    unscored: int
    look: int
    alpha_used: float
    policy_version: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for m in d["metrics"]:  # JSON has no infinity or NaN
            for k in ("value", "ci_low", "ci_high", "effect_size"):
                if isinstance(m[k], float) and not math.isfinite(m[k]):
                    m[k] = None
        return d


@dataclass
class _Ctx:
    s: Samples
    p: RoutePolicy
    b: Bounds
    rng: np.random.Generator
    answered: list[bool] = field(init=False)  # both sides answered in time: the pairs quality is judged on

    def __post_init__(self) -> None:
        self.answered = [
            not cf and not pf and ms is not None and ms <= self.p.candidate_timeout_ms
            for cf, pf, ms in zip(
                self.s.candidate_failed, self.s.primary_failed, self.s.candidate_ms, strict=True
            )
        ]

    @property
    def ci(self) -> str:
        return self.b.label


def _status(lo: float, hi: float, limit: float, higher_is_better: bool) -> Status:
    if higher_is_better:
        return "PASS" if lo >= limit else "FAIL" if hi < limit else "MARGINAL"
    return "PASS" if hi <= limit else "FAIL" if lo > limit else "MARGINAL"


def _side(status: Status, higher_is_better: bool) -> str:
    if status == "MARGINAL":
        return "too close to call against"
    good = status == "PASS"
    return ("at or above" if good else "below") if higher_is_better else ("within" if good else "above")


def _ms(v: float) -> str:
    if not math.isfinite(v):
        return "unbounded"
    return f"{v / 1000:.2f} s" if abs(v) >= 1000 else f"{v:.0f} ms"


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _num(v: float) -> str:
    return f"{v:.3f}"


def _worst(keys: Sequence[str], values: Sequence[float], highest: bool, k: int = _WORST) -> list[str]:
    order = np.argsort(np.asarray(values, dtype=np.float64), kind="stable")
    if highest:
        order = order[::-1]
    return [keys[i] for i in order[:k]]


def _result(
    c: _Ctx,
    name: str,
    statistic: str,
    label: str,
    fmt: Callable[[float], str],
    value: float,
    ci: tuple[float, float],
    limit: float,
    n: int,
    higher_is_better: bool,
    extra: str = "",
    effect: float | None = None,
) -> MetricResult:
    status = _status(ci[0], ci[1], limit, higher_is_better)
    kind = "floor" if higher_is_better else "ceiling"
    reason = (
        f"{label} {fmt(value)} ({c.ci} {fmt(ci[0])}–{fmt(ci[1])}, n={n}) is "
        f"{_side(status, higher_is_better)} the {fmt(limit)} {kind}{extra}."
    )
    return MetricResult(
        name, status, statistic, value, ci[0], ci[1], limit, n, name in c.p.critical, reason, effect
    )


def _no_data(c: _Ctx, name: str, limit: float, label: str, n: int, missing: int, total: int) -> MetricResult:
    crit = name in c.p.critical
    if name in c.p.required and total and missing / total > c.p.max_missing_rate:
        reason = (
            f"{label} is missing on {missing} of {total} answered pairs ({_pct(missing / total)}), "
            f"more than the {_pct(c.p.max_missing_rate)} allowed for a required metric."
        )
        return MetricResult(name, "FAIL", "missing", missing / total, None, None, limit, n, crit, reason)
    reason = f"No {label.lower()} values in this window; not judged."
    return MetricResult(name, "NO_DATA", "none", None, None, None, limit, 0, crit, reason)


def _values(c: _Ctx, metric: str) -> tuple[list[str], list[float], int, int]:
    """Keys and values of the answered pairs that have the metric, and how many answered pairs lack it."""
    vals = c.s.metrics.get(metric, [None] * c.s.n)
    keys, out, total = [], [], 0
    for key, ok, v in zip(c.s.keys, c.answered, vals, strict=True):
        if ok:
            total += 1
            if v is not None and math.isfinite(v):
                keys.append(key)
                out.append(float(v))
    return keys, out, total - len(out), total


def _error_rate(c: _Ctx) -> tuple[MetricResult, list[str]]:
    n = c.s.n
    # the primary's failures are shown for comparison, not counted against the candidate
    cand_failed = [
        k
        for k, cf, ms in zip(c.s.keys, c.s.candidate_failed, c.s.candidate_ms, strict=True)
        if cf or ms is None or ms > c.p.candidate_timeout_ms
    ]
    if n == 0:
        return _no_data(c, "error_rate", c.p.error_rate_max, "Candidate error rate", 0, 0, 0), []
    k = len(cand_failed)
    primary = sum(c.s.primary_failed) / n
    extra = f" (errors, no answer, or slower than {_ms(c.p.candidate_timeout_ms)}; primary {_pct(primary)})"
    r = _result(
        c,
        "error_rate",
        "rate",
        "Candidate error rate",
        _pct,
        k / n,
        c.b.rate(k, n, c.p.error_rate_max),
        c.p.error_rate_max,
        n,
        higher_is_better=False,
        extra=extra,
    )
    return r, cand_failed[:_WORST]


def _latency(c: _Ctx) -> tuple[MetricResult, list[str]]:
    limit = c.p.candidate_p95_ms_max
    rows = [
        (key, ms, pms, pf)
        for key, ms, cf, pms, pf in zip(
            c.s.keys, c.s.candidate_ms, c.s.candidate_failed, c.s.primary_ms, c.s.primary_failed, strict=True
        )
        if ms is not None and not cf
    ]
    if not rows:
        return _no_data(c, "candidate_p95_ms", limit, "Candidate latency", 0, 0, 0), []
    keys, ms = [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.float64)
    both = [(m, pms) for _, m, pms, pf in rows if not pf]  # paired: both sides answered the same request
    extra, effect = "", None
    if both:
        med, lo, hi, effect = stats.paired_delta([b[0] for b in both], [b[1] for b in both], c.b.alpha, c.rng)
        extra = (
            f"; per request the candidate is {_ms(abs(med))} {'slower' if med > 0 else 'faster'} than the "
            f"primary (median of {len(both)} paired deltas, {_pct_ci(c.b.alpha)} {_ms(lo)} to {_ms(hi)}, "
            f"rank-biserial effect {effect:+.2f})"
        )
    r = _result(
        c,
        "candidate_p95_ms",
        "p95",
        "Candidate p95 latency",
        _ms,
        float(np.percentile(ms, 95)),
        c.b.quantile(ms, 0.95),
        limit,
        len(ms),
        higher_is_better=False,
        extra=extra,
        effect=effect,
    )
    return r, _worst(keys, ms.tolist(), highest=True)


def _mean_metric(
    c: _Ctx, name: str, label: str, limit: float, higher_is_better: bool
) -> tuple[MetricResult, list[str]]:
    keys, vals, missing, total = _values(c, name)
    if not vals or (name in c.p.required and missing / total > c.p.max_missing_rate):
        return _no_data(c, name, limit, label, len(vals), missing, total), _worst(
            keys, vals, not higher_is_better
        )
    low, high = _RANGE[name]
    ci = c.b.mean(vals[::-1], low, high, higher_is_better)  # oldest first: the order they arrived
    r = _result(c, name, "mean", label, _num, float(np.mean(vals)), ci, limit, len(vals), higher_is_better)
    return r, _worst(keys, vals, highest=not higher_is_better)


def _similarity(c: _Ctx) -> tuple[MetricResult, list[str]]:
    """Similarity against production's own (the noise floor, once measured) or the calibrated floor.

    With a noise floor, the candidate passes when its mean is within the allowed drop of production's own
    or at or above the calibrated floor, each shown at half the level (so a wrong pass of both stays within
    alpha), and fails only when both fail. Production's mean must be bounded from above to judge the drop,
    which takes many noise pairs; meanwhile the calibrated floor, drawn from equivalent answers, still
    decides, and a noise floor below it can only rescue a candidate that rewords as production does."""
    name, label = "semantic_similarity", "Mean semantic similarity"
    noise = [float(v) for v in c.s.noise.get(name, []) if v is not None and math.isfinite(v)]
    if len(noise) < c.p.min_noise_pairs:
        return _mean_metric(c, name, label, c.p.semantic_similarity_min, higher_is_better=True)
    keys, vals, missing, total = _values(c, name)
    limit = -c.p.semantic_margin_vs_noise
    if not vals or (name in c.p.required and missing / total > c.p.max_missing_rate):
        return _no_data(c, name, limit, label, len(vals), missing, total), _worst(keys, vals, highest=False)
    b = c.b.halved() if c.b.method == "anytime" else c.b
    floor = float(np.mean(noise))
    ci = b.mean_difference(vals[::-1], noise[::-1], *_RANGE[name], higher_is_better=True)
    diff = float(np.mean(vals)) - floor
    status = _status(ci[0], ci[1], limit, higher_is_better=True)
    verdict = {"PASS": "within", "FAIL": "more than", "MARGINAL": "too close to call against"}[status]
    reason = (
        f"{label} {_num(diff + floor)} (n={len(vals)}) is {_num(-diff)} below the noise floor's "
        f"{_num(floor)} (primary vs secondary, n={len(noise)}; "
        f"{b.label} of the drop {_num(-ci[1])}–{_num(-ci[0])}), "
        f"{verdict} the allowed drop of {_num(-limit)}"
    )
    if c.b.method == "anytime":
        absolute = b.mean(vals[::-1], *_RANGE[name], higher_is_better=True)
        on_floor = _status(absolute[0], absolute[1], c.p.semantic_similarity_min, higher_is_better=True)
        either: Status = "FAIL" if status == on_floor == "FAIL" else "MARGINAL"
        status = "PASS" if "PASS" in (status, on_floor) else either
        side = _side(on_floor, higher_is_better=True)
        reason += (
            f"; against the calibrated floor ({b.label} {_num(absolute[0])}–{_num(absolute[1])}) "
            f"{side} {_num(c.p.semantic_similarity_min)}"
        )
    r = MetricResult(
        name,
        status,
        "mean minus noise floor",
        diff,
        ci[0],
        ci[1],
        limit,
        len(vals),
        name in c.p.critical,
        reason + ".",
    )
    return r, _worst(keys, vals, highest=False)


def _rate_metric(
    c: _Ctx, name: str, source: str, bad: float, label: str, limit: float, higher_is_better: bool
) -> tuple[MetricResult, list[str]]:
    """Share of pairs whose `source` value is `bad` (fact mismatches) or is not (top-1 agreement)."""
    keys, vals, missing, total = _values(c, source)
    hits = [k for k, v in zip(keys, vals, strict=True) if v == bad]
    if not vals or (name in c.p.required and missing / total > c.p.max_missing_rate):
        return _no_data(c, name, limit, label, len(vals), missing, total), hits[:_WORST_MISMATCHES]
    n = len(vals)
    k = n - len(hits) if higher_is_better else len(hits)
    r = _result(
        c,
        name,
        "rate",
        label,
        _pct,
        k / n,
        c.b.rate(k, n, limit, higher_is_better),
        limit,
        n,
        higher_is_better,
    )
    if not higher_is_better and hits:
        r = replace(r, reason=r.reason[:-1] + f"; {len(hits)} pair(s) disagree on facts.")
    return r, hits[:_WORST_MISMATCHES]


def _contradicts(metrics: dict[str, list[float | None]], i: int) -> bool | None:
    """A critical contradiction in pair i (clinical_ok 0); None when the pair has no clinical score."""
    ok = metrics.get("clinical_ok", [])
    value = ok[i] if i < len(ok) else None
    return None if value is None or not math.isfinite(value) else value == 0.0


def _omits(metrics: dict[str, list[float | None]], i: int) -> bool | None:
    """A major omission in pair i (a prescribed drug or an allergy left out); None when unscored."""
    if _contradicts(metrics, i) is None:
        return None
    omitted = metrics.get("clinical_omissions", [])
    value = omitted[i] if i < len(omitted) else None
    return bool(value) if value is not None and math.isfinite(value) else False


def _clinical_rate(
    c: _Ctx,
    name: str,
    label: str,
    bad: Callable[[dict[str, list[float | None]], int], bool | None],
    ceiling: float,
    margin: float,
) -> tuple[MetricResult, list[str]]:
    """The share of pairs with a clinical failure, judged against production's own share where the noise
    floor (primary vs secondary on the same requests) is measured, else against an absolute ceiling. A
    critical metric that cannot be computed on more than `critical_missing_max` of the answered pairs
    (tool calls only, empty or unreadable answers) is NO_DATA, which never lets the verdict be GO.

    Critical flags go to a clinician. A flag marked a false alarm is counted out, one marked real counted
    in; with `require_review`, a flag nobody has marked yet counts against a GO (the bound a PASS rests on
    includes it) but not towards a NO-GO (the bound a FAIL rests on counts only confirmed flags): until a
    clinician has looked, a rate that is high only through unconfirmed flags is a HOLD, never a NO-GO."""
    hits: list[str] = []
    unconfirmed = 0
    n = missing = total = 0
    for i, (key, ok) in enumerate(zip(c.s.keys, c.answered, strict=True)):
        if not ok:
            continue
        total += 1
        flag = bad(c.s.metrics, i)
        if flag is None:
            missing += 1
            continue
        reviewed = c.s.reviews.get(key) if name == "fact_mismatch_rate" else "real"
        if flag and reviewed == "false_alarm":
            flag = False  # a clinician found the scorer wrong: counted out
        unconfirmed += bool(flag and reviewed is None and c.p.require_review)
        n += 1
        if flag:
            hits.append(key)
    crit = name in c.p.critical
    allowed = c.p.critical_missing_max if crit else c.p.max_missing_rate
    if total and (n == 0 or missing / total > allowed):
        reason = (
            f"{label} cannot be judged: {missing} of {total} answered pairs have no clinical score "
            f"({_pct(missing / total)}; tool calls only, empty or unreadable answers), more than the "
            f"{_pct(allowed)} allowed{' for a critical metric: a person decides' if crit else ''}."
        )
        r = MetricResult(name, "NO_DATA", "missing", missing / total, None, None, ceiling, n, crit, reason)
        return r, hits[:_WORST_MISMATCHES]
    if n == 0:
        return _no_data(c, name, ceiling, label, 0, 0, 0), []
    k = len(hits)
    confirmed = k - unconfirmed  # the count a FAIL may rest on
    noise_flags = [f for f in (bad(c.s.noise, i) for i in range(_noise_len(c.s.noise))) if f is not None]
    skipped = f"; {missing} pair(s) without a clinical score not counted" if missing else ""
    if len(noise_flags) >= c.p.min_noise_pairs:
        kn, nn = sum(noise_flags), len(noise_flags)
        lo = c.b.rate_difference(confirmed, n, kn, nn, margin)[0]
        hi = c.b.rate_difference(k, n, kn, nn, margin)[1]
        diff = k / n - kn / nn
        status = _status(lo, hi, margin, higher_is_better=False)
        verdict = {"PASS": "within", "FAIL": "more than", "MARGINAL": "too close to call against"}[status]
        reason = (
            f"{label} {_pct(k / n)} (n={n}) against production's own {_pct(kn / nn)} "
            f"(primary vs secondary, n={nn}): {_pp(diff)} more ({c.ci} {_pp(lo)} to {_pp(hi)}), "
            f"{verdict} the {_pp(margin)} allowed{skipped}."
        )
        r = MetricResult(name, status, "rate minus noise floor", diff, lo, hi, margin, n, crit, reason)
    else:
        ci = c.b.rate(confirmed, n, ceiling)[0], c.b.rate(k, n, ceiling)[1]
        r = _result(c, name, "rate", label, _pct, k / n, ci, ceiling, n, False, extra=skipped)
    if hits:
        waiting = f", {unconfirmed} of them not yet reviewed (they count against a GO, not for a NO-GO)"
        r = replace(r, reason=r.reason[:-1] + f"; {k} pair(s) flagged{waiting if unconfirmed else ''}.")
    return r, hits[:_WORST_MISMATCHES]


def _awaiting_review(s: Samples) -> int:
    """Pairs with a critical clinical flag that nobody has marked yet."""
    return sum(1 for i, key in enumerate(s.keys) if _contradicts(s.metrics, i) and key not in s.reviews)


def _noise_len(noise: dict[str, list[float | None]]) -> int:
    return max((len(v) for v in noise.values()), default=0)


def _pct_ci(alpha: float) -> str:
    return f"{100 * (1 - alpha):.1f} % CI"


def _confidence(b: Bounds) -> str:
    if b.method == "anytime":
        return f"a wrong GO at most {_pct(b.alpha)} likely over all looks"
    return f"{100 * (1 - b.alpha_used):.1f} % confidence"


def _pp(v: float) -> str:
    return f"{100 * v:+.1f} pp" if math.isfinite(v) else "unbounded"


def _with_distance(c: _Ctx, r: MetricResult) -> MetricResult:
    """A marginal metric's reason says about how many more pairs would decide it, and an unbounded p95
    why it is unbounded."""
    if r.status != "MARGINAL" or r.value is None or r.ci_low is None or r.ci_high is None:
        return r
    extra = ""
    if r.statistic == "p95" and not math.isfinite(r.ci_high):
        least = distance.pairs_to_bound_quantile(0.95, c.b)
        extra = (
            f" {r.n} pairs cannot bound a 95th percentile from above at this confidence: that takes at "
            f"least {least} (the slowest of {least} answers is the first upper bound the data supports)."
        )
    elif r.statistic == "rate":
        needed = distance.pairs_to_decide_rate(r.value, r.n, r.limit, c.b)
        extra = distance.sentence(r.n, needed)
    else:
        needed = distance.pairs_by_width(r.n, r.value, r.ci_low, r.ci_high, r.limit)
        extra = distance.sentence(r.n, needed)
    return replace(r, reason=r.reason + extra)


def _judge_metric(c: _Ctx, name: str) -> tuple[MetricResult, list[str]]:
    result, keys = _judge_one(c, name)
    return _with_distance(c, result), keys


def _judge_one(c: _Ctx, name: str) -> tuple[MetricResult, list[str]]:
    p = c.p
    match name:
        case "error_rate":
            return _error_rate(c)
        case "candidate_p95_ms":
            return _latency(c)
        case "semantic_similarity":
            return _similarity(c)
        case "rouge_l_f1":
            return _mean_metric(c, name, "Mean ROUGE-L F1", p.rouge_l_min, higher_is_better=True)
        case "wer":
            return _mean_metric(
                c, name, "Mean word error rate vs the primary", p.wer_max, higher_is_better=False
            )
        case "cer":
            return _mean_metric(c, name, "Mean character error rate vs the primary", p.cer_max, False)
        case "fact_mismatch_rate":
            label = "Rate of critical clinical-fact contradictions"
            return _clinical_rate(
                c, name, label, _contradicts, p.fact_mismatch_rate_max, p.fact_margin_vs_noise
            )
        case "omission_rate":
            label = "Rate of major clinical-fact omissions"
            return _clinical_rate(c, name, label, _omits, p.omission_rate_max, p.omission_margin_vs_noise)
        case "embed_rank_correlation":
            label = "Mean embedding rank correlation"
            return _mean_metric(c, name, label, p.embed_rank_correlation_min, higher_is_better=True)
        case "rerank_top1_match":
            label = "Rerank top-1 agreement"
            return _rate_metric(c, name, name, 0.0, label, p.rerank_top1_match_min, higher_is_better=True)
    raise ValueError(f"the judge has no rule for metric {name!r}")


_ORDER: dict[Status, int] = {"FAIL": 0, "MARGINAL": 1, "NO_DATA": 2, "PASS": 3}


def judge(samples: Samples, policy: RoutePolicy) -> Verdict:
    """The verdict for one tenant x route at look samples.looks + 1."""
    look = samples.looks + 1
    rng = np.random.default_rng(_SEED)
    bounds = Bounds(policy.intervals, policy.alpha, policy.no_go_alpha, look, rng)
    alpha = bounds.alpha_used
    c = _Ctx(samples, policy, bounds, rng)
    names = [m for m in ROUTE_METRICS.get(samples.route, ROUTE_METRICS["other"]) if m not in policy.skip]
    metrics: list[MetricResult] = []
    worst: dict[str, list[str]] = {}
    for name in names:
        result, keys = _judge_metric(c, name)
        metrics.append(result)
        if keys:
            worst[name] = keys

    by_status = {s: [m for m in metrics if m.status == s] for s in _ORDER}
    n, unscored = samples.n, samples.unscored
    status: VerdictStatus
    if n < policy.min_pairs:
        status = "INSUFFICIENT_DATA"
        head = (
            f"Only {n} pairs in the last {policy.window}; {policy.min_pairs - n} more are needed "
            f"(minimum {policy.min_pairs})."
        )
    elif by_status["FAIL"]:
        status = "NO_GO"
        failed = sorted(by_status["FAIL"], key=lambda m: not m.critical)
        head = "Do not cut over: " + ", ".join(
            f"{m.name}{' (critical)' if m.critical else ''}" for m in failed
        )
        head += " failed."
    elif by_status["MARGINAL"]:
        status = "HOLD"
        head = "A person decides: the data cannot yet tell " + ", ".join(
            m.name for m in by_status["MARGINAL"]
        )
        head += " from its limit."
    elif any(m.critical for m in by_status["NO_DATA"]):
        status = "HOLD"
        head = "A person decides: the critical metric " + ", ".join(
            m.name for m in by_status["NO_DATA"] if m.critical
        )
        head += " could not be computed, and without it there is no GO."
    elif not by_status["PASS"]:
        status = "HOLD"
        head = "Nothing could be judged for this route; a person decides."
    elif policy.require_review and (waiting := _awaiting_review(samples)):
        status = "HOLD"
        head = (
            f"Every judged metric passed, but {waiting} critical clinical flag(s) in this window await a "
            "clinician's review (shadowgate review queue); a GO needs every one reviewed."
        )
    elif unscored and unscored / (n + unscored) > policy.max_missing_rate:
        status = "HOLD"
        head = (
            f"Every judged metric passed, but {unscored} of {n + unscored} pairs are still unscored "
            f"(worker behind), more than {_pct(policy.max_missing_rate)}; judge again once they are scored."
        )
    else:
        status = "GO"
        head = f"Every judged metric passed at look {look} ({_confidence(bounds)})."
    ordered = sorted(metrics, key=lambda m: (_ORDER[m.status], not m.critical))
    reasons = [
        head,
        *(("Critical: " if m.critical and m.status == "FAIL" else "") + m.reason for m in ordered),
    ]
    if unscored and status != "HOLD":
        reasons.append(f"{unscored} pairs were not scored yet (worker behind) and are not judged.")
    return Verdict(
        samples.tenant,
        samples.route,
        status,
        reasons,
        metrics,
        worst,
        n,
        unscored,
        look,
        alpha,
        policy.version,
    )
