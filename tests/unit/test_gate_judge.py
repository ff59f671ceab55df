"""The judge on constructed samples with known answers, and the repeated-looks guarantee."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gate import distance, stats
from gate.intervals import Bounds
from gate.judge import MetricResult, Verdict, judge
from gate.policy import RoutePolicy
from gate.samples import Samples

POLICY = RoutePolicy()  # chat limits: p95 <= 2 s, errors <= 5 %, similarity >= 0.55, facts <= 0.5 %
BOUNDS = Bounds("anytime", POLICY.alpha, POLICY.no_go_alpha)  # the bounds the judge uses under POLICY
CLEAN = 1200  # a clean candidate's pairs: enough for the 0.5 % critical-contradiction ceiling at look 1


def make(
    n: int,
    route: str = "chat",
    cand_ms: list[float | None] | None = None,
    failed: list[bool] | None = None,
    metrics: dict[str, list[float | None]] | None = None,
    noise: dict[str, list[float | None]] | None = None,
    looks: int = 0,
    unscored: int = 0,
) -> Samples:
    same: dict[str, list[float | None]] = {
        "semantic_similarity": [1.0] * n,
        "rouge_l_f1": [1.0] * n,
        "clinical_ok": [1.0] * n,
    }
    return Samples(
        tenant="doczam",
        route=route,
        keys=[f"1700000000000-{i}" for i in range(n)],
        primary_ms=[900.0] * n,
        candidate_ms=cand_ms if cand_ms is not None else [600.0] * n,
        candidate_failed=failed or [False] * n,
        primary_failed=[False] * n,
        metrics=same | (metrics or {}),
        noise=noise or {},
        unscored=unscored,
        looks=looks,
    )


def confirmed(s: Samples) -> Samples:
    """The same samples with every critical flag marked a real difference by a clinician."""
    ok = s.metrics.get("clinical_ok", [])
    return Samples(
        **{**s.__dict__, "reviews": {k: "real" for k, v in zip(s.keys, ok, strict=True) if v == 0.0}}
    )


def by_name(v: Verdict, name: str) -> MetricResult:
    return next(m for m in v.metrics if m.name == name)


def test_no_data_is_insufficient() -> None:
    v = judge(make(0), POLICY)
    assert v.status == "INSUFFICIENT_DATA"
    assert "30 more are needed" in v.reasons[0]
    assert all(m.status == "NO_DATA" for m in v.metrics)
    json.dumps(v.to_dict())


def test_a_few_pairs_are_insufficient() -> None:
    v = judge(make(12), POLICY)
    assert v.status == "INSUFFICIENT_DATA"
    assert "18 more are needed" in v.reasons[0]


def test_identical_answers_go() -> None:
    v = judge(make(CLEAN), POLICY)
    assert v.status == "GO", v.reasons
    assert {m.name for m in v.metrics} == {
        "error_rate",
        "candidate_p95_ms",
        "semantic_similarity",
        "rouge_l_f1",
        "fact_mismatch_rate",
        "omission_rate",
    }
    assert v.look == 1
    assert v.alpha_used == 0.05  # anytime bounds: alpha is not divided between looks
    lat = by_name(v, "candidate_p95_ms")
    assert "300 ms faster than the primary" in lat.reason
    assert lat.effect_size == -1.0
    json.dumps(v.to_dict())


def test_one_huge_outlier_does_not_sink_a_fast_candidate() -> None:
    ms: list[float | None] = [float(x) for x in np.random.default_rng(0).uniform(300, 900, CLEAN)]
    ms[17] = 9_500.0  # one very slow answer, still inside the 10 s timeout
    v = judge(make(CLEAN, cand_ms=ms), POLICY)
    assert v.status == "GO", v.reasons
    assert v.worst["candidate_p95_ms"][0] == "1700000000000-17"


def test_critical_fact_mismatch_is_no_go_and_names_the_pairs() -> None:
    ok: list[float | None] = [1.0] * 600
    bad = [3, 50, 51, 200, 333, 410, 599, 12, 77, 90, 120, 150, 180, 250, 260, 270, 280, 290, 300, 310]
    for i in bad:
        ok[i] = 0.0  # 20 of 600 (3.3 %) against a 0.5 % ceiling
    v = judge(confirmed(make(600, metrics={"clinical_ok": ok})), POLICY)
    assert v.status == "NO_GO"
    facts = by_name(v, "fact_mismatch_rate")
    assert facts.status == "FAIL"
    assert facts.critical
    assert "fact_mismatch_rate (critical)" in v.reasons[0]
    assert v.reasons[1].startswith("Critical: Rate of critical clinical-fact contradictions 3.3 %")
    assert "20 pair(s) flagged" in v.reasons[1]
    assert sorted(v.worst["fact_mismatch_rate"]) == sorted(f"1700000000000-{i}" for i in bad)
    assert all(m.status == "PASS" for m in v.metrics if m.name not in ("fact_mismatch_rate", "omission_rate"))


def test_latency_near_the_target_is_marginal() -> None:
    ms: list[float | None] = [float(x) for x in np.random.default_rng(1).uniform(1000, 2052.6, 300)]
    v = judge(make(300, cand_ms=ms), POLICY)  # true p95 2000 ms: exactly the target
    assert v.status == "HOLD", v.reasons
    lat = by_name(v, "candidate_p95_ms")
    assert lat.status == "MARGINAL"
    assert "too close to call" in lat.reason
    assert "candidate_p95_ms" in v.reasons[0]


def test_slow_candidate_is_no_go_with_a_plain_reason() -> None:
    v = judge(make(400, cand_ms=[3200.0] * 400), POLICY)
    assert v.status == "NO_GO"
    assert any(
        r.startswith("Candidate p95 latency 3.20 s") and "above the 2.00 s ceiling" in r for r in v.reasons
    )


def test_timeouts_count_as_errors() -> None:
    ms: list[float | None] = [600.0] * 400
    for i in range(0, 400, 8):
        ms[i] = 12_000.0  # 12.5 % over the 10 s fallback trigger
    v = judge(make(400, cand_ms=ms), POLICY)
    assert v.status == "NO_GO"
    assert by_name(v, "error_rate").status == "FAIL"


def test_similarity_against_the_noise_floor() -> None:
    rng = np.random.default_rng(2)
    cand: list[float | None] = [
        float(x) for x in rng.normal(0.50, 0.03, 3000)
    ]  # below the 0.55 absolute floor ...
    noise: list[float | None] = [float(x) for x in rng.normal(0.51, 0.03, 1500)]  # ... but so is the noise
    v = judge(make(3000, metrics={"semantic_similarity": cand}, noise={"semantic_similarity": noise}), POLICY)
    sim = by_name(v, "semantic_similarity")
    assert sim.status == "PASS", sim.reason
    assert "noise floor" in sim.reason
    v = judge(make(3000, metrics={"semantic_similarity": cand}), POLICY)  # no noise: absolute floor
    assert by_name(v, "semantic_similarity").status == "FAIL"
    # Far below production's own and below the floor: a failure on both counts.
    low: list[float | None] = [float(x) for x in rng.normal(0.30, 0.03, 3000)]
    v = judge(make(3000, metrics={"semantic_similarity": low}, noise={"semantic_similarity": noise}), POLICY)
    assert by_name(v, "semantic_similarity").status == "FAIL"


def test_a_few_noise_pairs_leave_the_calibrated_floor_to_decide() -> None:
    """Production's mean cannot be bounded from 40 pairs; a candidate well above the calibrated floor
    passes on it, and the reason says both."""
    same: list[float | None] = [1.0] * 100
    v = judge(
        make(100, metrics={"semantic_similarity": same}, noise={"semantic_similarity": same[:40]}), POLICY
    )
    sim = by_name(v, "semantic_similarity")
    assert sim.status == "PASS", sim.reason
    assert "against the calibrated floor" in sim.reason
    assert sim.ci_low is not None
    assert sim.ci_low < -POLICY.semantic_margin_vs_noise  # the drop alone could not be bounded


def test_the_similarity_floor_is_the_calibrated_one() -> None:
    """The default floor is what bench/similarity_floor.py calibrated on the corpus's equivalent pairs."""
    calibrated = json.loads((Path(__file__).parents[2] / "bench/results/similarity_floor.json").read_text())
    assert POLICY.semantic_similarity_min == calibrated["floor"]
    assert calibrated["floor"] <= calibrated["window_mean_p1"]


