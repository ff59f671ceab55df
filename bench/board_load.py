"""How long the dashboard's board takes to load with 1,000,000 scored pairs in PostgreSQL.

Fills a database of its own (`shadowgate_bench`, created anew and dropped at the end; --keep leaves it for
the next --keep run, which then skips the fill) with N scored
pairs over the last 24 hours (the board's whole window: the worst case), 10 tenants x 6 routes, and a week
of hourly verdicts per tenant x route (with bodies the real judge wrote), then times:

- the board's data, uncached: `dashboard.data.load_board` on a fresh engine (cold: first call, new pool),
  then again (what every refresh after the cache's TTL costs);
- the board's data through Streamlit's cache (`dashboard.data.board`): the first call, then a hit;
- the Board page itself, headless (`streamlit.testing.v1.AppTest`): first run and later runs, the whole
  script (settings, sign-in box, grid, drill-down) — what a person waits for, minus the browser.

    python bench/board_load.py [--pairs 1000000] [--keep] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gate.judge import judge  # noqa: E402
from gate.policy import RoutePolicy  # noqa: E402
from gate.samples import Samples  # noqa: E402
from store.db import init_db, make_engine  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB = "shadowgate_bench"
TENANTS = [f"klinik-{i:02d}" for i in range(10)]
ROUTES = ["audio", "chat", "reason", "vision", "embed", "rerank"]
TARGET_S = 2.0

FILL_PAIRS = """
INSERT INTO pairs (key, exchange_id, tenant, route, replay, captured_at, paired_at, scored_at,
    primary_status, primary_total_ms, primary_ttfb_ms, primary_model,
    candidate_status, candidate_error, candidate_total_ms, candidate_ttfb_ms, candidate_model,
    candidate_model_version, candidate_gpu, has_secondary)
SELECT lpad(g::text, 13, '0') || '-0', 'ex-' || g,
    'klinik-' || lpad((g % 10)::text, 2, '0'),
    (ARRAY['audio', 'chat', 'reason', 'vision', 'embed', 'rerank'])[1 + (g / 10) % 6],
    NULL, c, c + interval '1 second', c + interval '2 seconds',
    200, 150 + random() * 900, 60 + random() * 200, 'gpt-4o',
    CASE WHEN g % 97 = 0 THEN 503 ELSE 200 END, CASE WHEN g % 193 = 0 THEN 'timeout' END,
    170 + random() * 1100, 70 + random() * 250, 'llama-3.1-70b', 'v1', 'gpu-' || (g % 4),
    false
FROM (SELECT g, :now - (g::float / :n) * interval '23 hours 59 minutes' AS c
      FROM generate_series(1, :n) AS g) AS s
"""
FILL_SCORES = """
INSERT INTO scores (pair_key, role, tenant, route, captured_at, replay, status_match, latency_delta_ms,
    latency_ratio, semantic_similarity, rouge_l_f1, fact_mismatches, facts_primary, negation_flips,
    clinical_ok, wer, cer, embed_rank_correlation, rerank_kendall_tau, rerank_top1_match)
SELECT key, 'candidate', tenant, route, captured_at, NULL, 1.0,
    candidate_total_ms - primary_total_ms, candidate_total_ms / primary_total_ms,
    CASE WHEN route IN ('chat', 'reason', 'vision') THEN 0.8 + random() * 0.2 END,
    CASE WHEN route IN ('chat', 'reason', 'vision') THEN 0.4 + random() * 0.5 END,
    CASE WHEN route IN ('chat', 'reason', 'vision', 'audio') THEN (random() < 0.01)::int END,
    CASE WHEN route IN ('chat', 'reason', 'vision', 'audio') THEN 6 END,
    CASE WHEN route IN ('chat', 'reason', 'vision', 'audio') THEN 0 END,
    CASE WHEN route IN ('chat', 'reason', 'vision', 'audio') THEN (random() >= 0.01)::int END,
    CASE WHEN route = 'audio' THEN random() * 0.2 END,
    CASE WHEN route = 'audio' THEN random() * 0.12 END,
    CASE WHEN route = 'embed' THEN 0.9 + random() * 0.1 END,
    CASE WHEN route = 'rerank' THEN 0.6 + random() * 0.4 END,
    CASE WHEN route = 'rerank' THEN (random() < 0.9)::int END
