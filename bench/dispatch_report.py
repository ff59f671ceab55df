"""The Markdown report of bench/dispatch_impact.py: pure functions from its result dict to text."""

from __future__ import annotations

import math
from typing import Any

TAP_ONLY, NGINX = "tap-only", "nginx-mirror-slow"
DISPATCH_CASES = (
    "dispatch-healthy",
    "dispatch-slow",
    "dispatch-dead",
    "with-dispatch-healthy",
    "with-dispatch-slow",
    "with-dispatch-dead",
)
CASES = (TAP_ONLY, *DISPATCH_CASES, NGINX)
# The primary's p99 through the tap with a slow or dead candidate, against the same layout with a healthy
# one: at most this much higher.
TARGET_PCT = 10.0

LABELS = {
    TAP_ONLY: "1. tap only, no dispatch",
    "dispatch-healthy": "2. tap + `dispatch` process, candidate healthy",
    "dispatch-slow": "3. tap + `dispatch` process, candidate slow",
    "dispatch-dead": "4. tap + `dispatch` process, candidate dead",
    "with-dispatch-healthy": "5. `tap --with-dispatch`, candidate healthy",
    "with-dispatch-slow": "6. `tap --with-dispatch`, candidate slow",
    "with-dispatch-dead": "7. `tap --with-dispatch`, candidate dead",
    NGINX: "8. nginx `mirror`, mirror target slow",
}


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3f}"