def test_required_metric_missing_fails_and_optional_is_skipped() -> None:
    wer: list[float | None] = [0.05] * 100 + [None] * 300
    policy = RoutePolicy(required=["wer"], candidate_p95_ms_max=2500)
    v = judge(make(400, route="audio", metrics={"wer": wer, "cer": [None] * 400}), policy)
    assert by_name(v, "wer").status == "FAIL"
    assert "missing on 300 of 400" in v.reasons[1]
    assert by_name(v, "cer").status == "NO_DATA"
    assert v.status == "NO_GO"


def test_many_unscored_pairs_hold_a_go() -> None:
    v = judge(make(CLEAN, unscored=900), POLICY)
    assert v.status == "HOLD"
    assert "unscored" in v.reasons[0]


def test_verdicts_are_reproducible() -> None:
    ms: list[float | None] = [float(x) for x in np.random.default_rng(3).uniform(100, 2000, 300)]
    assert judge(make(300, cand_ms=ms), POLICY) == judge(make(300, cand_ms=ms), POLICY)


def test_repeated_looks_do_not_inflate_wrong_gos() -> None:
    """A candidate slightly worse than the limit, judged at looks 1..20 as pairs accumulate."""
    alpha, limit, true_rate, reps, looks, step = 0.05, 0.05, 0.051, 200, 20, 100
    policy = RoutePolicy(alpha=alpha, error_rate_max=limit, skip=["candidate_p95_ms"], min_pairs=30)
    rng = np.random.default_rng(42)
    spent_wrong = naive_wrong = 0
    for _ in range(reps):
        failed = (rng.random(looks * step) < true_rate).tolist()
        go_spent = go_naive = False
        for look in range(1, looks + 1):
            n = look * step
            s = Samples(
                "t", "other", [str(i) for i in range(n)], [100.0] * n, [100.0] * n, failed[:n], [False] * n
            )
            go_spent |= judge(Samples(**{**s.__dict__, "looks": look - 1}), policy).status == "GO"
            # naive: the usual one-sided 95 % bound at every look, alpha not spent
            go_naive |= stats.wilson(sum(failed[:n]), n, 2 * alpha)[1] <= limit
        spent_wrong += go_spent
        naive_wrong += go_naive
    print(f"wrong GO in any of {looks} looks: spent {spent_wrong / reps:.3f}, naive {naive_wrong / reps:.3f}")
    assert spent_wrong / reps <= alpha + 0.02  # Monte-Carlo slack: the standard error is ~0.015
    assert naive_wrong / reps > alpha + 0.02
    assert naive_wrong > 2 * spent_wrong


