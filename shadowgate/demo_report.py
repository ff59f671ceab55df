"""What `shadowgate demo` concludes: the planted situations, the verdicts per clinic, the tables."""

from __future__ import annotations

import contextlib
import shlex
import statistics
import sys
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.exchange import Exchange
from store.queries import RouteStats

# Worst first: a clinic's verdict is its worst route's.
_SEVERITY = ("NO_GO", "HOLD", "INSUFFICIENT_DATA", "GO")
SHOWN_STATUS = {"GO": "GO", "HOLD": "HOLD", "NO_GO": "NO-GO", "INSUFFICIENT_DATA": "INSUFFICIENT DATA"}
METRIC_WORDS = {
    "error_rate": "candidate errors",
    "candidate_p95_ms": "p95 latency",
    "semantic_similarity": "semantic similarity",
    "rouge_l_f1": "ROUGE-L",
    "wer": "word error rate",
    "cer": "character error rate",
    "fact_mismatch_rate": "clinical facts",
    "omission_rate": "clinical omissions",
    "embed_rank_correlation": "embedding agreement",
    "rerank_top1_match": "rerank agreement",
}


@dataclass(frozen=True)
class Planted:
    """A demo clinic: what was planted in the simulator or the load, and the verdicts that follow."""

    situation: str
    default: str  # the expected verdict of its routes
    routes: Mapping[str, str] = field(default_factory=dict)  # routes expected otherwise

    def expected(self, route: str) -> str:
        return self.routes.get(route, self.default)


PLANTED: Mapping[str, Planted] = {
    "klinik-sejahtera": Planted("an equivalent candidate: the same answers in other words, faster", "GO"),
    "klinik-harmoni": Planted(
        "a transcription regression: the candidate loses a quarter of the words of a recording",
        "GO",
        {"audio": "NO_GO"},
    ),
    "klinik-bayu": Planted(
        "a latency regression: an overloaded server, slower than the plan's p95 limits on every route",
        "NO_GO",
    ),
    "klinik-mutiara": Planted(
        "changed doses and flipped negations in notes, answers and transcripts", "NO_GO"
    ),
    "klinik-kecil": Planted("too little traffic: one request every five seconds", "INSUFFICIENT_DATA"),
}


def dashboard_command() -> str:
    """How to open the dashboard from here: the `shadowgate` beside this Python (the venv's, which need not
    be on the PATH), relative to the working directory when it is below it."""
    launcher = Path(sys.executable).with_name("shadowgate")
    with contextlib.suppress(ValueError):
        launcher = launcher.relative_to(Path.cwd())
    return f"{shlex.quote(str(launcher))} dashboard"


def worst(statuses: Sequence[str]) -> str:
    return min(statuses, key=_SEVERITY.index) if statuses else "INSUFFICIENT_DATA"


def _metrics_with(verdict: Mapping[str, Any], status: str) -> list[str]:
    return [m["name"] for m in verdict["metrics"] if m["status"] == status]


def route_reason(verdict: Mapping[str, Any]) -> str:
    """The verdict in a sentence or two: its head and, when it is not GO, the metric that decided it."""
    reasons: list[str] = list(verdict["reasons"])
    if verdict["status"] in ("NO_GO", "HOLD") and len(reasons) > 1:
        return f"{reasons[0]} {reasons[1]}"
    return reasons[0] if reasons else verdict["status"]


def tenant_reason(verdict: str, routes: Sequence[Mapping[str, Any]]) -> str:
    """Why a clinic's verdict is what it is, naming its routes and their metrics in words."""
    if not routes:
        return "no traffic was judged"
    if verdict == "GO":
        return "every route passed every judged metric"
    if verdict == "INSUFFICIENT_DATA":
        counts = sorted(r["pairs"] for r in routes if r["verdict"] == "INSUFFICIENT_DATA")
        need = max(r["min_pairs"] for r in routes)
        have = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}"
        return f"too little traffic to judge: {have} pair{'s' * (counts[-1] != 1)} per route, {need} needed"
    wanted, verb = ("NO_GO", "failed") if verdict == "NO_GO" else ("HOLD", "too close to call")
    parts = []
    for r in routes:
        if r["verdict"] == wanted:
            names = r["failed"] if wanted == "NO_GO" else r["marginal"]
            parts.append(f"{r['route']} ({', '.join(METRIC_WORDS.get(n, n) for n in names)})")
    lead = "do not cut over" if verdict == "NO_GO" else "a person decides"
    return f"{lead}: {'; '.join(parts)} {verb}"


