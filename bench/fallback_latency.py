"""What a fallback costs: in cutover, a candidate that refuses the connection or answers 5xx sends the
request to the primary; how much later does the user get the primary's answer than without cutover?

Each case is a `shadowgate tap` process (capture off, so only the serving path is measured) in front of
bench/primary.py, with the tenant x route `bench-cut / chat` in cutover (written to Redis the way
`shadowgate cutover` writes it) and automatic rollback out of reach, so every request tries the
candidate. Cases: the primary directly; the tap with the tenant in mirror; cutover with a healthy
candidate (it serves); cutover with a candidate that refuses connections; cutover with a candidate that
answers 503; and cutover with a candidate 2 s slow and `cutover.fallback_timeout_s` = 0.2, which must
cost the timeout and no more. Requests are sequential on one keep-alive connection (latency, not load),
interleaved over rounds. Also measured: how long a second tap replica takes to follow a mode change.
Writes bench/results/fallback_latency.{md,json}.

    python bench/fallback_latency.py            # 3 rounds x 1000 requests per case (about 1 min)
    python bench/fallback_latency.py --quick    # 1 round x 200 requests: a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis
import redis.asyncio
from aiohttp import web
from harness import (
    PYTHON,
    Procs,
    delete_keys,
    git_revision,
    shadowgate_env,
    start_primary,
    start_tap,
    workdir,
)
from openloop import percentile
from tap_overhead import PATH, REDIS_URL, RESULTS, free_port, machine

from mirror.modes import CUTOVER, MIRROR, ModeEntry, ModeStore

BODY = (Path(__file__).resolve().parent / "request.json").read_bytes()
TENANT, PROP_TENANT = "bench-cut", "bench-propagation"
DIRECT, MIRRORED, SERVED, REFUSED, FIVE_XX, SLOW = (
    "direct to the primary",
    "tap, tenant in mirror",
    "cutover, candidate healthy (it serves)",
    "cutover, candidate refuses the connection",
    "cutover, candidate answers 503",
    "cutover, candidate 2 s slow, fallback_timeout_s 0.2",
)
FAST_CASES = (DIRECT, MIRRORED, SERVED, REFUSED, FIVE_XX)


async def _five_xx(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"error": {"message": "overloaded"}}, status=503)


def serve_5xx(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _five_xx)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def sequential(url: str, tenant: str, n: int, warmup: int) -> list[float]:
    """`n` requests one after another on one connection (after `warmup` more); latencies in seconds."""
    headers = {"Content-Type": "application/json", "X-Tenant-ID": tenant, "Authorization": "Bearer sk-bench"}
    out: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for i in range(warmup + n):
            started = time.perf_counter()
            async with session.post(url, data=BODY, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url}: status {resp.status}")
            if i >= warmup:
                out.append(time.perf_counter() - started)
    return out


async def health(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url.removesuffix(PATH) + "/_shadowgate/healthz") as resp:
        return dict(await resp.json())


async def set_mode(store: ModeStore, tenant: str, mode: str) -> None:
    await store.put(
        ModeEntry(tenant=tenant, route="chat", mode=mode, since=time.time(), by="bench", reason="benchmark")  # type: ignore[arg-type]
    )


async def wait_in_cutover(urls: list[str], tenant: str, want: bool, timeout_s: float = 10.0) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + timeout_s
        for url in urls:
            while (f"{tenant}|chat" in (await health(session, url))["cutover"]["in_cutover"]) != want:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not follow the mode change")
                await asyncio.sleep(0.01)


async def propagation(store: ModeStore, url: str, flips: int) -> list[float]:
    """Seconds from a mode change in Redis to a tap replica serving by it (healthz polled every 2 ms)."""
    delays: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(flips):
            want = i % 2 == 0
            await asyncio.sleep(0.05 + (i % 7) * 0.037)  # land at different points of the refresh cycle
            started = time.perf_counter()
            await set_mode(store, PROP_TENANT, CUTOVER if want else MIRROR)
            polls = 0
            while (f"{PROP_TENANT}|chat" in (await health(session, url))["cutover"]["in_cutover"]) != want:
                polls += 1  # polling from outside is what is measured
                await asyncio.sleep(0.002)
            delays.append(time.perf_counter() - started)
    return delays


def summary(values_s: list[float]) -> dict[str, float]:
    ordered = sorted(values_s)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50) * 1000,
        "p90": percentile(ordered, 90) * 1000,
        "p99": percentile(ordered, 99) * 1000,
        "max": ordered[-1] * 1000,
    }


async def run(args: argparse.Namespace, urls: dict[str, str], prefix: str) -> dict[str, Any]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    store = ModeStore(client, prefix)
    try:
        await set_mode(store, TENANT, CUTOVER)
        await wait_in_cutover([urls[c] for c in (SERVED, REFUSED, FIVE_XX, SLOW)], TENANT, True)
        samples: dict[str, list[float]] = {case: [] for case in (*FAST_CASES, SLOW)}
        for r in range(args.rounds):
            order = FAST_CASES[r % len(FAST_CASES) :] + FAST_CASES[: r % len(FAST_CASES)]
            for case in order:
                tenant = "bench-mirror" if case == MIRRORED else TENANT
                samples[case] += await sequential(urls[case], tenant, args.requests, args.warmup)
                print(f"round {r + 1}: {case}: done", file=sys.stderr)
            samples[SLOW] += await sequential(urls[SLOW], TENANT, args.slow_requests, 1)
        async with aiohttp.ClientSession() as session:
            counters = {
                case: (await health(session, urls[case]))["cutover"] for case in urls if case != DIRECT
            }
        delays = await propagation(store, urls[MIRRORED], args.flips)
    finally:
        await client.aclose()
    return {
        "samples": {k: summary(v) for k, v in samples.items()},
        "counters": counters,
        "propagation": summary(delays),
    }


def render(result: dict[str, Any]) -> str:
    s = result["samples"]
    base = s[MIRRORED]
    lines = [
        "# Fallback latency",
        "",
        f"`{result['command']}` — {result['machine']['date']}, {result['machine']['nproc']} CPUs "
        f"({result['machine']['cpu_model']}), load average {result['machine']['loadavg_at_start'][0]:.1f} at "
        f"the start (the machine is shared: read p99 differences of a few ms as noise), "
        f"revision {result['revision']}.",
        "",
        "Sequential requests on one keep-alive connection over loopback, after a warm-up, interleaved over "
        f"{result['args']['rounds']} rounds; latency from send to the last byte. Capture off, so only the "
        "serving path is measured. *Added* is against the tap with the tenant in mirror (the same tap, "
        "the primary's path), so it is what falling back costs on top of what the tap already costs.",
        "",
        "| case | requests | p50 ms | p90 ms | p99 ms | max ms | added p50 | added p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in (*FAST_CASES, SLOW):
        x = s[case]
        added = "—" if case in (DIRECT, MIRRORED) else f"{x['p50'] - base['p50']:+.2f}"
        added99 = "—" if case in (DIRECT, MIRRORED) else f"{x['p99'] - base['p99']:+.2f}"
        lines.append(
            f"| {case} | {x['n']} | {x['p50']:.2f} | {x['p90']:.2f} | {x['p99']:.2f} | {x['max']:.2f} | "
            f"{added} | {added99} |"
        )
    c = result["counters"]
    p = result["propagation"]
    lines += [
        "",
        "Counted by the taps (healthz): served by the candidate "
        f"{c[SERVED]['served_by_candidate']}; fallbacks {c[REFUSED]['fallbacks']} (refusing candidate), "
        f"{c[FIVE_XX]['fallbacks']} (503 candidate), {c[SLOW]['fallbacks']} (slow candidate).",
        "",
        f"**Mode propagation** — a change written to Redis reaches a tap replica (default "
        f"`cutover.modes_refresh_s` = 0.25 s) in p50 {p['p50']:.0f} ms, p90 {p['p90']:.0f} ms, "
        f"max {p['max']:.0f} ms over {p['n']} changes.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000, help="per case and round")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--slow-requests", type=int, default=20, help="per round, for the slow candidate")
    parser.add_argument("--flips", type=int, default=40, help="mode changes for the propagation figure")
    parser.add_argument("--quick", action="store_true", help="1 round x 200 requests")
    parser.add_argument("--serve-5xx", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_5xx:
        serve_5xx(args.serve_5xx)
        return 0
    if args.quick:
        args.rounds, args.requests, args.warmup, args.slow_requests, args.flips = 1, 200, 20, 5, 10
    command = "python bench/fallback_latency.py" + (" --quick" if args.quick else "")
    prefix = f"bench-fallback-{secrets.token_hex(4)}"
    with workdir() as wd:
        procs = Procs(wd)
        try:
            primary = start_primary(procs, "primary")
            healthy = start_primary(procs, "candidate")
            slow = start_primary(procs, "candidate-slow", "--delay-ms", "2000")
            five = free_port()
            procs.start(
                "candidate-5xx", [PYTHON, str(Path(__file__).resolve()), "--serve-5xx", str(five)], five
            )

            def tap(name: str, candidate: int, **extra: str) -> str:
                env = shadowgate_env(
                    wd,
                    name,
                    prefix,
                    SHADOWGATE_PRIMARY_URL=f"http://127.0.0.1:{primary}",
                    SHADOWGATE_CANDIDATE_URL=f"http://127.0.0.1:{candidate}",
                    SHADOWGATE_CAPTURE="false",
                    SHADOWGATE_CUTOVER__ROLLBACK_MIN_REQUESTS="1000000000",
                    **extra,
                )
                return start_tap(procs, name, env)

            urls = {DIRECT: f"http://127.0.0.1:{primary}{PATH}"}
            urls[MIRRORED] = urls[SERVED] = tap("tap-healthy", healthy)
            urls[REFUSED] = tap("tap-refused", free_port())
            urls[FIVE_XX] = tap("tap-5xx", five)
            urls[SLOW] = tap("tap-slow", slow, SHADOWGATE_CUTOVER__FALLBACK_TIMEOUT_S="0.2")
            result = asyncio.run(run(args, urls, prefix))
        finally:
            procs.stop_all()
            client = redis.Redis.from_url(REDIS_URL)
            delete_keys(client, prefix)
            client.close()
    result.update(
        command=command,
        args=vars(args),
        machine=machine(),
        revision=git_revision(),
        argv=shlex.join(sys.argv),
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fallback_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    text = render(result)
    (RESULTS / "fallback_latency.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