# --- clinical facts: severity-aware, against production's own noise, never GO without them ---------------


def flags(n: int, every: int) -> list[float | None]:
    """clinical_ok for n pairs, one critical contradiction in every `every` pairs (0: none)."""
    return [0.0 if every and i % every == every - 1 else 1.0 for i in range(n)]


def test_a_candidate_that_changes_one_dose_in_a_hundred_never_goes() -> None:
    for n in (1000, 2000, 5000):
        v = judge(make(n, metrics={"clinical_ok": flags(n, 100)}), POLICY)
        assert v.status != "GO", (n, v.reasons)
    v = judge(confirmed(make(2000, metrics={"clinical_ok": flags(2000, 100)})), POLICY)
    assert v.status == "NO_GO"
    assert by_name(v, "fact_mismatch_rate").status == "FAIL"


def test_critical_contradictions_are_judged_against_production_s_own_rate() -> None:
    # Production contradicts itself on 1 % of requests; a candidate at the same rate is no worse. Both rates'
    # uncertainty counts, at every look: at a 1 % rate that takes many pairs (fewer where production is
    # steadier).
    n = 20_000
    same = judge(confirmed(make(4000, metrics={"clinical_ok": flags(4000, 100)})), POLICY)
    assert by_name(same, "fact_mismatch_rate").status == "FAIL"  # no noise floor: the 0.5 % ceiling
    with_noise = judge(
        make(n, metrics={"clinical_ok": flags(n, 100)}, noise={"clinical_ok": flags(n, 100)}), POLICY
    )
    facts = by_name(with_noise, "fact_mismatch_rate")
    assert facts.status == "PASS", facts.reason
    assert facts.statistic == "rate minus noise floor"
    assert "against production's own 1.0 %" in facts.reason
    # Three times production's rate is NO-GO whatever the sample.
    worse = judge(
        confirmed(
            make(4000, metrics={"clinical_ok": flags(4000, 33)}, noise={"clinical_ok": flags(4000, 100)})
        ),
        POLICY,
    )
    assert worse.status == "NO_GO"
    assert by_name(worse, "fact_mismatch_rate").status == "FAIL"


