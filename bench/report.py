"""The Markdown report of bench/tap_overhead.py: pure functions from its result dict to text."""

from __future__ import annotations

import math
from typing import Any

# Targets to compare against (a benchmark, not a test): added latency at a fixed 1,000 req/s with capture
# on, and capture-on throughput at saturation as a share of capture-off.
TARGETS = {"added_p50_ms": 0.5, "added_p99_ms": 1.0, "capture_pct_of_off": 75.0}

LABELS = {
    "direct": "direct to the primary",
    "tap-no-capture": "tap, `--no-capture`",
    "tap-capture": "tap, capture on",
    "nginx-mirror": "nginx `mirror` (1 worker)",
    "tap-capture-redis-down": "tap, capture on, Redis down",
    "tap-capture-2-workers": "tap, capture on, `--workers 2`",
}


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _added(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.3f}"


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def open_loop_table(rows: dict[str, dict[str, float]], kind: str) -> list[str]:
    out = [
        "| configuration | p50 | p90 | p99 | p99.9 | max | achieved req/s | errors "
        "| added p50 vs direct | added p99 vs direct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config, row in rows.items():
        direct = config == "direct"
        out.append(
            f"| {LABELS[config]} | {_ms(row[f'{kind}.p50'])} | {_ms(row[f'{kind}.p90'])} "
            f"| {_ms(row[f'{kind}.p99'])} | {_ms(row[f'{kind}.p99.9'])} | {_ms(row[f'{kind}.max'])} "
            f"| {row['achieved_rate']:.1f} | {row['errors']:.0f} "
            f"| {'—' if direct else _added(row[f'{kind}.added_p50'])} "
            f"| {'—' if direct else _added(row[f'{kind}.added_p99'])} |"
        )
    return out


def saturation_table(rows: dict[str, dict[str, float]]) -> list[str]:
    out = [
        "| configuration | req/s | % of tap `--no-capture` | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {LABELS[config]} | {row['rps']:,.0f} | {row['pct_of_tap_off']:.0f} % "
        f"| {_ms(row['p50_ms'])} | {_ms(row['p99_ms'])} | {row['errors']:.0f} |"
        for config, row in rows.items()
    ]
    return out


def target_lines(medians: dict[str, Any], rate: float) -> list[str]:
    on = medians["open_loop"]["tap-capture"]
    down = medians["open_loop"]["tap-capture-redis-down"]
    sat = medians["saturation"]["tap-capture"]
    t50, t99, tpct = TARGETS["added_p50_ms"], TARGETS["added_p99_ms"], TARGETS["capture_pct_of_off"]
    at = f"at {rate:,.0f} req/s"
    lines = []
    for label, row in (("capture on", on), ("capture on, Redis down", down)):
        p50, p99 = row["latency_ms.added_p50"], row["latency_ms.added_p99"]
        lines += [
            f"- {label}, added p50 vs direct {at}: {p50:+.3f} ms (target ≤ {t50} ms) {_verdict(p50 <= t50)}",
            f"- {label}, added p99 vs direct {at}: {p99:+.3f} ms (target ≤ {t99} ms) {_verdict(p99 <= t99)}",
        ]
    pct = sat["pct_of_tap_off"]
    lines.append(
        f"- capture on at saturation: {pct:.0f} % of capture-off throughput (target ≥ {tpct:.0f} %) "
        f"{_verdict(pct >= tpct)}"
    )
    return lines


def capture_lines(capture: dict[str, Any], deleted: int) -> list[str]:
    on, w2, down = capture["tap-capture"], capture["tap-capture-2-workers"], capture["tap-capture-redis-down"]
    dropped_on = {k: v for k, v in on["dropped"].items() if v} or "none"
    dropped_down = {k: v for k, v in down["dropped"].items() if v} or "none"
    return [
        f"- tap, capture on: {on['tap_requests']:,} requests answered, {on['captured']:,} captured, "
        f"stream length {on['stream_length']:,}; dropped: {dropped_on}.",
        f"- tap, capture on, 2 workers: stream length {w2['stream_length']:,} "
        f"(wrk counted {w2['wrk_responses_measured']:,} responses in its measured runs, plus warm-up).",
        f"- tap, Redis down: {down['tap_requests']:,} requests answered, {down['captured']:,} captured, "
        f"queue {down['queue']:,}; dropped: {dropped_down}.",
        f"- The benchmark's Redis keys ({deleted} streams) were deleted at the end.",
    ]


def _lag(medians: dict[str, Any]) -> str:
    return f"{max(row['send_lag_ms.p99'] for row in medians['open_loop'].values()):.3f}"


def render_markdown(result: dict[str, Any]) -> str:
    m, s, med = result["machine"], result["settings"], result["medians"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_at_start"])
    lines = [
        "# Tap overhead",
        "",
        f"- Date: {m['date']}; wall time {result['wall_seconds']:.0f} s",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average at start {load}",
        f"- Software: Python {m['python']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, "
        f"nginx {m['nginx']}, Redis {m['redis_server']}, {m['wrk']}",
        f"- Command: `{result['command']}`",
        f"- Rounds: {s['rounds']}, interleaved (each round runs every configuration once, in table order); "
        "figures are medians over rounds, and 'added' is the median of the per-round differences.",
        "- **Everything shares the same CPUs**: load generator, primary, tap, nginx, the mirror sink "
        "and Redis. On a small machine the absolute numbers are a lower bound, and the comparisons "
        "are what count." + (f" Load generators pinned to CPU {s['pin_load']}." if s.get("pin_load") else ""),
        "",
        "## Targets",
        "",
        *target_lines(med, s["rate"]),
        "",
        f"## Open loop at {s['rate']:,.0f} req/s ({s['seconds']:g} s per run, "
        f"{s['connections']} keepalive connections)",
        "",
        "Latency in ms from each request's *scheduled* send time (no coordinated omission). The "
        "generator is one Python process (aiohttp client on uvloop) ticking on a Linux timerfd:",
        "",
        *open_loop_table(med["open_loop"], "latency_ms"),
        "",
        "Service time in ms, from the moment each request actually left the generator (the same without "
        f"the generator's own send lag, median p99 {_lag(med)} ms; the targets use the table above):",
        "",
        *open_loop_table(med["open_loop"], "service_ms"),
        "",
        f"## Saturation (closed loop: `wrk -t1 -c{s['wrk_connections']} -d{s['wrk_seconds']:g}s`, keepalive)",
        "",
        *saturation_table(med["saturation"]),
        "",
        "## Capture check",
        "",
        *capture_lines(result["capture"], result["redis_keys_deleted"]),
        "",
    ]
    return "\n".join(lines)
