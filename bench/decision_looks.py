"""The gate looked at again and again: today's judge and the one before it, side by side, over many seeds.

    python bench/decision_looks.py                 # 200 seeds x 20 looks per scenario; ~10 min on 2 cores
    python bench/decision_looks.py --seeds 20      # a smoke test
    python bench/decision_looks.py --similarity    # also the embedding model's similarity (slower)

Each scenario scores a pool of synthetic pairs once with the route's real scorers (comparators.routes.score:
clinical facts, ROUGE-L, latency, errors; the answers from simulator.text, the candidate's changes planted
with simulator.drift or, for tool calls and omissions, here). Each seed then draws a stream of pairs from the
pool and the gate judges the growing window at 20 looks (every 100 pairs up to 2,000), under the packaged
default policy twice: `intervals = "anytime"` (today: confidence sequences) and `intervals = "per_look"`
(before: fixed-n intervals, alpha divided between looks). A clinician's review is simulated: every critical
flag on a planted pair is marked real and every other one a scorer false alarm, except in the scenario that
says "not reviewed" (with `require_review`, the default, its flags hold the gate: HOLD is right there). The
equivalent candidate's pool gets the scorer's false-alarm rate measured on the clinical corpus (2.2 %).
Reported per scenario and judge: the share of seeds with a wrong GO at any look, the share that reached the
right verdict by the last look, and the median pairs to it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decision_quality import EQUIVALENT, LATENCY, Scenario, build  # noqa: E402
from comparators.routes import score  # noqa: E402
from comparators.scoring import Comparison, Side  # noqa: E402
from gate.judge import judge  # noqa: E402
from gate.policy import RoutePolicy, load_policy  # noqa: E402
from gate.samples import Samples  # noqa: E402
from simulator.drift import apply_drift  # noqa: E402
from simulator.text import soap_note  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TENANT = "bench"
JUDGES = ("anytime", "per_look")


@dataclass(frozen=True)
class Pool:
    """Scored pairs to draw streams from: per-pair values, and which pairs carry the planted change."""

    route: str
    primary_ms: list[float]
    candidate_ms: list[float | None]
    failed: list[bool]
    metrics: dict[str, list[float | None]]
    planted: list[bool]

    @property
    def n(self) -> int:
        return len(self.primary_ms)


@dataclass(frozen=True)
class LookScenario:
    name: str
    expected: str  # the right verdict
    regression: bool  # a GO at any look is wrong
    pool: str  # how its pool is made: "drift", "omissions" or "tool_calls" (see make_pool)
    params: dict[str, Any] = field(default_factory=dict)
    pairs: int = 2000  # the stream's length at the last look
    reviewed: bool = True


# --- the pools ------------------------------------------------------------------------------------------


def _from_build(sc: Scenario, similarity: bool) -> Pool:
    encode = None
    if similarity:
        from comparators.embedder import Embedder

        encode = Embedder().encode
    samples, spiked = build(sc, 0, encode)
    return Pool(
        sc.route,
        samples.primary_ms,
        samples.candidate_ms,
        samples.candidate_failed,
        samples.metrics,
        [i in spiked for i in range(samples.n)],
    )


def drifted(n: int, similarity: bool, name: str, false_alarms: float = 0.0, **kw: Any) -> Pool:
    """Chat answers and notes through simulator.drift (decision_quality's build), synonyms everywhere; then
    `false_alarms` of the pairs get a critical flag the scorer raised wrongly (nothing was planted there)."""
    pool = _from_build(Scenario(name, "chat", n, "", "", EQUIVALENT, **kw), similarity)
    ok = pool.metrics.get("clinical_ok")
    if ok is not None and false_alarms:
        rng = random.Random(f"{name}/false alarms")
        clean = [i for i, v in enumerate(ok) if v == 1.0 and not pool.planted[i]]
        for i in rng.sample(clean, round(false_alarms * n)):
            ok[i] = 0.0
    return pool


_DOSE_SENTENCE = re.compile(r"[^.\n:]*\b\d+(?:\.\d+)? ?(?:mg|g|mcg|ml)\b[^.\n]*\.?", re.IGNORECASE)


def _latency(rng: random.Random, factor: float) -> tuple[float, float]:
    median, p95 = LATENCY["chat"]
    mu, sigma = math.log(median), math.log(p95 / median) / 1.645
    pms = rng.lognormvariate(mu, sigma)
    return pms, pms * factor * rng.lognormvariate(0.0, 0.10)


def _side(text: str | None = None, tools: Any = None, ms: float = 0.0) -> Side:
    return Side(200, None, ms, None, "m", text=text, json=tools, finish_reason="stop")


def _scored(route: str, rows: list[tuple[Side, Side, bool]]) -> Pool:
    metrics: dict[str, list[float | None]] = {}
    for i, (primary, other, _) in enumerate(rows):
        result = score(Comparison(route, primary, other, "candidate"))
        for name, value in result.metrics.items():
            metrics.setdefault(name, [None] * len(rows))[i] = value
    return Pool(
        route,
        [p.total_ms for p, _, _ in rows],
        [o.total_ms for _, o, _ in rows],
        [False] * len(rows),
        metrics,
        [planted for _, _, planted in rows],
    )


def omissions(n: int, similarity: bool, share: float) -> Pool:
    """SOAP notes whose candidate leaves out the prescribing sentence in `share` of the answers."""
    rng = random.Random(f"omissions/{share}")
    rows = []
    for i in range(n):
        note = soap_note(rng, "ms" if rng.random() < 0.4 else "en")
        planted = i < round(share * n) and _DOSE_SENTENCE.search(note) is not None
        candidate = apply_drift(note, rng, **EQUIVALENT)
        if planted:
            candidate = _DOSE_SENTENCE.sub("", candidate, count=1)
        pms, cms = _latency(rng, 0.8)
        rows.append((_side(note, ms=pms), _side(candidate, ms=cms), planted))
    return _scored("chat", rows)


_DRUGS = (("amoxicillin", 500, "TDS"), ("paracetamol", 1000, "QID"), ("metformin", 500, "BD"))


def _call(drug: str, mg: int, freq: str, days: int) -> list[dict[str, Any]]:
    args = {"drug": drug, "dose_mg": mg, "route": "oral", "frequency": freq, "days": days}
    return [{"type": "function", "name": "prescribe", "arguments": args}]


def tool_calls(n: int, similarity: bool, share: float) -> Pool:
    """Answers made only of a prescribing tool call; the candidate's dose argument differs in `share`."""
    rng = random.Random(f"tools/{share}")
    rows = []
    for i in range(n):
        drug, dose, freq = rng.choice(_DRUGS)
        days = rng.choice((3, 5, 7))
        planted = i < round(share * n)
        pms, cms = _latency(rng, 0.8)
        other = _call(drug, dose * 2 if planted else dose, freq, days)
        rows.append((_side(tools=_call(drug, dose, freq, days), ms=pms), _side(tools=other, ms=cms), planted))
    return _scored("chat", rows)


_MAKERS: dict[str, Callable[..., Pool]] = {"drift": drifted, "omissions": omissions, "tool_calls": tool_calls}


def make_pool(sc: LookScenario, n: int, similarity: bool) -> Pool:
    return _MAKERS[sc.pool](n, similarity, **sc.params)


# The scorer's false-alarm rate on the clinical corpus's equivalent pairs (bench/clinical_accuracy.py):
# the simulator's own paraphrases raise almost none, so equivalent pools get this share of wrong flags.
FALSE_ALARMS = 0.022


def scenarios() -> list[LookScenario]:
    over = 2200.0 / LATENCY["chat"][1]  # the candidate's p95 ~2.2 s against the 2 s limit
    equivalent = {"name": "equivalent", "false_alarms": FALSE_ALARMS}
    return [
        LookScenario("equivalent, 2.2 % false alarms, reviewed", "GO", False, "drift", equivalent),
        LookScenario(
            "equivalent, 2.2 % false alarms, not reviewed", "HOLD", False, "drift", equivalent, reviewed=False
        ),
        *(
            LookScenario(
                f"critical contradictions in {share:.1%}",
                "HOLD" if share == 0.005 else "NO_GO",  # on the limit itself nothing can be proven
                True,
                "drift",
                {"name": "doses", "spiked": {**EQUIVALENT, "numbers": 1.0}, "spiked_share": share},
            )
            for share in (0.005, 0.01, 0.03)
        ),
        LookScenario("omissions only, 5 %", "NO_GO", True, "omissions", {"share": 0.05}),
        LookScenario("tool calls, 3 % with another dose", "NO_GO", True, "tool_calls", {"share": 0.03}),
        LookScenario(
            "latency just over the limit", "NO_GO", True, "drift", {"name": "slow", "latency_factor": over}
        ),
        LookScenario("error burst, 10 %", "NO_GO", True, "drift", {"name": "errors", "failed_share": 0.10}),
        LookScenario("too few pairs", "INSUFFICIENT_DATA", False, "drift", {"name": "few"}, pairs=25),
    ]


# --- the looks -----------------------------------------------------------------------------------------


def _window(pool: Pool, rows: list[int], reviewed: bool, looks: int) -> Samples:
    """The pairs drawn so far, newest first as the store returns them."""
    order = rows[::-1]
    keys = [f"{i}-{j}" for j, i in enumerate(order)]
    metrics = {m: [v[i] for i in order] for m, v in pool.metrics.items()}
    reviews: dict[str, str] = {}
    if reviewed:
        ok = pool.metrics.get("clinical_ok", [])
        for key, i in zip(keys, order, strict=True):
            if i < len(ok) and ok[i] == 0.0:
                reviews[key] = "real" if pool.planted[i] else "false_alarm"
    return Samples(
        TENANT,
        pool.route,
        keys,
        [pool.primary_ms[i] for i in order],
        [pool.candidate_ms[i] for i in order],
        [pool.failed[i] for i in order],
        [False] * len(order),
        metrics,
        looks=looks,
        reviews=reviews,
    )


def run_seed(sc: LookScenario, pool: Pool, seed: int, looks: int, policies: dict[str, RoutePolicy]) -> dict:
    rng = random.Random(f"{sc.name}/{seed}")
    stream = [rng.randrange(pool.n) for _ in range(sc.pairs)]
    step = max(1, sc.pairs // looks)
    out: dict[str, Any] = {}
    for name, policy in policies.items():
        verdicts = []
        for k in range(1, looks + 1):
            n = min(sc.pairs, k * step)
            verdicts.append(judge(_window(pool, stream[:n], sc.reviewed, k - 1), policy).status)
        out[name] = verdicts
    return {"seed": seed, "step": step, **out}


def _first(verdicts: list[str], status: str, step: int) -> int | None:
    return next(((k + 1) * step for k, v in enumerate(verdicts) if v == status), None)


def summarise(sc: LookScenario, runs: list[dict[str, Any]], pool: Pool) -> dict[str, Any]:
    flagged = [v == 0.0 for v in pool.metrics.get("clinical_ok", [])]
    out: dict[str, Any] = {
        "scenario": sc.name,
        "expected": sc.expected,
        "regression": sc.regression,
        "pairs": sc.pairs,
        "pool": pool.n,
        "planted_share": sum(pool.planted) / pool.n,
        "flagged_share": sum(flagged) / pool.n if flagged else None,
        "judges": {},
    }
    for name in JUDGES:
        wrong_go = sum(1 for r in runs if sc.regression and "GO" in r[name])
        right_last = sum(1 for r in runs if r[name][-1] == sc.expected)
        right_any = [_first(r[name], sc.expected, r["step"]) for r in runs]
        reached = [n for n in right_any if n is not None]
        out["judges"][name] = {
            "wrong_go_share": wrong_go / len(runs),
            "right_at_last_look": right_last / len(runs),
            "reached_right": len(reached) / len(runs),
            "median_pairs_to_right": statistics.median(reached) if reached else None,
            "last_look": dict(sorted(Counter(r[name][-1] for r in runs).items())),
        }
    return out


def report(results: dict[str, Any]) -> str:
    lines = [
        "# The gate at every look: anytime bounds (today) and per-look intervals (before), side by side",
        "",
        f"- Date: {results['date']}; machine: {results['machine']}; wall time {results['seconds']:.0f} s",
        f"- Command: `{results['command']}`",
        f"- {results['seeds']} seeds per scenario, {results['looks']} looks each (every "
        f"{results['scenarios'][0]['pairs'] // results['looks']} pairs up to the last); the packaged default "
        f"policy (alpha {results['alpha']}, no_go_alpha {results['no_go_alpha']}), `intervals` set to each "
        "judge; pools of pairs scored once with the real scorers.",
        f"- Semantic similarity: {results['similarity']}.",
        "",
        "| scenario | planted | flagged by the scorer | expected | judge | wrong GO (any look) | "
        "right by the last look | median pairs to it | verdicts at the last look |",
        "|---|---:|---:|---|---|---:|---:|---:|---|",
    ]
    for s in results["scenarios"]:
        for name in JUDGES:
            j = s["judges"][name]
            med = j["median_pairs_to_right"]
            flagged = "" if s["flagged_share"] is None else f"{100 * s['flagged_share']:.2f} %"
            lines.append(
                f"| {s['scenario']} | {100 * s['planted_share']:.1f} % | {flagged} | {s['expected']} | "
                f"{name} | {100 * j['wrong_go_share']:.1f} % | {100 * j['reached_right']:.0f} % | "
                f"{'—' if med is None else f'{med:,.0f}'} | "
                + ", ".join(f"{k} {v}" for k, v in j["last_look"].items())
                + " |"
            )
    t = results["targets"]
    lines += [
        "",
        "## Targets",
        "",
        f"- Wrong GO at most alpha ({results['alpha']}) in every scenario over all looks (anytime): "
        f"worst {100 * t['worst_wrong_go']:.1f} % — {_mark(t['worst_wrong_go'] <= results['alpha'])}.",
        f"- 1 % critical contradictions never GO: {t['one_percent_go']} GO of {results['seeds']} seeds — "
        f"{_mark(t['one_percent_go'] == 0)}; NO-GO by {results['scenarios'][0]['pairs']:,} "
        f"pairs in {100 * t['one_percent_no_go']:.0f} % of seeds (target 95 %) — "
        f"{_mark(t['one_percent_no_go'] >= 0.95)}. For scale: the most a test can do here is the single "
        f"look at all 2,000 pairs with an exact binomial test at the NO-GO level ({results['no_go_alpha']}), "
        f"which separates 1 % from the 0.5 % ceiling in {100 * t['best_single_look_power']:.1f} % of "
        f"samples (at 0.05: {100 * t['best_single_look_power_at_alpha']:.1f} %); 95 % by 2,000 pairs "
        "needs, even from that one look, a NO-GO wrong for a candidate on the ceiling 21 % of the time, and "
        "more when every look may call it.",
        f"- Equivalent candidate, median pairs to GO: {t['equivalent_anytime']} (anytime) vs "
        f"{t['equivalent_per_look']} (per look) — "
        f"{_mark(t['equivalent_faster'])}.",
    ]
    return "\n".join(lines)


def best_power(n: int, limit: float, rate: float, alpha: float) -> float:
    """The power of the exact one-sided binomial test at one look of n pairs: the chance that a candidate
    at `rate` shows more bad pairs than a candidate at `limit` would at level alpha."""
    from scipy.stats import binom

    critical = next(k for k in range(n + 1) if binom.sf(k - 1, n, limit) <= alpha)
    return float(binom.sf(critical - 1, n, rate))


def _mark(met: bool) -> str:
    return "**PASS**" if met else "**MISS**"


def _pool_job(args: tuple[LookScenario, int, bool]) -> Pool:
    sc, n, similarity = args
    return make_pool(sc, n, similarity)


def _seed_job(args: tuple[LookScenario, Pool, int, int]) -> dict[str, Any]:
    sc, pool, seed, looks = args
    base = load_policy(None).for_(TENANT, pool.route)
    policies = {name: base.model_copy(update={"intervals": name}) for name in JUDGES}
    return run_seed(sc, pool, seed, looks, policies)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--looks", type=int, default=20)
    ap.add_argument("--pool", type=int, default=4000, help="scored pairs per scenario to draw from")
    ap.add_argument("--similarity", action="store_true", help="score similarity with the real model")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    plan = scenarios()
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as ex:
        pools = list(ex.map(_pool_job, [(sc, args.pool, args.similarity) for sc in plan]))
        jobs = [
            (sc, pool, seed, args.looks)
            for sc, pool in zip(plan, pools, strict=True)
            for seed in range(args.seeds)
        ]
        runs = list(ex.map(_seed_job, jobs, chunksize=8))
    seconds = time.perf_counter() - t0
    by_scenario = [[r for (sc2, *_), r in zip(jobs, runs, strict=True) if sc2 is sc] for sc in plan]
    summaries = [summarise(sc, rs, pool) for sc, rs, pool in zip(plan, by_scenario, pools, strict=True)]
    policy = load_policy(None).for_(TENANT, "chat")
    named = {s["scenario"]: s for s in summaries}
    one = named["critical contradictions in 1.0%"]["judges"]["anytime"]
    eq = named["equivalent, 2.2 % false alarms, reviewed"]["judges"]
    eq_new, eq_old = eq["anytime"]["median_pairs_to_right"], eq["per_look"]["median_pairs_to_right"]
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        "command": " ".join(["python bench/decision_looks.py", *sys.argv[1:]]),
        "seeds": args.seeds,
        "looks": args.looks,
        "seconds": seconds,
        "alpha": policy.alpha,
        "no_go_alpha": policy.no_go_alpha,
        "similarity": "the real model" if args.similarity else "left out (NO_DATA, not judged)",
        "targets": {
            "worst_wrong_go": max(s["judges"]["anytime"]["wrong_go_share"] for s in summaries),
            "one_percent_go": round(one["wrong_go_share"] * args.seeds),
            "one_percent_no_go": one["reached_right"],
            "equivalent_anytime": eq_new,
            "equivalent_per_look": eq_old,
            "equivalent_faster": eq_new is not None and (eq_old is None or eq_new < eq_old),
            "best_single_look_power": best_power(2000, 0.005, 0.01, policy.no_go_alpha),
            "best_single_look_power_at_alpha": best_power(2000, 0.005, 0.01, policy.alpha),
        },
        "scenarios": summaries,
    }
    text = report(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "decision_looks.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / "decision_looks.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