def test_a_critical_metric_that_cannot_be_computed_never_yields_go() -> None:
    # Answers made only of tool calls the scorer could not read: no clinical score at all.
    none = judge(make(CLEAN, metrics={"clinical_ok": [None] * CLEAN}), POLICY)
    assert none.status == "HOLD"
    assert "could not be computed" in none.reasons[0]
    facts = by_name(none, "fact_mismatch_rate")
    assert facts.status == "NO_DATA"
    assert f"{CLEAN} of {CLEAN} answered pairs have no clinical score" in facts.reason
    # Above the small share allowed (2 %), the same.
    some: list[float | None] = [1.0] * CLEAN
    for i in range(0, CLEAN, 20):
        some[i] = None  # 5 %
    assert judge(make(CLEAN, metrics={"clinical_ok": some}), POLICY).status == "HOLD"
    # Below it, the scored pairs are judged and the rest named in the reason.
    few: list[float | None] = [1.0] * CLEAN
    few[7] = None
    v = judge(make(CLEAN, metrics={"clinical_ok": few}), POLICY)
    assert v.status == "GO", v.reasons
    assert "1 pair(s) without a clinical score not counted" in by_name(v, "fact_mismatch_rate").reason


def test_omissions_are_judged_apart_with_their_own_limit() -> None:
    omissions: list[float | None] = [1.0 if i % 10 == 0 else 0.0 for i in range(CLEAN)]  # 10 %
    v = judge(make(CLEAN, metrics={"clinical_omissions": omissions}), POLICY)
    assert v.status == "NO_GO"
    assert by_name(v, "omission_rate").status == "FAIL"
    assert not by_name(v, "omission_rate").critical
    assert by_name(v, "fact_mismatch_rate").status == "PASS"  # leaving out is not changing


def test_the_rate_difference_interval_covers_at_its_level() -> None:
    """Newcombe's interval for p1 - p2, checked by simulation at rates near 0 where it matters."""
    rng = np.random.default_rng(7)
    alpha, covered, reps = 0.05, 0, 2000
    for _ in range(reps):
        k1, k2 = int(rng.binomial(2000, 0.012)), int(rng.binomial(1500, 0.004))
        lo, hi = stats.rate_difference(k1, 2000, k2, 1500, alpha)
        covered += lo <= 0.008 <= hi
    assert covered / reps >= 1 - alpha - 0.015


# --- how far a marginal metric is from a decision --------------------------------------------------------


def test_an_unbounded_p95_says_why() -> None:
    v = judge(make(50, metrics={"clinical_ok": [1.0] * 50}), POLICY)
    lat = by_name(v, "candidate_p95_ms")
    assert lat.status == "MARGINAL"
    least = distance.pairs_to_bound_quantile(0.95, BOUNDS)
    assert least > 50
    assert (
        f"50 pairs cannot bound a 95th percentile from above at this confidence: that takes at least {least}"
        in (lat.reason)
    )
    # And it is true: with that many pairs the bound exists, with one fewer it does not.
    assert math.isfinite(BOUNDS.quantile(list(range(least)), 0.95)[1])
    assert not math.isfinite(BOUNDS.quantile(list(range(least - 1)), 0.95)[1])


def test_a_marginal_rate_says_how_many_more_pairs_would_decide_it() -> None:
    n = 600
    v = judge(make(n), POLICY)  # 600 clean pairs against the 0.5 % ceiling
    facts = by_name(v, "fact_mismatch_rate")
    assert facts.status == "MARGINAL"
    needed = distance.pairs_to_decide_rate(0.0, n, 0.005, BOUNDS)
    assert needed is not None
    assert f"about {needed - n:,} more pairs ({needed:,} in all) would decide it" in facts.reason
    # The claim holds: with that many clean pairs the rate passes, with one fewer it is still marginal.
    assert BOUNDS.rate(0, needed, 0.005)[1] <= 0.005 < BOUNDS.rate(0, needed - 1, 0.005)[1]


def test_a_rate_on_its_limit_is_never_decided() -> None:
    assert distance.pairs_to_decide_rate(0.05, 400, 0.05, 0.05) is None
    assert "no realistic number of pairs" in distance.sentence(400, None)


