"""Replay a recorded minute at `--speed 4` (and at `--rate 50`): wall time, achieved rate, pacing, run ids.

Records a minute of real captures (the open loop at 20 req/s through a capturing tap), then runs
`shadowgate replay --speed 4 --json` and `shadowgate replay --rate 50 --json` on that window against a
bench/primary.py candidate, and checks the pairs each run wrote. Writes bench/results/replay_speed.{md,json}.

    python bench/replay_speed.py            # record 60 s, replay twice (about 2 min)
    python bench/replay_speed.py --quick    # record 15 s: a smoke test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from harness import (
    Procs,
    delete_keys,
    git_revision,
    open_loop,
    shadowgate,
    shadowgate_env,
    shadowgate_version,
    start_primary,
    start_tap,
    workdir,
)
from openloop import percentile
from tap_overhead import REDIS_URL, RESULTS, machine

from mirror.exchange import decode_entry

# Targets (a benchmark, not a test): how close the replay's duration or rate comes to what was asked.
TOLERANCE_PCT = 5.0
_REPLAY_ENV = ("SHADOWGATE_REDIS_URL", "SHADOWGATE_STREAM_PREFIX", "SHADOWGATE_CANDIDATE_URL")


def record(procs: Procs, client: redis.Redis, prefix: str, args: argparse.Namespace) -> dict[str, Any]:
    """Drive the open loop through a capturing tap; leave exactly the scheduled requests in the stream."""
    primary = start_primary(procs, "primary")
    env = shadowgate_env(procs.workdir, "tap", prefix, SHADOWGATE_PRIMARY_URL=f"http://127.0.0.1:{primary}")
    url = start_tap(procs, "tap", env)
    load = open_loop(
        url, rate=args.record_rate, seconds=args.record_seconds, warmup=0, connections=args.connections
    )
    tap = next(s for s in procs.running if s.name == "tap")
    tap.proc.send_signal(signal.SIGTERM)  # the tap flushes its capture queue as it stops
    tap.proc.wait(15)
    stream = f"{prefix}:captures"
    # openloop.py primes its keepalive pool with one request per connection before the schedule starts;
    # those are the first entries, a burst that is not part of the recorded minute.
    primes = [eid for eid, _ in client.xrange(stream, count=args.connections)]
    client.xdel(stream, *primes)
    first = client.xrange(stream, count=1)[0]
    last = client.xrevrange(stream, count=1)[0]
    first_ms, last_ms = _entry_ms(first[0]), _entry_ms(last[0])
    return {
        "load": load,
        "primes_removed": len(primes),
        "captures": client.xlen(stream),
        # The window passed to replay: the stream ids (write times) of the first and last capture,
        # a millisecond wider on each side so float rounding in the ISO round trip loses nothing.
        "since": _iso(first_ms - 1),
        "until": _iso(last_ms + 1),
        "span_s": (int(last[1][b"ts"]) - int(first[1][b"ts"])) / 1000,  # first to last capture time
    }


def _entry_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


def replay(env: dict[str, str], window: dict[str, Any], pace: list[str], cwd: Path) -> dict[str, Any]:
    """One `shadowgate replay ... --json`, timed from outside (process start to exit)."""
    cmd = shadowgate("replay", "--since", window["since"], "--until", window["until"], *pace, "--json")
    started = time.monotonic()
    done = subprocess.run(
        cmd, capture_output=True, env=env, cwd=cwd, timeout=window["span_s"] * 2 + 120, check=False
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"replay failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}"
        )
    return {
        "command": "shadowgate " + " ".join(shlex.quote(a) for a in cmd[3:]),
        "wall_s": round(wall, 3),
        "summary": json.loads(done.stdout),
    }


def check_pairs(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every pair in the stream by its `replay` field, and each run's candidate send times."""
    by_run: Counter[str] = Counter()
    sends: dict[str, list[tuple[float, float]]] = {}
    start = "-"
    while page := client.xrange(f"{prefix}:pairs", min=start, count=1000):
        for _, fields in page:
            run = fields.get(b"replay", b"").decode() or "(none)"
            by_run[run] += 1
            pair = decode_entry(fields)
            if pair.candidate is not None:
                sends.setdefault(run, []).append((pair.captured_at, pair.candidate.started_at))
        start = "(" + page[-1][0].decode()
    return {"by_run": dict(by_run), "sends": sends}