FROM pairs
"""


def bench_url() -> str:
    return make_url(ADMIN_URL).set(database=DB).render_as_string(hide_password=False)


def recreate(*, create: bool = True) -> None:
    admin = make_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{DB}"'))
    admin.dispose()


def filled_before() -> bool:
    admin = make_engine(ADMIN_URL)
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :db"), {"db": DB}).first()
    admin.dispose()
    return found is not None


def verdict_body(tenant: str, route: str, status: str, rng_seed: int) -> dict[str, Any]:
    """A verdict as the real judge writes it (reasons, every metric, worst pairs), relabelled."""
    import random

    rng = random.Random(rng_seed)
    n = 400
    keys = [f"{rng_seed:07d}{i:06d}-0" for i in range(n)]
    samples = Samples(
        tenant=tenant,
        route=route if route in ROUTES else "chat",
        keys=keys,
        primary_ms=[rng.uniform(150, 1000) for _ in keys],
        candidate_ms=[rng.uniform(170, 1300) for _ in keys],
        candidate_failed=[rng.random() < 0.01 for _ in keys],
        primary_failed=[False for _ in keys],
        metrics={
            "semantic_similarity": [rng.uniform(0.8, 1.0) for _ in keys],
            "rouge_l_f1": [rng.uniform(0.4, 0.9) for _ in keys],
            "clinical_ok": [float(rng.random() >= 0.01) for _ in keys],
            "wer": [rng.uniform(0, 0.2) for _ in keys],
            "cer": [rng.uniform(0, 0.12) for _ in keys],
            "embed_rank_correlation": [rng.uniform(0.9, 1.0) for _ in keys],
            "rerank_top1_match": [float(rng.random() < 0.9) for _ in keys],
        },
        noise={},
        unscored=0,
        looks=0,
    )
    body = judge(samples, RoutePolicy()).to_dict()
    body["status"] = status
    return body


def fill(engine: Engine, n: int, now: datetime) -> dict[str, float]:
    took: dict[str, float] = {}
    with engine.begin() as conn:
        t = time.perf_counter()
        conn.execute(text(FILL_PAIRS), {"now": now, "n": n})
        took["pairs"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute(text(FILL_SCORES))
        took["scores"] = time.perf_counter() - t
    statuses = ["GO", "HOLD", "NO_GO", "INSUFFICIENT_DATA"]
    rows = []
    t = time.perf_counter()
    bodies = {
        (tenant, route): verdict_body(tenant, route, "GO", i)
        for i, (tenant, route) in enumerate((t_, r) for t_ in TENANTS for r in ROUTES)
    }
    for hour in range(7 * 24, -1, -1):
        at = now - timedelta(hours=hour)
        for i, (tenant, route) in enumerate(bodies):
            status = statuses[(i + hour // 24) % 4]
            body = {**bodies[(tenant, route)], "status": status}
            rows.append(
                {
                    "at": at,
                    "tenant": tenant,
                    "route": route,
                    "status": status,
                    "policy_version": "bench",
                    "look": 7 * 24 - hour + 1,
                    "n": body["n"],
                    "body": json.dumps(body, sort_keys=True),
                }
            )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO verdicts (at, tenant, route, status, policy_version, look, n, body) "
                "VALUES (:at, :tenant, :route, :status, :policy_version, :look, :n, :body)"
            ),
            rows,
        )
    took["verdicts"] = time.perf_counter() - t
    took["verdict_rows"] = len(rows)
    vacuum = make_engine(bench_url(), isolation_level="AUTOCOMMIT")
    with vacuum.connect() as conn:
        t = time.perf_counter()
        conn.execute(text("VACUUM ANALYZE"))
        took["vacuum_analyze"] = time.perf_counter() - t
    vacuum.dispose()
    return took


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())  # noqa: S608 (fixed names)
            for t in ("pairs", "scores", "verdicts")
        }


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def measure(rounds: int) -> dict[str, Any]:
    os.environ.pop("SHADOWGATE_CONFIG", None)
    for name in [k for k in os.environ if k.startswith("SHADOWGATE_")]:
        del os.environ[name]
    os.environ["SHADOWGATE_DB_URL"] = bench_url()
    from streamlit.testing.v1 import AppTest

    from dashboard import data

    out: dict[str, Any] = {}
    engine = make_engine(bench_url())
    out["uncached_cold_s"], board = timed(data.load_board, engine)
    out["uncached_s"] = [timed(data.load_board, engine)[0] for _ in range(rounds)]
    # For comparison, the Tenant page's data for one tenant x route's day (~1/60 of the pairs).
    out["route_detail_s"] = [
        timed(data.load_route_detail, engine, "klinik-03", "chat", "last 24 hours")[0] for _ in range(rounds)
    ]
    engine.dispose()
    out["cells"] = len(board.cells)
    out["statuses"] = board.counts()
    out["cached_first_s"], _ = timed(data.board, bench_url(), ())
    out["cached_hit_s"] = [timed(data.board, bench_url(), ())[0] for _ in range(rounds)]
    data.forget()

    app = ROOT / "dashboard" / "app.py"
    page_runs = []
    for i in range(rounds + 1):
        if i:
            data.forget()  # every run pays for the queries, as after the cache's TTL
        at = AppTest.from_file(str(app), default_timeout=60)
        t = time.perf_counter()
        at.run()
        page_runs.append(time.perf_counter() - t)
        assert not at.exception, at.exception
        shown = "\n".join(m.value for m in at.markdown)
        assert "pairs judged" in shown
    out["page_first_s"] = page_runs[0]
    out["page_uncached_s"] = page_runs[1:]
    at = AppTest.from_file(str(app), default_timeout=60)
    at.run()
    t = time.perf_counter()
    at.run()
    out["page_cache_hit_s"] = time.perf_counter() - t
    return out


def explain(engine: Engine, now: datetime) -> str:
    """The plan of the board's heaviest query (pairs per tenant x route over 24 h), for the report."""
    from sqlalchemy import func, select
    from sqlalchemy.dialects import postgresql

    from store.models import PAIRS
    from store.queries import failed_side, window_filters

    groups = [PAIRS.c.tenant, PAIRS.c.route]
    stmt = (
        select(
            *groups,
            func.count(),
            func.count().filter(failed_side("candidate")),
            func.max(PAIRS.c.captured_at),
        )
        .where(
            *window_filters(
                PAIRS, tenant=None, route=None, since=now - timedelta(hours=24), until=None, replay=None
            )
        )
        .group_by(*groups)
    )
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        rows = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) " + sql)).all()
    return "\n".join(r[0] for r in rows)


