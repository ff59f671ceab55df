"""A slow or dead candidate must not touch users: the primary's latency through the tap while dispatch runs.

At a fixed open-loop rate, through a capturing tap, with: no dispatcher (baseline); `shadowgate dispatch` as
its own process against a healthy, a slow (every answer 2 s late) and a dead candidate; the same three with
`shadowgate tap --with-dispatch`; and, for reference, nginx's `mirror` with its mirror target 2 s slow.
Interleaved over rounds; each tap run has fresh processes and a stream prefix of its own.
Writes bench/results/dispatch_impact.{md,json}.

    python bench/dispatch_impact.py            # 3 rounds, 300 req/s for 10 s per case (about 7 min)
    python bench/dispatch_impact.py --quick    # 1 round, 3 s per case: a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import secrets
import shlex
import shutil
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from dispatch_report import CASES, DISPATCH_CASES, NGINX, TAP_ONLY, TARGET_PCT, render_markdown
from harness import (
    Procs,
    cpu_seconds,
    delete_keys,
    free_port,
    git_revision,
    heartbeats,
    open_loop,
    shadowgate,
    shadowgate_env,
    shadowgate_version,
    start_primary,
    start_tap,
    wait_for_heartbeat,
    workdir,
)
from tap_overhead import REDIS_URL, RESULTS, machine, start_nginx

from mirror.exchange import MalformedEntry, decode_entry
from shadowgate.settings import Dispatch, Settings

# How each case runs: where dispatch lives (none, its own process, inside the tap) and which candidate.
LAYOUT: dict[str, tuple[str | None, str | None]] = {
    TAP_ONLY: (None, None),
    "dispatch-healthy": ("process", "healthy"),
    "dispatch-slow": ("process", "slow"),
    "dispatch-dead": ("process", "dead"),
    "with-dispatch-healthy": ("in-tap", "healthy"),
    "with-dispatch-slow": ("in-tap", "slow"),
    "with-dispatch-dead": ("in-tap", "dead"),
    NGINX: (None, None),
}
# The dispatcher's heartbeat (its stats) every second instead of every 5, so the figures read at the end
# of a run are at most a second old. Everything else is the default.
BENCH_ENV = {"SHADOWGATE_DISPATCH__HEARTBEAT_S": "1"}


@dataclass(frozen=True)
class Fixture:
    """The long-lived servers: the primary, the candidates, nginx; and where the per-run processes go."""

    workdir: Path
    prefix: str
    primary_url: str
    candidates: dict[str, str]
    nginx_url: str
    pids: dict[str, int]  # of the fixture's processes (and Redis), for the CPU they use during a run


def start_fixture(procs: Procs, prefix: str, delay_ms: float, redis_pid: int) -> Fixture:
    primary = start_primary(procs, "primary")
    healthy = start_primary(procs, "candidate-healthy")
    slow = start_primary(procs, "candidate-slow", f"--delay-ms={delay_ms:g}")
    nginx_url = start_nginx(procs, primary, slow)
    pids = {s.name: s.proc.pid for s in procs.running}
    pids["redis"] = int(redis_pid)
    # nginx's master only supervises; its one worker does the proxying and mirroring.
    with contextlib.suppress(OSError, ValueError, IndexError):
        nginx = pids.pop("nginx")
        pids["nginx"] = int(Path(f"/proc/{nginx}/task/{nginx}/children").read_text().split()[0])
    return Fixture(
        workdir=procs.workdir,
        prefix=prefix,
        primary_url=f"http://127.0.0.1:{primary}",
        candidates={
            "healthy": f"http://127.0.0.1:{healthy}",
            "slow": f"http://127.0.0.1:{slow}",
            "dead": f"http://127.0.0.1:{free_port()}",  # nobody listens: connection refused
        },
        # nginx.conf.tmpl mirrors every request to its "sink": here the slow candidate.
        nginx_url=nginx_url,
        pids=pids,
    )


def run_case(case: str, round_no: int, fx: Fixture, client: redis.Redis, args: argparse.Namespace) -> dict:
    """One open-loop run of one case; tap and dispatcher are started for it and stopped after it."""
    load = {
        "rate": args.rate,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "connections": args.connections,
        "timeout_s": args.timeout,
    }
    if case == NGINX:
        with cpu_meter(fx.pids) as cpu:
            out = {"load": open_loop(fx.nginx_url, **load)}
        return {**out, "cpu_s": cpu}
    where, candidate = LAYOUT[case]
    prefix = f"{fx.prefix}-{case}-r{round_no}"
    env = shadowgate_env(
        fx.workdir,
        f"{case}-r{round_no}",
        prefix,
        SHADOWGATE_PRIMARY_URL=fx.primary_url,
        SHADOWGATE_CANDIDATE_URL=fx.candidates[candidate or "healthy"],
        **BENCH_ENV,
    )
    procs = Procs(fx.workdir)
    try:
        flags = ("--with-dispatch",) if where == "in-tap" else ()
        url = start_tap(procs, f"tap-{case}-r{round_no}", env, *flags)
        if where == "process":
            procs.spawn(f"dispatch-{case}-r{round_no}", shadowgate("dispatch"), env)
        if where is not None:
            wait_for_heartbeat(client, prefix, procs)
        pids = {**fx.pids, **{s.name.split("-")[0]: s.proc.pid for s in procs.running}}
        with cpu_meter(pids) as cpu:
            out: dict[str, Any] = {"load": open_loop(url, **load)}
        out["cpu_s"] = cpu
        out["streams"] = stream_figures(client, prefix, dispatch=where is not None)
    finally:
        procs.stop_all()
        delete_keys(client, prefix)
    return out


@contextlib.contextmanager
def cpu_meter(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds each process (and the load generator, a reaped child) used inside the block."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out: dict[str, float] = {}
    yield out
    out.update({name: round(cpu_seconds(pid) - before[name], 2) for name, pid in pids.items()})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["load"] = round(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 2)


def stream_figures(client: redis.Redis, prefix: str, *, dispatch: bool) -> dict[str, Any]:
    """What the streams hold at the end of the load: captures, pairs by candidate outcome, the backlog."""
    out: dict[str, Any] = {"captures": client.xlen(f"{prefix}:captures")}
    if not dispatch:
        return out
    outcomes: Counter[str] = Counter()
    start = "-"
    while page := client.xrange(f"{prefix}:pairs", min=start, count=1000):
        for _, fields in page:
            try:
                side = decode_entry(fields).candidate
            except MalformedEntry:
                outcomes["malformed_entry"] += 1
                continue
            outcomes[(side.error or "ok") if side is not None else "no_candidate_side"] += 1
        start = "(" + page[-1][0].decode()
    group = next(
        (g for g in client.xinfo_groups(f"{prefix}:captures") if g["name"] in (b"dispatch", "dispatch")), {}
    )
    beats = heartbeats(client, prefix)
    out.update(
        pairs=sum(outcomes.values()),
        outcomes=dict(outcomes),
        pending=int(group.get("pending", 0)),  # delivered, not yet paired: in flight
        lag=group.get("lag"),  # not yet delivered to any dispatcher: waiting in the stream
        heartbeat=beats[0] if beats else None,
    )
    return out


def run_rounds(fx: Fixture, client: redis.Redis, args: argparse.Namespace) -> dict[str, list[dict]]:
    raw: dict[str, list[dict]] = {case: [] for case in args.cases}
    for round_no in range(1, args.rounds + 1):
        for case in args.cases:
            result = run_case(case, round_no, fx, client, args)
            raw[case].append(result)
            _say(_progress(round_no, case, result))
    return raw


def _progress(round_no: int, case: str, result: dict[str, Any]) -> str:
    load, lat = result["load"], result["load"]["latency_ms"]
    line = (
        f"round {round_no} {case:<22} p50 {lat['p50']:8.3f} p99 {lat['p99']:8.3f} max {lat['max']:8.1f} ms"
        f"  {load['achieved_rate']:6.1f} req/s  errors {load['error_count']}"
    )
    streams = result.get("streams", {})
    if "pairs" in streams:
        line += f"  captures {streams['captures']} pairs {streams['pairs']} {streams['outcomes']}"
    return line


def _say(line: str) -> None:
    print(line, flush=True)


def medians(raw: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Median over rounds per case, and each case's p99 against its healthy reference and the baseline,
    as the median of per-round ratios (the rounds are interleaved, so each pair shares the same drift)."""
    out: dict[str, dict[str, Any]] = {}
    for case, runs in raw.items():
        loads = [r["load"] for r in runs]
        row: dict[str, Any] = {
            f"{kind}.{pct}": statistics.median(r[kind][pct] for r in loads)
            for kind in ("latency_ms", "service_ms")
            for pct in ("p50", "p90", "p99", "p99.9", "max")
        }
        row["p99_by_round"] = [r["latency_ms"]["p99"] for r in loads]
        row["achieved_rate"] = statistics.median(r["achieved_rate"] for r in loads)
        row["scheduled"] = sum(r["scheduled"] for r in loads)
        row["errors"] = sum(r["error_count"] for r in loads)
        row["error_classes"] = dict(sum((Counter(r["errors"]) for r in loads), Counter()))
        for ref_name, ref in (("healthy", _healthy_of(case)), ("baseline", TAP_ONLY)):
            if ref and ref != case and ref in raw and case != NGINX:
                refs = [h["load"]["latency_ms"]["p99"] for h in raw[ref]]
                ratios = [100 * (r["latency_ms"]["p99"] / h - 1) for r, h in zip(loads, refs, strict=True)]
                row[f"p99_vs_{ref_name}_pct"] = statistics.median(ratios)
                row[f"rounds_above_{ref_name}"] = sum(x > 0 for x in ratios)
        row["cpu_s"] = {
            name: statistics.median(r["cpu_s"].get(name, 0.0) for r in runs) for name in runs[0]["cpu_s"]
        }
        if case in DISPATCH_CASES:
            row["streams"] = _stream_medians([r["streams"] for r in runs])
        out[case] = row
    return out