def _pct(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:+.1f} %" if key in row else "—"


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def _classes(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def latency_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    out = [
        "| case | p50 | p90 | p99 | p99 per round | max | achieved req/s | errors | p99 vs healthy "
        "| p99 vs tap only |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, row in rows.items():
        out.append(
            f"| {LABELS[case]} | {_ms(row['latency_ms.p50'])} | {_ms(row['latency_ms.p90'])} "
            f"| {_ms(row['latency_ms.p99'])} | {' / '.join(_ms(v) for v in row['p99_by_round'])} "
            f"| {_ms(row['latency_ms.max'])} "
            f"| {row['achieved_rate']:.1f} | {row['errors']:,} of {row['scheduled']:,} "
            f"| {_pct(row, 'p99_vs_healthy_pct')} | {_pct(row, 'p99_vs_baseline_pct')} |"
        )
    return out


def dispatch_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    out = [
        "| case | captures per run | pairs written per run | in flight at the end | waiting in the stream "
        "| candidate outcomes (all rounds) | breaker at the end | stale skipped |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for case, row in rows.items():
        s = row.get("streams")
        if s is None:
            continue
        out.append(
            f"| {LABELS[case]} | {s['captures']:,.0f} | {s['pairs']:,.0f} | {s['pending']:,.0f} "
            f"| {s['lag']:,.0f} | {_classes(s['outcomes_total'])} | {', '.join(s['breaker'])} "
            f"| {s['stale']:,} |"
        )
    return out


CPU_COLUMNS = {
    "load": "load generator",
    "tap": "tap",
    "dispatch": "`dispatch` process",
    "primary": "primary",
    "candidate-healthy": "healthy candidate",
    "candidate-slow": "slow candidate",
    "nginx": "nginx worker",
    "redis": "Redis",
}


def cpu_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    out = [
        "| case | " + " | ".join(CPU_COLUMNS.values()) + " | total |",
        "|---|" + "---:|" * (len(CPU_COLUMNS) + 1),
    ]
    for case, row in rows.items():
        cpu = row["cpu_s"]
        cells = [f"{cpu[k]:.2f}" if cpu.get(k) else "—" for k in CPU_COLUMNS]
        out.append(f"| {LABELS[case]} | " + " | ".join(cells) + f" | {sum(cpu.values()):.2f} |")
    return out


def target_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for case in ("dispatch-slow", "dispatch-dead", "with-dispatch-slow", "with-dispatch-dead"):
        row = rows.get(case)
        if row is None or "p99_vs_healthy_pct" not in row:
            continue
        pct = row["p99_vs_healthy_pct"]
        lines.append(
            f"- {LABELS[case][3:]}: p99 {_ms(row['latency_ms.p99'])} ms, {pct:+.1f} % vs the healthy "
            f"candidate (target ≤ +{TARGET_PCT:g} %) {_verdict(pct <= TARGET_PCT)}; higher than the healthy "
            f"case in {row['rounds_above_healthy']} of {len(row['p99_by_round'])} rounds"
        )
    if not lines:
        return ["- (the cases needed for the targets were not run)"]
    base = rows.get(TAP_ONLY)
    if base is not None and len(base["p99_by_round"]) > 1:
        spread = 100 * (max(base["p99_by_round"]) / min(base["p99_by_round"]) - 1)
        lines.append(
            f"- Noise floor: the same tap-only configuration's p99 varied by {spread:.0f} % between rounds "
            f"({' / '.join(_ms(v) for v in base['p99_by_round'])} ms), so differences of that size are the "
            "machine's, not the candidate's; the CPU table below shows what each case actually cost."
        )
    return lines


def nginx_lines(rows: dict[str, dict[str, Any]], rate: float, timeout_s: float) -> list[str]:
    row = rows.get(NGINX)
    if row is None:
        return []
    ok = row["scheduled"] - row["errors"]
    return [
        f"- Offered {rate:,.0f} req/s; {ok:,} of {row['scheduled']:,} requests answered over all rounds, "
        f"at a median {row['achieved_rate']:.1f} req/s; failed: {_classes(row['error_classes'])} "
        f"(client timeout {timeout_s:g} s).",
        f"- Of the answered ones: p50 {_ms(row['latency_ms.p50'])} ms, p99 {_ms(row['latency_ms.p99'])} ms, "
        f"max {_ms(row['latency_ms.max'])} ms from the scheduled send time. (The generator's 'service time' "
        f"is no help here: it starts before the wait for a free pooled connection; p50 "
        f"{_ms(row['service_ms.p50'])} ms.)",
    ]


def render_markdown(result: dict[str, Any]) -> str:
    m, s, med = result["machine"], result["settings"], result["medians"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_at_start"])
    settings = ", ".join(f"`{k}={v}`" for k, v in result["dispatch_settings"].items())
    lines = [
        "# Dispatch impact: a slow or dead candidate against the primary's latency",
        "",
        f"- Date: {m['date']}; wall time {result['wall_seconds']:.0f} s",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average at start {load}",
        f"- Software: shadowgate {m['shadowgate']} at {m['revision']}, Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, nginx {m['nginx']}, Redis {m['redis_server']}",
        f"- Command: `{result['command']}`",
        f"- Load: open loop at {s['rate']:,.0f} req/s for {s['seconds']:g} s per run after {s['warmup']:g} s "
        f"unrecorded, {s['connections']} keepalive connections, client timeout {s['timeout']:g} s. "
        "Latency in ms from each request's *scheduled* send time (no coordinated omission).",
        f"- Rounds: {s['rounds']}, interleaved (each round runs every case once, in table order); figures "
        "are medians over rounds, and 'p99 vs' is the median of the per-round ratios. Each tap run starts a "
        "fresh tap (and dispatcher) on a stream prefix of its own, so no backlog carries from one run into "
        "the next.",
        "- Candidates: healthy = `bench/primary.py`; slow = "
        f"`bench/primary.py --delay-ms {s['delay_ms']:g}`; dead = a port nobody listens on (connection "
        f"refused). Dispatch settings: {settings}.",
        "- **Everything shares the same 2 CPUs**: load generator, primary, tap, dispatcher, candidates, "
        "nginx and Redis. A healthy candidate means dispatch does real work (one candidate call and one "
        "pair written per capture), and that work takes CPU from the same cores as the tap.",
        "",
        "## Targets",
        "",
        *target_lines(med),
        "",
        "## The primary's latency",
        "",
        *latency_table(med),
        "",
        "## What dispatch did",
        "",
        "Read at the end of each run's load, before its processes stop; 'per run' figures are medians over "
        "rounds. Pairs with a candidate error are written too (the error class is the comparison's "
        "evidence). 'In flight' is the consumer group's pending count, 'waiting' its lag (captures not yet "
        "read by any dispatcher).",
        "",
        *dispatch_table(med),
        "",
        "## Where the CPU went",
        "",
        f"CPU seconds used during each run's load ({s['warmup']:g} s warm-up + {s['seconds']:g} s measured, "
        "plus pool priming and the wait for the last answers), median over rounds, from `/proc/PID/stat`; "
        f"the machine has 2 × {s['warmup'] + s['seconds']:g} = {2 * (s['warmup'] + s['seconds']):g} "
        "CPU seconds in that time. `--with-dispatch` counts its dispatcher under the tap:",
        "",
        *cpu_table(med),
        "",
    ]
    if NGINX in med:
        lines += [
            "## Reference: nginx `mirror` with a slow mirror target",
            "",
            *nginx_lines(med, s["rate"], s["timeout"]),
            "",
        ]
    lines += [
        f"The benchmark's Redis keys were deleted at the end ({result['redis_keys_left']} left).",
        "",
    ]
    return "\n".join(lines)