def by_tenant(
    verdicts: Sequence[Mapping[str, Any]], min_pairs: Mapping[tuple[str, str], int]
) -> list[dict[str, Any]]:
    """The gate's verdicts grouped per clinic, each with its rolled-up verdict, reason and expectation
    (every planted clinic is listed, judged or not)."""
    routes_of: dict[str, list[dict[str, Any]]] = {}
    for v in sorted(verdicts, key=lambda v: (v["tenant"], v["route"])):
        planted = PLANTED.get(v["tenant"])
        routes_of.setdefault(v["tenant"], []).append(
            {
                "route": v["route"],
                "verdict": v["status"],
                "expected": planted.expected(v["route"]) if planted else None,
                "pairs": v["n"],
                "min_pairs": min_pairs.get((v["tenant"], v["route"]), 0),
                "reason": route_reason(v),
                "failed": _metrics_with(v, "FAIL"),
                "marginal": _metrics_with(v, "MARGINAL"),
                "reasons": v["reasons"],
                "metrics": {
                    m["name"]: {k: m[k] for k in ("status", "value", "ci_low", "ci_high", "limit", "n")}
                    for m in v["metrics"]
                },
            }
        )
    out = []
    for tenant in [*PLANTED, *sorted(set(routes_of) - set(PLANTED))]:
        routes = routes_of.get(tenant, [])
        planted = PLANTED.get(tenant)
        verdict = worst([r["verdict"] for r in routes])
        out.append(
            {
                "tenant": tenant,
                "verdict": verdict,
                "reason": tenant_reason(verdict, routes),
                "planted": planted.situation if planted else None,
                "expected": worst([planted.expected(r["route"]) for r in routes] or [planted.default])
                if planted
                else None,
                "as_planted": planted is not None
                and bool(routes)
                and all(r["verdict"] == r["expected"] for r in routes),
                "routes": routes,
            }
        )
    return out


def verdict_table(tenants: Sequence[Mapping[str, Any]], width: int = 110) -> str:
    """One block per clinic: its verdict, what was planted, why; then each route's verdict and reason."""
    indent = " " * 19

    def wrapped(text: str) -> list[str]:
        return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent)

    lines = [f"{'clinic':<18} {'verdict':<18} {'route':<7} pairs  why", "=" * width]
    for c in tenants:
        tag = "as planted" if c["as_planted"] else "NOT AS PLANTED"
        lines.append(f"{c['tenant']:<18} {SHOWN_STATUS[c['verdict']]:<18} ({tag})")
        lines.extend(wrapped(f"Planted: {c['planted'] or 'nothing'}."))
        lines.extend(wrapped(c["reason"][:1].upper() + c["reason"][1:] + "."))
        for r in c["routes"]:
            head = f"{indent}{SHOWN_STATUS[r['verdict']]:<18} {r['route']:<7} {r['pairs']:>5}  "
            reason = r["reason"]
            if r["expected"] is not None and r["verdict"] != r["expected"]:
                reason = f"[NOT AS PLANTED: expected {SHOWN_STATUS[r['expected']]}] {reason}"
            body = textwrap.wrap(reason, width - len(head))
            lines.append(head + (body[0] if body else ""))
            lines.extend(" " * len(head) + rest for rest in body[1:])
        lines.append("-" * width)
    return "\n".join(lines)


