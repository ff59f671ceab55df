"""Fault scenarios against real processes, with the figures: requests sent, client errors, pairs lost, pairs
duplicated. The same scenarios as tests/faults (tests/faults/scenarios.py), run longer and bigger.

Each scenario starts `shadowgate tap`, `dispatch` and `worker` as processes of their own on a stream prefix
of its own, drives paced traffic through the tap with the real openai SDK, injects its fault, waits for the
pipeline to settle, then follows every request id through the captures stream, the pairs stream and the
store. "Pairs expected" is one per capture Redis acknowledged (a capture the tap dropped, and counted,
while Redis was down is not expected); "lost" is an expected pair missing from the store (from the pairs
stream where no worker runs); "duplicated" counts pairs and stored rows beyond one per exchange.

Redis faults use a private Valkey server (the embedded one) that is SIGKILLed and restarted; the
PostgreSQL outage uses a private cluster (initdb in a temporary folder) stopped with `pg_ctl -m
immediate`; the machine's own Redis (127.0.0.1:6379, or SHADOWGATE_TEST_REDIS_URL) carries the streams
of the other scenarios and is never touched. Writes bench/results/faults.md and faults.json.

    python bench/faults_report.py            # full sizes, PostgreSQL down for 60 s (about 3 minutes)
    python bench/faults_report.py --quick    # the CI sizes (about 2 minutes)
    python bench/faults_report.py --only redis_restart --only kills
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import scenarios  # noqa: E402
from tests.faults.harness import PrivatePostgres, postgres_bin  # noqa: E402

REDIS_URL = os.environ.get("SHADOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = ROOT / "bench" / "results"

# name -> (full sizes, CI sizes)
SIZES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "redis_restart": (
        {"rate": 50, "before_s": 5, "down_s": 5, "after_s": 5},
        {"rate": 40, "before_s": 3, "down_s": 3, "after_s": 3},
    ),
    "postgres_outage": (
        {"rate": 20, "before_s": 5, "outage_s": 60, "after_s": 5},
        {"rate": 20, "before_s": 3, "outage_s": 15, "after_s": 2},
    ),
    "candidate_faults": (
        {"rate": 40, "faults_s": 8, "dead_s": 5, "after_s": 4},
        {"rate": 30, "faults_s": 4, "dead_s": 3, "after_s": 2},
    ),
    "tap_sigterm": ({"rate": 80, "load_s": 5}, {"rate": 60, "load_s": 3}),
    "kills": (
        {"rate": 25, "requests": 400, "dispatch_kills": 3, "worker_kills": 2},
        {"rate": 25, "requests": 160, "dispatch_kills": 2, "worker_kills": 1},
    ),
}


async def run_one(name: str, workdir: Path, sizes: dict[str, Any]) -> scenarios.FaultResult:
    run: Callable[..., Awaitable[scenarios.FaultResult]] = getattr(scenarios, name)
    if name == "redis_restart":
        return await run(workdir, **sizes)
    if name == "postgres_outage":
        bindir = postgres_bin()
        if bindir is None:
            raise SystemExit("the PostgreSQL outage needs initdb and pg_ctl (the postgresql server package)")
        postgres = PrivatePostgres(bindir)
        try:
            postgres.init()
            return await run(workdir, REDIS_URL, postgres, **sizes)
        finally:
            postgres.destroy()
    return await run(workdir, REDIS_URL, **sizes)


def note(name: str, r: scenarios.FaultResult) -> str:
    """One line on what the scenario did and what held."""
    n = r.notes
    alive = "every process still running" if all(n.get("alive", {True: True}).values()) else "A PROCESS DIED"
    if name == "redis_restart":
        drops = ", ".join(f"{k} {v}" for k, v in n["tap"]["capture"]["dropped"].items()) or "none"
        return (
            f"killed after request {n['killed_after']}, back after {n['restarted_after']}; "
            f"tap drops: {drops}; {alive}"
        )
    if name == "postgres_outage":
        held = max(n["pending_during_outage"], default=0)
        return (
            f"the worker held {held} pair(s) read and unacknowledged while up to "
            f"{n.get('waiting_during_outage', 0)} more waited in the stream; "
            f"{n['pairs_dead_during_outage']} dead-lettered; {r.ledger.scores} scored rows after"
        )
    if name == "candidate_faults":
        classes: dict[str, int] = {}
        for (_, error), count in n["classes"].items():
            classes[error or "ok"] = classes.get(error or "ok", 0) + count
        listed = ", ".join(f"{k} {v}" for k, v in sorted(classes.items()))
        return (
            f"candidate sides: {listed}; candidate pushed {n['candidate_sent_bytes'] / 2**20:.0f} MiB "
            f"(+ gzip bombs of 1 GiB inflated); tap peak RSS {n['tap_peak_rss_mb']:.0f} MB, "
            f"worker {n['worker_peak_rss_mb']:.0f} MB"
        )
    if name == "tap_sigterm":
        return (
            f"{n['in_flight_at_sigterm']} requests in flight at SIGTERM, all answered; tap exit "
            f"{n['tap_exit']}; its last line: {n['summary'][0]} requests, {n['summary'][2]} captured, "
            f"dropped {n['summary'][3]}"
        )
    return (
        f"killed holding {n['dispatch_held']} (dispatch) and {n['worker_held']} (worker) entries read and "
        "not acknowledged"
    )


def render(rows: list[tuple[str, scenarios.FaultResult]], command: str, when: str, revision: str) -> str:
    lines = [
        "# Fault scenarios",
        "",
        f"`{command}` — {when}, revision {revision}. Every process is real (`shadowgate tap/dispatch/"
        "worker`, the simulator as primary and candidate, Valkey, PostgreSQL); traffic is the openai SDK.",
        "",
        "| scenario | requests sent | client errors | captures dropped (counted) | pairs expected "
        "| pairs lost | pairs duplicated | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in rows:
        lines.append(
            f"| {r.scenario} | {r.sent:,} | {r.client_errors} | {r.dropped} | {r.expected:,} | {r.lost} "
            f"| {r.duplicated} | {r.seconds:.0f} |"
        )
    lines += ["", "What happened in each:", ""]
    lines += [f"- **{r.scenario}**: {note(name, r)}." for name, r in rows]
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the CI sizes")
    parser.add_argument("--only", action="append", choices=sorted(SIZES), help="run only these (repeatable)")
    args = parser.parse_args()
    names = args.only or list(SIZES)
    rows: list[tuple[str, scenarios.FaultResult]] = []
    for name in names:
        sizes = SIZES[name][1 if args.quick else 0]
        print(f"{name} {sizes} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix=f"sgfaults-{name}-") as tmp:
            result = asyncio.run(run_one(name, Path(tmp), sizes))
        print(f"  {result.row()}", file=sys.stderr, flush=True)
        rows.append((name, result))
    command = shlex.join(["python", "bench/faults_report.py", *sys.argv[1:]])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = render(rows, command, when, _revision())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faults.md").write_text(report)
    (RESULTS / "faults.json").write_text(
        json.dumps(
            {
                "command": command,
                "when": when,
                "results": [{**r.row(), "seconds": round(r.seconds, 1), "note": note(n, r)} for n, r in rows],
            },
            indent=2,
        )
    )
    print(report)
    bad = [r for _, r in rows if r.client_errors or r.lost or r.duplicated or not r.settled]
    return 1 if bad else 0


def _revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