def pacing_error_ms(sends: list[tuple[float, float]], *, speed: float | None, rate: float | None) -> dict:
    """How far each candidate call left from where the pace put it, relative to the first call (ms)."""
    ordered = sorted(sends)
    t0, s0 = ordered[0]
    errors = []
    for i, (captured, sent) in enumerate(ordered):
        due = i / rate if rate else (captured - t0) / (speed or 1.0)
        errors.append(abs((sent - s0) - due) * 1000)
    errors.sort()
    return {"p50": percentile(errors, 50), "p99": percentile(errors, 99), "max": errors[-1]}


# --- the report -----------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def render_markdown(result: dict[str, Any]) -> str:
    m, rec, s = result["machine"], result["recording"], result["settings"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_at_start"])
    speed, rate = result["runs"]["speed"], result["runs"]["rate"]
    span = rec["span_s"]
    rows = []
    for run, expected in ((speed, span / s["speed"]), (rate, (rec["captures"] - 1) / s["rate"])):
        sm = run["summary"]
        pe = run["pacing_error_ms"]
        rows.append(
            f"| `{run['command']}` | {sm['matched']:,} | {sm['sent']:,} | {sm['ok']:,} "
            f"| {sum(sm['errors'].values()):,} | {expected:.2f} | {sm['seconds']:.2f} | {run['wall_s']:.2f} "
            f"| {sm['achieved_rate']:.2f} | {pe['p50']:.1f} / {pe['p99']:.1f} / {pe['max']:.1f} "
            f"| {run['pairs_with_run_id']:,} |"
        )
    lines = [
        "# Replay speed: a recorded minute at `--speed 4` and at `--rate 50`",
        "",
        f"- Date: {m['date']}; wall time {result['wall_seconds']:.0f} s",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average at start {load}. **Everything shares the same 2 CPUs** (load generator, primary, "
        "tap, candidate, replay, Redis).",
        f"- Software: shadowgate {m['shadowgate']} at {m['revision']}, Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, Redis {m['redis_server']}",
        f"- Command: `{result['command']}`",
        f"- Recording: `bench/openloop.py` at {s['record_rate']:g} req/s for {s['record_seconds']:g} s "
        f"through `shadowgate tap` (capture on, the machine's Redis, stream prefix `{result['prefix']}`), "
        f"{s['connections']} keepalive connections; {rec['load']['ok']:,} answered, "
        f"{rec['load']['error_count']} errors. The {rec['primes_removed']} pool-priming requests were "
        f"removed from the stream (XDEL), leaving {rec['captures']:,} captures whose capture times span "
        f"{span:.2f} s.",
        f"- Replay: environment `SHADOWGATE_REDIS_URL`, `SHADOWGATE_STREAM_PREFIX`, "
        "`SHADOWGATE_CANDIDATE_URL` (a `bench/primary.py`), everything else default "
        f"(`SHADOWGATE_DISPATCH__CONCURRENCY={result['concurrency']}`); window `--since {rec['since']} "
        f"--until {rec['until']}`. Wall time is the `shadowgate replay` process from start to exit "
        "(interpreter start and the counting pass included); 'replay s' is the JSON summary's `seconds`.",
        "",
        "Exact replay commands (the candidate's port is picked at run time):",
        "",
        "```sh",
        *(f"{result['replay_env']} {run['command']}" for run in (speed, rate)),
        "```",
        "",
        "## Targets",
        "",
        *result["target_lines"],
        "",
        "## Runs",
        "",
        "| command | matched | sent | ok | errors | expected s | replay s | wall s | achieved req/s "
        "| pacing error ms p50 / p99 / max | pairs with its run id |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "'Expected s' is the window's span divided by the speed, or (captures − 1) / rate. The pacing error "
        "is, for each pair, how far the candidate call's start (`candidate.started_at`) sits from where "
        "the pace puts it, both relative to the run's first call.",
        "",
        f"Pairs in `{result['prefix']}:pairs` by their `replay` field: {result['pairs_by_run']}. "
        f"The benchmark's Redis keys were deleted at the end ({result['redis_keys_deleted']} keys).",
        "",
    ]
    return "\n".join(lines)


def target_lines(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    rec, speed, rate = result["recording"], result["runs"]["speed"], result["runs"]["rate"]
    expected = rec["span_s"] / args.speed
    took = speed["summary"]["seconds"]
    off = 100 * (took / expected - 1)
    achieved = rate["summary"]["achieved_rate"]
    rate_off = 100 * (achieved / args.rate - 1)
    tagged = (
        all(r["pairs_with_run_id"] == r["summary"]["sent"] == rec["captures"] for r in (speed, rate))
        and result["pairs_by_run"].get("(none)", 0) == 0
    )
    tol = TOLERANCE_PCT
    return [
        f"- `--speed {args.speed:g}`: {took:.2f} s for a {rec['span_s']:.2f} s window (expected "
        f"{expected:.2f} s; {off:+.1f} %, target within ±{tol:g} %) {_verdict(abs(off) <= tol)}",
        f"- `--rate {args.rate:g}`: {achieved:.2f} req/s achieved ({rate_off:+.1f} %, "
        f"target within ±{tol:g} %) {_verdict(abs(rate_off) <= tol)}",
        f"- every capture replayed once per run, and every replayed pair carries its run id in the `replay` "
        f"field {_verdict(tagged)}",
    ]


# --- entry ----------------------------------------------------------------------------------------------


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record-rate", type=float, default=20.0, help="req/s while recording")
    parser.add_argument("--record-seconds", type=float, default=60.0, help="how long to record")
    parser.add_argument("--connections", type=int, default=4, help="open-loop keepalive pool")
    parser.add_argument("--speed", type=float, default=4.0, help="replay --speed")
    parser.add_argument("--rate", type=float, default=50.0, help="replay --rate, the comparison run")
    parser.add_argument("--quick", action="store_true", help="record 15 s: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the .md and .json go")
    args = parser.parse_args(argv)
    if args.quick:
        args.record_seconds = 15.0
    return args


def main(argv: list[str] | None = None) -> int:
    from shadowgate.settings import Dispatch

    args = _args(argv)
    command = "python bench/replay_speed.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prefix = f"bench-{secrets.token_hex(4)}"
    info = machine()
    info.update(shadowgate=shadowgate_version(), revision=git_revision())
    started = time.monotonic()
    client = redis.Redis.from_url(REDIS_URL)
    runs: dict[str, Any] = {}
    try:
        with workdir() as path:
            procs = Procs(path)
            try:
                recording = record(procs, client, prefix, args)
                candidate = start_primary(procs, "candidate")
                env = shadowgate_env(
                    path, "replay", prefix, SHADOWGATE_CANDIDATE_URL=f"http://127.0.0.1:{candidate}"
                )
                for name, pace in (
                    ("speed", ["--speed", f"{args.speed:g}"]),
                    ("rate", ["--rate", f"{args.rate:g}"]),
                ):
                    runs[name] = replay(env, recording, pace, path)
                    sm = runs[name]["summary"]
                    print(
                        f"{runs[name]['command']}: {sm['sent']} sent in {sm['seconds']:.2f} s "
                        f"(wall {runs[name]['wall_s']:.2f} s), {sm['achieved_rate']:.2f} req/s",
                        flush=True,
                    )
                pairs = check_pairs(client, prefix)
            finally:
                procs.stop_all()
                deleted = delete_keys(client, prefix)
    finally:
        client.close()
    for name, run in runs.items():
        sends = pairs["sends"].get(run["summary"]["run_id"], [])
        run["pairs_with_run_id"] = pairs["by_run"].get(run["summary"]["run_id"], 0)
        run["pacing_error_ms"] = (
            (
                pacing_error_ms(sends, speed=args.speed, rate=None)
                if name == "speed"
                else pacing_error_ms(sends, speed=None, rate=args.rate)
            )
            if sends
            else {"p50": math.nan, "p99": math.nan, "max": math.nan}
        )
    result: dict[str, Any] = {
        "machine": info,
        "command": command,
        "prefix": prefix,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "concurrency": Dispatch().concurrency,
        "replay_env": " ".join(f"{k}={v}" for k, v in env.items() if k in _REPLAY_ENV),
        "recording": recording,
        "runs": runs,
        "pairs_by_run": pairs["by_run"],
        "redis_keys_deleted": deleted,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    result["target_lines"] = target_lines(result, args)
    markdown = render_markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replay_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "replay_speed.md").write_text(markdown)
    print()
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