def _healthy_of(case: str) -> str | None:
    if case.startswith("with-dispatch-"):
        return "with-dispatch-healthy"
    if case.startswith("dispatch-"):
        return "dispatch-healthy"
    return None


def _stream_medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes: Counter[str] = sum((Counter(r["outcomes"]) for r in runs), Counter())
    beats = [r["heartbeat"] or {} for r in runs]
    return {
        "captures": statistics.median(r["captures"] for r in runs),
        "pairs": statistics.median(r["pairs"] for r in runs),
        "pending": statistics.median(r["pending"] for r in runs),
        "lag": statistics.median(r["lag"] or 0 for r in runs),
        "outcomes_total": dict(outcomes),
        "stale": sum(b.get("stale", 0) for b in beats),
        "failed": sum(b.get("failed", 0) for b in beats),
        "breaker": sorted({b.get("breaker", "?") for b in beats}),
    }


def dispatch_settings() -> dict[str, Any]:
    """The dispatch settings in force: the model's defaults plus the benchmark's one override."""
    d = Dispatch()
    return {
        "SHADOWGATE_CANDIDATE_TIMEOUT_S": Settings.model_fields["candidate_timeout_s"].default,
        "SHADOWGATE_DISPATCH__CONCURRENCY": d.concurrency,
        "SHADOWGATE_DISPATCH__BATCH": d.batch,
        "SHADOWGATE_DISPATCH__MAX_AGE_S": d.max_age_s,
        "SHADOWGATE_DISPATCH__BREAKER_FAILURES": d.breaker_failures,
        "SHADOWGATE_DISPATCH__BREAKER_COOLDOWN_S": d.breaker_cooldown_s,
        "SHADOWGATE_DISPATCH__BREAKER_MAX_COOLDOWN_S": d.breaker_max_cooldown_s,
        "SHADOWGATE_SHUTDOWN_GRACE_S": 2,
        **BENCH_ENV,
    }