def machine() -> str:
    cpus = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return (
        f"{cpus} CPUs, Linux {platform.release()}, load average at start {load} (the machine is shared); "
        f"shadowgate at {commit.stdout.strip()} with uncommitted changes"
    )


def report(
    args: argparse.Namespace,
    r: dict[str, Any],
    sizes: dict[str, int],
    fill_s: dict[str, float] | None,
    plan: str,
    pg: str,
    started: str,
    env: str,
) -> str:
    from dashboard.data import TTL_S

    med = statistics.median
    worst = max(r["uncached_cold_s"], *r["uncached_s"], r["page_first_s"], *r["page_uncached_s"])
    verdict = "**PASS**" if worst < TARGET_S else "**MISSED**"
    lines = [
        f"# Board load: the cutover board with {sizes['pairs']:,} scored pairs in PostgreSQL",
        "",
        f"- Date: {started}",
        f"- Machine: {env}. PostgreSQL {pg} on the same machine (Debian's, default settings).",
        f"- Command: `{command(args)}`",
        f"- Store: {sizes['pairs']:,} pairs, {sizes['scores']:,} score rows, {sizes['verdicts']:,} verdicts "
        "(10 tenants x 6 routes, hourly for a week, bodies written by the real judge); every pair "
        "captured in the last 24 hours, so the board's 24-hour count reads all of them (the worst case).",
    ]
    if fill_s:
        lines.append(
            f"- Fill: pairs {fill_s['pairs']:.1f} s, scores {fill_s['scores']:.1f} s (INSERT ... SELECT "
            f"generate_series), verdicts {fill_s['verdicts']:.1f} s, "
            f"VACUUM ANALYZE {fill_s['vacuum_analyze']:.1f} s."
        )
    lines += [
        "",
        f"## Target: the board loads in under {TARGET_S:.0f} s — {verdict} (slowest measured: {worst:.3f} s)",
        "",
        "| what | seconds |",
        "|---|---:|",
        f"| board data, uncached, fresh engine (first query, new connection) | {r['uncached_cold_s']:.3f} |",
        f"| board data, uncached (median of {args.rounds}; every refresh after the cache's {TTL_S} s TTL) "
        f"| {med(r['uncached_s']):.3f} |",
        f"| board data through Streamlit's cache, first call | {r['cached_first_s']:.3f} |",
        f"| board data, cache hit (median of {args.rounds}) | {med(r['cached_hit_s']):.4f} |",
        "| Board page, headless AppTest, first run (imports, settings, grid, drill-down) "
        f"| {r['page_first_s']:.3f} |",
        f"| Board page, headless AppTest, cache cleared (median of {args.rounds}) "
        f"| {med(r['page_uncached_s']):.3f} |",
        f"| Board page, headless AppTest, cache hit | {r['page_cache_hit_s']:.3f} |",
        f"| *for comparison:* Tenant page data of one tenant x route over 24 h, uncached (median of "
        f"{args.rounds}) | {med(r['route_detail_s']):.3f} |",
        "",
        f"The board showed {r['cells']} tenant x route cells: {r['statuses']}.",
        "",
        "What the board asks the database (dashboard/data.py `load_board`): the latest verdict per "
        "tenant x route (`store.verdicts.latest`), the latest one a day ago "
        "(`store.verdicts.latest(as_of=...)`), and pairs and candidate failures per tenant x route over 24 "
        "hours (`store.queries.pair_volumes`). The last is the heavy one; its plan:",
        "",
        "```",
        plan,
        "```",
    ]
    return "\n".join(lines) + "\n"


def command(args: argparse.Namespace) -> str:
    parts = ["python bench/board_load.py"]
    if args.pairs != 1_000_000:
        parts.append(f"--pairs {args.pairs}")
    if args.keep:
        parts.append("--keep")
    parts.append(f"--rounds {args.rounds}")
    return " ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument(
        "--keep", action="store_true", help="leave the database for the next run, and reuse one left before"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "board_load.md")
    args = parser.parse_args()
    started = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    env = machine()
    now = datetime.now(UTC)
    fill_s = None
    reuse = args.keep and filled_before()
    if not reuse:
        recreate()
    engine = make_engine(bench_url())
    init_db(engine)
    if not reuse:
        print(f"filling {args.pairs:,} pairs ...", file=sys.stderr)
        fill_s = fill(engine, args.pairs, now)
        print(f"filled: {fill_s}", file=sys.stderr)
    sizes = counts(engine)
    with engine.connect() as conn:
        pg = str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]
    plan = explain(engine, now)
    engine.dispose()
    r = measure(args.rounds)
    if not args.keep:
        recreate(create=False)
    md = report(args, r, sizes, fill_s, plan, pg, started, env)
    args.output.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