# --- a clinician reviews every flagged pair ------------------------------------------------------------


def flagged_samples(reviews: dict[str, str]) -> Samples:
    n = 4800
    ok = flags(n, 0)
    for i in (5, 500):
        ok[i] = 0.0  # two critical flags in 4,800 pairs: 0.04 %, under the ceiling either way
    return Samples(**{**make(n, metrics={"clinical_ok": ok}).__dict__, "reviews": reviews})


def test_an_unreviewed_critical_flag_holds_a_go() -> None:
    v = judge(flagged_samples({}), POLICY)
    assert v.status == "HOLD"
    assert "2 critical clinical flag(s) in this window await a clinician's review" in v.reasons[0]
    half = judge(flagged_samples({"1700000000000-5": "real"}), POLICY)
    assert half.status == "HOLD"
    assert "1 critical clinical flag(s)" in half.reasons[0]
    done = {"1700000000000-5": "real", "1700000000000-500": "false_alarm"}
    assert judge(flagged_samples(done), POLICY).status == "GO"
    assert judge(flagged_samples({}), POLICY.model_copy(update={"require_review": False})).status != "HOLD"


def test_unconfirmed_flags_count_against_a_go_but_never_make_a_no_go() -> None:
    """A scorer with 2.2 % false alarms on an equivalent candidate: before any review the verdict is HOLD
    (the flags could all be real, so no GO; they could all be false, so no NO-GO). Without reviews in the
    policy, the flags are taken as they are."""
    n = 2000
    s = make(n, metrics={"clinical_ok": flags(n, 45)})  # 44 flags: 2.2 %
    v = judge(s, POLICY)
    assert v.status == "HOLD", v.reasons
    facts = by_name(v, "fact_mismatch_rate")
    assert facts.status == "MARGINAL"
    assert facts.ci_low == 0.0  # the NO-GO side counts no confirmed flag
    assert facts.ci_high is not None
    assert facts.ci_high > 0.02  # the GO side counts all 44
    assert judge(s, POLICY.model_copy(update={"require_review": False})).status == "NO_GO"
    assert judge(confirmed(s), POLICY).status == "NO_GO"


def test_reviewed_false_alarms_are_counted_out_and_real_differences_in() -> None:
    ok: list[float | None] = [1.0] * CLEAN
    bad = list(range(0, CLEAN, 60))  # 20 flags: 1.7 %, over the 0.5 % ceiling
    for i in bad:
        ok[i] = 0.0
    base = make(CLEAN, metrics={"clinical_ok": ok})
    unreviewed = judge(base, POLICY)
    assert unreviewed.status == "HOLD"  # a NO-GO needs flags a clinician confirmed
    assert "20 of them not yet reviewed" in by_name(unreviewed, "fact_mismatch_rate").reason
    false_alarms = {f"1700000000000-{i}": "false_alarm" for i in bad}
    cleared = judge(Samples(**{**base.__dict__, "reviews": false_alarms}), POLICY)
    assert by_name(cleared, "fact_mismatch_rate").value == 0.0
    assert cleared.status == "GO", cleared.reasons
    real = {f"1700000000000-{i}": "real" for i in bad}
    assert judge(Samples(**{**base.__dict__, "reviews": real}), POLICY).status == "NO_GO"


# --- bad input ------------------------------------------------------------------------------------------


def test_corrupt_or_partial_samples_are_refused_in_one_sentence() -> None:
    good = make(40)
    with pytest.raises(ValueError, match="candidate_ms has 39 values for 40 pairs"):
        Samples(**{**good.__dict__, "candidate_ms": good.candidate_ms[:-1]})
    with pytest.raises(ValueError, match="metric clinical_ok has 41 values for 40 pairs"):
        Samples(**{**good.__dict__, "metrics": {**good.metrics, "clinical_ok": [1.0] * 41}})
    with pytest.raises(ValueError, match="a pair key appears twice"):
        Samples(**{**good.__dict__, "keys": ["k"] * 40})
    # values that cannot be measurements are missing, never a pass
    nan: list[float | None] = [math.nan] * CLEAN
    v = judge(make(CLEAN, metrics={"clinical_ok": nan}), POLICY)
    assert v.status == "HOLD"
    assert by_name(v, "fact_mismatch_rate").status == "NO_DATA"