# --- entry ----------------------------------------------------------------------------------------------


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded open-loop seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="open-loop keepalive pool")
    parser.add_argument("--timeout", type=float, default=5.0, help="client timeout per request, seconds")
    parser.add_argument("--delay-ms", type=float, default=2000.0, help="how late the slow candidate answers")
    parser.add_argument(
        "--case", dest="cases", action="append", choices=CASES, help="run only this case (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s runs: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the .md and .json go")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 3.0, 0.5
    args.cases = [c for c in CASES if c in (args.cases or CASES)]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if NGINX in args.cases and shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        print("dispatch_impact: nginx is not installed (apt-get install -y nginx)", file=sys.stderr)
        return 1
    command = "python bench/dispatch_impact.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every process and delete the keys.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prefix = f"bench-{secrets.token_hex(4)}"
    info = machine()
    info.update(shadowgate=shadowgate_version(), revision=git_revision())
    started = time.monotonic()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with workdir() as path:
            procs = Procs(path)
            try:
                redis_pid = int(client.info("server")["process_id"])
                fixture = start_fixture(procs, prefix, args.delay_ms, redis_pid)
                raw = run_rounds(fixture, client, args)
            finally:
                procs.stop_all()
                with contextlib.suppress(redis.RedisError):
                    leftover = list(client.scan_iter(match=f"{prefix}-*", count=1000))
                    if leftover:
                        client.delete(*leftover)
        left = len(list(client.scan_iter(match=f"{prefix}-*", count=1000)))
    finally:
        client.close()
    result = {
        "machine": info,
        "command": command,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "dispatch_settings": dispatch_settings(),
        "target_pct": TARGET_PCT,
        "medians": medians(raw),
        "redis_keys_left": left,
        "wall_seconds": round(time.monotonic() - started, 1),
        "raw": raw,
    }
    markdown = render_markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dispatch_impact.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "dispatch_impact.md").write_text(markdown)
    print()
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