def measurements_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per clinic and route: the two sides' latencies and the mean scores the gate judged."""

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    head = (
        f"{'clinic':<17} {'route':<6} {'pairs':>5} {'p50 ms prim/cand':>17} {'p95 cand':>8} "
        f"{'similar':>7} {'rougeL':>6} {'WER':>5} {'dose≠':>5} {'neg≠':>5} {'clin ok':>7}"
    )
    lines = [head, "-" * len(head)]
    order = {tenant: i for i, tenant in enumerate(PLANTED)}
    for r in sorted(rows, key=lambda r: (order.get(r["tenant"], len(order)), r["tenant"], r["route"])):
        latency = f"{num(r['primary_p50_ms'], '.0f')}/{num(r['candidate_p50_ms'], '.0f')}"
        lines.append(
            f"{r['tenant']:<17} {r['route']:<6} {r['paired']:>5} {latency:>17} "
            f"{num(r['candidate_p95_ms'], '.0f'):>8} "
            f"{num(r['semantic_similarity'], '.3f'):>7} {num(r['rouge_l_f1'], '.2f'):>6} "
            f"{num(r['wer'], '.2f'):>5} {num(r['fact_mismatches'], '.2f'):>5} "
            f"{num(r['negation_flips'], '.2f'):>5} {num(r['clinical_ok'], '.0%'):>7}"
        )
    lines += [
        "similar: mean semantic similarity; dose≠ / neg≠: changed numbers with units / flipped negations",
        "per answer; clin ok: share of answers with neither. WER: two systems disagree, not accuracy.",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class RouteSummary:
    tenant: str
    route: str
    captured: int
    paired: int
    primary_p50_ms: float
    primary_p95_ms: float
    candidate_p50_ms: float | None
    candidate_p95_ms: float | None
    ttfb_p50_ms: float | None  # primary, streams only
    candidate_ttfb_p50_ms: float | None
    primary_errors: int
    candidate_errors: int


SHOWN = ("semantic_similarity", "rouge_l_f1", "wer", "fact_mismatches", "negation_flips", "clinical_ok")


def means_of(stats: RouteStats | None) -> dict[str, Any]:
    """The means the table shows (None where the route has no such metric)."""
    means = stats.means if stats is not None else {}
    return {"scored": stats.scored if stats else 0, **{m: _round(means.get(m)) for m in SHOWN}}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def summarise(captures: list[Exchange], pairs: list[Exchange]) -> list[RouteSummary]:
    captured: dict[tuple[str, str], int] = defaultdict(int)
    for x in captures:
        captured[(x.tenant, x.route)] += 1
    groups: dict[tuple[str, str], list[Exchange]] = defaultdict(list)
    for p in pairs:
        groups[(p.tenant, p.route)].append(p)
    rows = []
    for key in sorted(set(captured) | set(groups)):
        xs = groups.get(key, [])
        primary = [x.primary.total_ms for x in xs]
        answered = [x.candidate for x in xs if x.candidate is not None and x.candidate.error is None]
        candidate = [c.total_ms for c in answered]
        ttfb = [x.primary.ttfb_ms for x in xs if x.primary.streamed and x.primary.ttfb_ms is not None]
        c_ttfb = [c.ttfb_ms for c in answered if c.streamed and c.ttfb_ms is not None]
        rows.append(
            RouteSummary(
                tenant=key[0],
                route=key[1],
                captured=captured.get(key, 0),
                paired=len(xs),
                primary_p50_ms=_p(primary, 50),
                primary_p95_ms=_p(primary, 95),
                candidate_p50_ms=_p(candidate, 50) if candidate else None,
                candidate_p95_ms=_p(candidate, 95) if candidate else None,
                ttfb_p50_ms=_p(ttfb, 50) if ttfb else None,
                candidate_ttfb_p50_ms=_p(c_ttfb, 50) if c_ttfb else None,
                primary_errors=sum(1 for x in xs if x.primary.error or (x.primary.status or 0) >= 500),
                candidate_errors=sum(1 for x in xs if x.candidate is None or x.candidate.error),
            )
        )
    return rows


def report(summary: dict[str, Any]) -> str:
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    errors = ", ".join(f"{k} {v}" for k, v in summary["client_errors"].items()) or "none"
    lines = [
        "",
        "What was measured (per clinic and route):",
        measurements_table(summary["by_tenant_route"]),
        "",
        f"{summary['requests']} requests through the tap; {summary['captured']} captured, "
        f"{summary['paired']} paired with the candidate's answers, {summary['scored']} scored; capture "
        f"drops: {dropped}; errors the clients saw (the primary's own): {errors}.",
    ]
    if summary["not_scored_in_time"]:
        lines.append(f"{summary['not_scored_in_time']} pairs were not scored in time and are not judged.")
    lines += [
        "",
        f"The gate's verdicts, judged by the DEMO policy {summary['policy']['path']}:",
        verdict_table(summary["tenants"]),
        "The demo policy is the migration plan's (gate/default_policy.toml) with alpha 0.10, not 0.05,",
        "min_pairs 20, not 30, and 5 % clinical-fact limits, not 0.5 % and 2 %, so a minute of traffic",
        "decides. `shadowgate gate` judges by the default policy: about 730 clean pairs for a GO.",
        "",
        f"Everything stays in {summary['data_dir']}/ (Redis data, the SQLite store with the verdicts and",
        f"the audit log) until the next demo replaces it. Open it with: {dashboard_command()}",
    ]
    if summary["ignored"]:
        lines.append(
            "(The demo runs on its own embedded Redis and SQLite; it did not use "
            f"{', '.join(summary['ignored'])}.)"
        )
    if not all(c["as_planted"] for c in summary["tenants"]):
        lines.append("Some verdicts differ from the planted situations (see NOT AS PLANTED above).")
        lag = summary["loop_lag_ms"]
        if lag["max"] > 50:
            lines.append(
                f"This machine was busy: the demo's event loop woke up to {lag['max']:.0f} ms late (p99 "
                f"{lag['p99']:.0f} ms), and that lateness is in the latencies measured."
            )
    return "\n".join(lines)
