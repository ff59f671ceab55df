"""Does the gate decide right? Planted scenarios over many seeds through the real scorers and the judge.

    python bench/decision_quality.py                    # 20 seeds per scenario, a few minutes on 2 cores
    python bench/decision_quality.py --quick            # 5 seeds: a smoke test
    python bench/decision_quality.py --no-similarity    # leave the embedding model out (faster)

Each scenario x seed builds N synthetic pairs (SOAP notes, chat answers and consultation transcripts in
English and Malay from simulator.text), makes the candidate's side with simulator.drift.apply_drift and the
scenario's latencies and failures, scores every pair with the route's real scorers (comparators.routes.score)
and judges the window with gate.judge.judge under the packaged default policy, untouched, at look 1, after
a clinician's simulated review (every critical flag on a planted answer marked real, any other one a
scorer false alarm). bench/decision_looks.py judges at 20 looks instead.
The store, Redis and the HTTP path are left out: this measures the statistics path, not the plumbing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from comparators.routes import score  # noqa: E402
from comparators.scoring import Comparison, Side  # noqa: E402
from gate.judge import Verdict, judge  # noqa: E402
from gate.policy import load_policy  # noqa: E402
from gate.samples import Samples  # noqa: E402
from simulator.drift import apply_drift  # noqa: E402
from simulator.text import chat_answer, soap_note, transcript  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VERDICTS = ("GO", "HOLD", "NO_GO", "INSUFFICIENT_DATA")
TENANT = "bench"
EQUIVALENT = {"substitution": 0.02}  # two sampling runs of one model word a few things differently
# Primary latencies: lognormal, median and p95 per route (sigma = ln(p95 / median) / 1.645).
LATENCY = {"chat": (900.0, 1600.0), "audio": (1100.0, 1900.0)}
CANDIDATE_NOISE = 0.10  # sigma of the candidate's per-request lognormal factor on the primary's time


@dataclass(frozen=True)
class Scenario:
    name: str
    route: str
    n: int
    expected: str  # the right verdict
    planted: str  # what is wrong with the candidate, in words
    drift: dict[str, float]  # apply_drift on every answer
    spiked: dict[str, float] | None = None  # apply_drift on `spiked_share` of the answers instead
    spiked_share: float = 0.0
    latency_factor: float = 1.0  # the candidate's time over the primary's, before noise
    failed_share: float = 0.0  # candidate answers that fail (no status, no time)
    regression: bool = True


def scenarios(n_chat: int, n_audio: int, n_large: int) -> list[Scenario]:
    # 2 s p95 target x 1.6 = 3.2 s; the primary's p95 is 1.6 s, hence a factor of 2.
    slow = 2000.0 * 1.6 / LATENCY["chat"][1]
    return [
        Scenario("equivalent", "chat", n_chat, "GO", "none: synonyms only", EQUIVALENT, regression=False),
        Scenario(
            f"equivalent, N={n_large:,}",
            "chat",
            n_large,
            "GO",
            "none: synonyms only",
            EQUIVALENT,
            regression=False,
        ),
        Scenario("WER regression", "audio", n_audio, "NO_GO", "15 % of words lost", {"drop_words": 0.15}),
        Scenario(
            "latency regression",
            "chat",
            n_chat,
            "NO_GO",
            f"{slow:.1f}x slower (p95 ~3.2 s vs 2 s)",
            EQUIVALENT,
            latency_factor=slow,
        ),
        Scenario(
            "dose flips in 2 %",
            "chat",
            n_chat,
            "NO_GO",
            "every number changed in 2 % of answers",
            EQUIVALENT,
            spiked={**EQUIVALENT, "numbers": 1.0},
            spiked_share=0.02,
        ),
        Scenario(
            "negation flips in 2 %",
            "chat",
            n_chat,
            "NO_GO",
            "every negation flipped in 2 % of answers",
            EQUIVALENT,
            spiked={**EQUIVALENT, "negation": 1.0},
            spiked_share=0.02,
        ),
        *(
            Scenario(
                f"dose flips in {share:.1%}, N={n:,}",
                "chat",
                n,
                "NO_GO",
                f"every number changed in {share:.1%} of answers",
                EQUIVALENT,
                spiked={**EQUIVALENT, "numbers": 1.0},
                spiked_share=share,
            )
            for share, n in ((0.005, n_large), (0.01, n_large), (0.03, n_chat))
        ),
        Scenario(
            "error burst", "chat", n_chat, "NO_GO", "10 % of answers failed", EQUIVALENT, failed_share=0.10
        ),
        Scenario("too few pairs", "chat", 12, "INSUFFICIENT_DATA", "12 pairs", EQUIVALENT, regression=False),
    ]


def _text(rng: random.Random, route: str) -> str:
    lang = "ms" if rng.random() < 0.4 else "en"
    if route == "audio":
        return transcript(rng, lang)
    return soap_note(rng, lang) if rng.random() < 0.5 else chat_answer(rng, lang)


def _plantable(text: str, drift: dict[str, float] | None) -> bool:
    """Whether the drift (synonyms aside) changes this text at all."""
    drift = {k: v for k, v in (drift or {}).items() if k != "substitution"}
    return apply_drift(text, random.Random(0), **drift) != text


def _side(text: str | None, ms: float | None) -> Side:
    failed = text is None
    return Side(
        status=None if failed else 200,
        error="ServerDisconnectedError" if failed else None,
        total_ms=ms or 0.0,
        ttfb_ms=None,
        model="candidate",
        text=text,
        finish_reason=None if failed else "stop",
    )


def build(
    sc: Scenario, seed: int, encode: Callable[[list[str]], Any] | None = None
) -> tuple[Samples, set[int]]:
    """The window of one scenario x seed (texts, drift, latencies, failures, the real scorers), and which
    pairs got the spiked drift."""
    rng = random.Random(f"{sc.name}/{seed}")
    median, p95 = LATENCY[sc.route]
    mu, sigma = math.log(median), math.log(p95 / median) / 1.645
    idx = list(range(sc.n))
    spiked = set(rng.sample(idx, round(sc.spiked_share * sc.n)))
    failed = set(rng.sample(idx, round(sc.failed_share * sc.n)))
    keys, p_ms, c_ms, c_failed, pairs = [], [], [], [], []
    metrics: dict[str, list[float | None]] = {}
    for i in idx:
        primary = _text(rng, sc.route)
        while i in spiked and not _plantable(primary, sc.spiked):
            primary = _text(rng, sc.route)  # a planted flip must land: an answer with no negation has none
        drift = sc.spiked if i in spiked and sc.spiked else sc.drift
        candidate = apply_drift(primary, rng, **drift)
        pms = rng.lognormvariate(mu, sigma)
        cms = pms * sc.latency_factor * rng.lognormvariate(0.0, CANDIDATE_NOISE)
        broken = i in failed
        result = score(
            Comparison(
                route=sc.route,
                primary=_side(primary, pms),
                other=_side(None if broken else candidate, None if broken else cms),
                role="candidate",
            )
        )
        for name, value in result.metrics.items():
            metrics.setdefault(name, [None] * sc.n)[i] = value
        keys.append(f"{sc.name}-{seed}-{i}")
        p_ms.append(pms)
        c_ms.append(None if broken else cms)
        c_failed.append(broken)
        pairs.append((primary, None if broken else candidate))
    if encode is not None and sc.route == "chat":
        metrics["semantic_similarity"] = _similarity(pairs, encode)
    return Samples(TENANT, sc.route, keys, p_ms, c_ms, c_failed, [False] * sc.n, metrics), spiked


def _similarity(
    pairs: list[tuple[str, str | None]], encode: Callable[[list[str]], Any]
) -> list[float | None]:
    """Cosine of each pair's two answers, one batched model call (answers fit the model's window)."""
    texts = sorted({t for pair in pairs for t in pair if t is not None and pair[0] != pair[1]})
    row = {t: r for r, t in enumerate(texts)}
    vectors = encode(texts) if texts else None
    out: list[float | None] = []
    for primary, candidate in pairs:
        if candidate is None:
            out.append(None)
        elif candidate == primary or vectors is None:
            out.append(1.0)
        else:
            out.append(float(vectors[row[primary]] @ vectors[row[candidate]]))
    return out


_ENCODER: Any = None


def _init(similarity: bool) -> None:
    global _ENCODER  # one model per worker process, loaded once
    if similarity:
        from comparators.embedder import Embedder

        _ENCODER = Embedder()


def run_one(sc: Scenario, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    samples, spiked = build(sc, seed, _ENCODER.encode if _ENCODER is not None else None)
    flagged = {i for i, ok in enumerate(samples.metrics.get("clinical_ok", [])) if ok == 0.0}
    # A clinician reviews every flag: real where the change was planted, a false alarm elsewhere.
    reviews = {samples.keys[i]: "real" if i in spiked else "false_alarm" for i in flagged}
    samples = Samples(**{**samples.__dict__, "reviews": reviews})
    verdict = judge(samples, load_policy(None).for_(TENANT, sc.route))
    return {
        "scenario": sc.name,
        "seed": seed,
        "status": verdict.status,
        "seconds": time.perf_counter() - t0,
        "spiked": len(spiked),
        "spiked_flagged": len(spiked & flagged),  # the clinical scorer's catch of the planted answers
        "other_flagged": len(flagged - spiked),
        **_evidence(verdict),
    }


def _evidence(v: Verdict) -> dict[str, Any]:
    return {
        "head": v.reasons[0],
        "not_passed": {m.name: m.status for m in v.metrics if m.status != "PASS"},
        "metrics": {
            m.name: {
                "status": m.status,
                "value": _finite(m.value),
                "ci": [_finite(m.ci_low), _finite(m.ci_high)],
                "limit": m.limit,
            }
            for m in v.metrics
        },
        "reasons": v.reasons,
    }


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None  # JSON has no infinity


def summarise(sc: Scenario, runs: list[dict[str, Any]]) -> dict[str, Any]:
    counts = Counter(r["status"] for r in runs)
    wrong_go = counts["GO"] if sc.regression else 0
    why: Counter[str] = Counter()
    for r in runs:
        for name, status in r["not_passed"].items():
            why[f"{name} {status}"] += 1
    return {
        "scenario": sc.name,
        "route": sc.route,
        "n": sc.n,
        "planted": sc.planted,
        "expected": sc.expected,
        "counts": {v: counts[v] for v in VERDICTS},
        "right": counts[sc.expected],
        "wrong_go": wrong_go,
        "spiked": sum(r["spiked"] for r in runs),
        "spiked_flagged": sum(r["spiked_flagged"] for r in runs),
        "other_flagged": sum(r["other_flagged"] for r in runs),
        "not_passed": dict(why.most_common()),
        "example_reasons": _example(runs),
    }


def _example(runs: list[dict[str, Any]]) -> list[str]:
    """The reasons of the commonest verdict's first run, for the report."""
    common = Counter(r["status"] for r in runs).most_common(1)[0][0]
    return next(r["reasons"] for r in runs if r["status"] == common)


def _fmt_metric(name: str, m: dict[str, Any]) -> str:
    v, (lo, hi) = m["value"], m["ci"]
    if v is None or lo is None or hi is None:
        return f"{name} {m['status']}"
    if name == "candidate_p95_ms":
        return f"{name} {v:.0f} ms (CI {lo:.0f}–{hi:.0f}, limit {m['limit']:.0f})"
    if name.endswith("_rate"):
        return f"{name} {100 * v:.2f} % (CI {100 * lo:.2f}–{100 * hi:.2f} %, limit {100 * m['limit']:.0f} %)"
    return f"{name} {v:.3f} (CI {lo:.3f}–{hi:.3f}, limit {m['limit']:.3f})"


def report(results: dict[str, Any]) -> str:
    t = results["targets"]
    lines = [
        "# Decision quality: planted scenarios through the real scorers and the gate",
        "",
        f"- Date: {results['date']}; machine: {results['machine']}; wall time {results['seconds']:.0f} s",
        f"- Command: `{results['command']}`",
        f"- Seeds per scenario: {results['seeds']}; policy: the packaged default (version "
        f"{results['policy_version']}), tenant `{TENANT}`, look 1 (alpha {results['alpha']}).",
        f"- Semantic similarity: {results['similarity']}",
        "",
        "## Confusion matrix (verdicts over seeds)",
        "",
        "| scenario | route | N | planted | expected | GO | HOLD | NO_GO | INSUFFICIENT_DATA |",
        "|---|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for s in results["scenarios"]:
        c = s["counts"]
        lines.append(
            f"| {s['scenario']} | {s['route']} | {s['n']:,} | {s['planted']} | {s['expected']} | "
            + " | ".join(str(c[v]) for v in VERDICTS)
            + " |"
        )
    lines += [
        "",
        "Regressions: NO_GO is right, HOLD (a person decides) is not a wrong GO.",
        "",
        "## Targets",
        "",
        "| target | result | |",
        "|---|---|---|",
        f"| no wrong GO on any planted regression | {t['wrong_go']} wrong GO of {t['regression_runs']} "
        f"regression runs | **{'PASS' if t['wrong_go'] == 0 else 'MISS'}** |",
        f"| ≤ 5 % wrong NO-GO/HOLD on the equivalent candidate (N={results['scenarios'][0]['n']:,}) | "
        f"{t['equivalent_wrong']} of {t['equivalent_runs']} ({100 * t['equivalent_wrong_share']:.0f} %) | "
        f"**{'PASS' if t['equivalent_wrong_share'] <= 0.05 else 'MISS'}** |",
        f"| the same at N={results['scenarios'][1]['n']:,} | {t['large_wrong']} of {t['large_runs']} "
        f"({100 * t['large_wrong_share']:.0f} %) | "
        f"**{'PASS' if t['large_wrong_share'] <= 0.05 else 'MISS'}** |",
        "",
        "## What the reasons said",
        "",
    ]
    for s in results["scenarios"]:
        why = (
            ", ".join(f"{k} in {v}" for k, v in s["not_passed"].items()) or "every metric passed in every run"
        )
        lines += [f"### {s['scenario']}", "", f"Metrics not passing (runs): {why}."]
        if s["spiked"]:
            lines.append(
                f"The clinical scorer flagged {s['spiked_flagged']} of the {s['spiked']} planted answers "
                f"(all seeds), and {s['other_flagged']} of the others."
            )
        elif s["other_flagged"]:
            lines.append(f"The clinical scorer flagged {s['other_flagged']} pairs (all seeds).")
        lines.append("")
        lines += [f"- {r}" for r in s["example_reasons"]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 seeds: a smoke test")
    ap.add_argument("--seeds", type=int, help="seeds per scenario (default 20, 5 with --quick)")
    ap.add_argument("--chat-pairs", type=int, default=400)
    ap.add_argument("--audio-pairs", type=int, default=300)
    ap.add_argument(
        "--large-pairs",
        type=int,
        default=2000,
        help="N of the second equivalent scenario and of the rare flips",
    )
    ap.add_argument("--no-similarity", dest="similarity", action="store_false", help="leave the model out")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    seeds = args.seeds or (5 if args.quick else 20)
    plan = scenarios(args.chat_pairs, args.audio_pairs, args.large_pairs)

    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(args.similarity,)) as pool:
        futures = {(sc.name, seed): pool.submit(run_one, sc, seed) for sc in plan for seed in range(seeds)}
        runs = {key: f.result() for key, f in futures.items()}
    seconds = time.perf_counter() - t0

    summaries = [summarise(sc, [runs[(sc.name, s)] for s in range(seeds)]) for sc in plan]
    eq, large = summaries[0], summaries[1]
    regressions = [s for sc, s in zip(plan, summaries, strict=True) if sc.regression]
    policy = load_policy(None).for_(TENANT, "chat")
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        "command": " ".join(["python bench/decision_quality.py", *sys.argv[1:]]),
        "seeds": seeds,
        "seconds": seconds,
        "policy_version": load_policy(None).version,
        "alpha": policy.alpha,
        "similarity": (
            "the real model (comparators.embedder.Embedder, one batched call per window) on every chat "
            "pair whose answers differ; identical answers score 1.0, as in comparators.assess"
            if args.similarity
            else "left out (`--no-similarity`): no values, so the judge reports it NO_DATA and does not "
            "judge it"
        ),
        "targets": {
            "wrong_go": sum(s["wrong_go"] for s in regressions),
            "regression_runs": seeds * len(regressions),
            "equivalent_runs": seeds,
            "equivalent_wrong": seeds - eq["right"],
            "equivalent_wrong_share": (seeds - eq["right"]) / seeds,
            "large_runs": seeds,
            "large_wrong": seeds - large["right"],
            "large_wrong_share": (seeds - large["right"]) / seeds,
        },
        "scenarios": summaries,
        "runs": [{k: v for k, v in r.items() if k != "reasons"} for r in runs.values()],
    }
    text = report(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "decision_quality.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / "decision_quality.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
