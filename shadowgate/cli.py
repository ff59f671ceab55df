"""The `shadowgate` console script: one subcommand per job, each builds settings and calls one run()."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from shadowgate.settings import ConfigError, Settings, hash_api_key, load_settings

USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadowgate",
        description="Mirror production inference traffic to a candidate server and compare the answers.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML settings file (default: $SHADOWGATE_CONFIG or ./shadowgate.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tap = sub.add_parser("tap", help="serve production through the tap, capturing exchanges")
    tap.add_argument("--host", default="127.0.0.1")
    tap.add_argument("--port", type=int, default=8080)
    tap.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    tap.add_argument("--no-capture", action="store_true", help="forward only (for comparison runs)")
    tap.add_argument(
        "--with-dispatch",
        action="store_true",
        help="also dispatch captures to the candidate in this process (own connection pool)",
    )

    dis = sub.add_parser("dispatch", help="send captures to the candidate and write the pairs")
    dis.add_argument("--burst", action="store_true", help="exit once nothing is pending")
    dis.add_argument("--check", action="store_true", help="exit 0 if a dispatcher is alive, else 1")

    sim = sub.add_parser("simulate", help="run the OpenAI-compatible simulator of primary or candidate")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=4000)
    sim.add_argument("--role", choices=("primary", "candidate"), default="primary")
    sim.add_argument("--profile", type=Path, help="TOML profile: latency, errors, drift per tenant")
    sim.add_argument("--seed", type=int, default=7)

    red = sub.add_parser("redis", help="run the embedded Redis-compatible server in the foreground")
    red.add_argument("--host", default="127.0.0.1")
    red.add_argument("--port", type=int, default=None, help="default: a free port")

    rep = sub.add_parser("replay", help="send captures from the stream to the candidate again")
    rep.add_argument("--tenant", action="append", default=[], help="only this tenant (repeatable)")
    rep.add_argument("--route", action="append", default=[], help="only this route kind (repeatable)")
    rep.add_argument("--since", help="start of the window: ISO 8601 (UTC) or an age like 15m, 2h")
    rep.add_argument("--until", help="end of the window, as --since")
    rep.add_argument("--target", help="base URL to replay to (default: the candidate)")
    pace = rep.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="multiple of the original pace")
    pace.add_argument("--rate", type=float, help="a fixed rate, requests per second")
    rep.add_argument("--loop", type=int, default=1, help="replay the window this many times")
    rep.add_argument("--dry-run", action="store_true", help="count what would be sent")
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")

    wrk = sub.add_parser("worker", help="score pairs and write them to the store")
    wrk.add_argument("--burst", action="store_true", help="exit once nothing is pending")
    wrk.add_argument("--check", action="store_true", help="exit 0 if a worker is alive, else 1")

    exp = sub.add_parser("export", help="write scored pairs as JSON lines or CSV")
    exp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    exp.add_argument("--output", type=Path, help="file to write (default: standard output)")
    exp.add_argument("--tenant", help="only this tenant")
    exp.add_argument("--route", help="only this route kind")
    exp.add_argument("--since", help="start of the window: ISO 8601 (UTC) or an age like 15m, 2h")
    exp.add_argument("--until", help="end of the window, as --since")
    exp.add_argument("--replay", help="a replay run id instead of live traffic ('*': all runs)")

    gat = sub.add_parser("gate", help="judge every tenant x route: GO, HOLD, NO-GO or INSUFFICIENT DATA")
    gat.add_argument("--tenant", help="only this tenant")
    gat.add_argument("--route", help="only this route kind")
    gat.add_argument("--policy", type=Path, help="policy TOML (default: the migration plan's limits)")
    gat.add_argument("--json", action="store_true", help="verdicts as JSON")

    dec = sub.add_parser("decide", help="record a person's approve or hold on a tenant x route")
    dec.add_argument("decision", choices=("approve", "hold"))
    dec.add_argument("--tenant", required=True)
    dec.add_argument("--route", required=True)
    dec.add_argument("--by", required=True, help="who decides (their sign-in name)")
    dec.add_argument("--reason", required=True, help="why, in a sentence")

    adm = sub.add_parser("admin", help="serve the verdicts over HTTP (needs SHADOWGATE_ADMIN_TOKEN)")
    adm.add_argument("--host", default="127.0.0.1")
    adm.add_argument("--port", type=int, default=8090)
    adm.add_argument("--policy", type=Path, help="policy TOML (default: the migration plan's limits)")

    aud = sub.add_parser("audit", help="the hash-chained audit log")
    aud_sub = aud.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    aud_sub.add_parser("verify", help="exit 0 on an intact chain, 1 naming the first bad entry")
    aud_exp = aud_sub.add_parser("export", help="write every entry with its hashes, for an auditor")
    aud_exp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    aud_exp.add_argument("--output", type=Path, help="file to write (default: standard output)")

    rev = sub.add_parser("review", help="a clinician's marks on critical clinical flags: queue, mark")
    rev_sub = rev.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    rev_queue = rev_sub.add_parser("queue", help="live flagged pairs nobody has reviewed, oldest first")
    rev_queue.add_argument("--tenant")
    rev_queue.add_argument("--route")
    rev_sub.add_parser(
        "export", help="reviewed pairs as clinical-corpus JSON lines: false alarms become tests"
    )
    rev_mark = rev_sub.add_parser("mark", help="mark one flagged pair a real difference or a false alarm")
    rev_mark.add_argument("pair", help="the pair's key (from the queue, the board or the Pair page)")
    rev_mark.add_argument("mark", choices=("real", "false-alarm"))
    rev_mark.add_argument("--by", required=True, help="who reviews (their sign-in name)")
    rev_mark.add_argument("--note", required=True, help="why, in a sentence (no patient data: it is audited)")

    cut = sub.add_parser("cutover", help="serve a tenant from the candidate (needs a GO verdict, or --force)")
    cut.add_argument("tenant")
    cut.add_argument("--route", help="one route kind (default: every route the tenant has a verdict for)")
    cut.add_argument("--by", required=True, help="who decides (their sign-in name)")
    cut.add_argument("--reason", default="", help="why (required with --force)")
    cut.add_argument("--force", action="store_true", help="without a current GO verdict (needs --reason)")
    cut.add_argument("--json", action="store_true", help="the changes as JSON")
    rol = sub.add_parser("rollback", help="send a tenant (or one route of it) back to mirror")
    rol.add_argument("tenant")
    rol.add_argument("--route", help="one route kind (default: every route of the tenant in cutover)")
    rol.add_argument("--by", required=True, help="who decides")
    rol.add_argument("--reason", required=True, help="why, in a sentence")
    rol.add_argument("--json", action="store_true", help="the changes as JSON")
    mod = sub.add_parser("modes", help="which tenant x routes are in cutover, and the kill switch")
    mod.add_argument("--json", action="store_true", help="as JSON")
    kil = sub.add_parser("kill-switch", help="all traffic to the primary: no mirroring, no cutover")
    kil.add_argument("state", choices=("on", "off", "status"))
    kil.add_argument("--by", default="", help="who (required for on/off)")
    kil.add_argument("--reason", default="", help="why (required for on/off)")
    kil.add_argument("--json", action="store_true", help="status as JSON")

    demo = sub.add_parser("demo", help="the whole pipeline on embedded defaults, planted clinics, verdicts")
    demo.add_argument("--seconds", type=float, default=60.0, help="traffic time (default 60; 20+ decides)")
    demo.add_argument("--json", action="store_true", help="print the summary and the verdicts as JSON")

    sub.add_parser("keygen", help="print a new random encryption key (base64), for encryption.keys")
    pur = sub.add_parser("purge", help="delete clinical payloads older than the retention; metrics stay")
    pur.add_argument(
        "--older-than", help="an age like 30d, or an ISO 8601 moment (default: retention_days ago)"
    )

    dash = sub.add_parser("dashboard", help="serve the cutover board (Streamlit) on these settings")
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8501)
    dash.add_argument(
        "--hash-password", action="store_true", help="print a password's hash (stdin), for dashboard.users"
    )

    key = sub.add_parser("hash-key", help="print the SHA-256 of an API key, for tenants.api_key_sha256")
    key.add_argument("key", nargs="?", help="the key (default: read one line from stdin)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"shadowgate: {exc}", file=sys.stderr)
        return USAGE_ERROR

    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`shadowgate export | head`): stop quietly with SIGPIPE's status, as Unix
        # tools do. Standard output now leads nowhere, so the flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _dispatch(args: argparse.Namespace) -> int:
    from shadowgate.logs import setup_logging

    if args.command == "hash-key":
        key = args.key if args.key is not None else sys.stdin.readline().strip()
        print(hash_api_key(key))
        return 0

    if args.command == "keygen":
        from shadowgate.crypto import generate_key

        print(generate_key())
        return 0

    if args.command == "dashboard" and args.hash_password:
        from dashboard.serve import hash_password_main

        return hash_password_main()

    settings = load_settings(args.config)
    setup_logging(settings.log_level)

    if args.command == "purge":
        from shadowgate.retention import run as run_purge

        with _redis_for(settings) as resolved:
            return run_purge(resolved, older_than=args.older_than)

    if args.command == "tap":
        from mirror.serve import run_tap

        if args.no_capture:
            settings = settings.model_copy(update={"capture": False})
            if args.with_dispatch:
                raise ConfigError("--with-dispatch needs capture; drop --no-capture")
            return run_tap(settings, args.host, args.port, workers=args.workers)
        with _redis_for(settings) as resolved:
            return run_tap(
                resolved, args.host, args.port, workers=args.workers, with_dispatch=args.with_dispatch
            )

    if args.command == "dispatch":
        from mirror.dispatch import check_main
        from mirror.dispatch import run as run_dispatch

        with _redis_for(settings) as resolved:
            if args.check:
                return check_main(resolved)
            return run_dispatch(resolved, burst=args.burst)

    if args.command == "simulate":
        from simulator.profile import load_profile
        from simulator.server import run as run_simulator

        run_simulator(args.host, args.port, load_profile(args.profile, role=args.role, seed=args.seed))
        return 0

    if args.command == "redis":
        from shadowgate.embedded_redis import main_foreground

        return main_foreground(settings.data_dir, args.host, args.port)

    if args.command == "replay":
        from mirror.replay import run as run_replay

        with _redis_for(settings) as resolved:
            return run_replay(
                resolved,
                tenants=args.tenant,
                routes=args.route,
                since=args.since,
                until=args.until,
                target=args.target,
                speed=args.speed,
                rate=args.rate,
                loops=args.loop,
                dry_run=args.dry_run,
                as_json=args.json,
            )

    if args.command == "worker":
        from comparators.worker import check_main as check_worker
        from comparators.worker import run as run_worker

        with _redis_for(settings) as resolved:
            if args.check:
                return check_worker(resolved)
            return run_worker(resolved, burst=args.burst)

    if args.command == "export":
        from store.commands import export_main as run_export

        return run_export(
            settings,
            fmt=args.format,
            output=args.output,
            tenant=args.tenant,
            route=args.route,
            since=args.since,
            until=args.until,
            replay=args.replay,
        )

    if args.command == "gate":
        from gate.run import run as run_gate

        return run_gate(
            settings, policy_path=args.policy, tenant=args.tenant, route=args.route, as_json=args.json
        )

    if args.command == "decide":
        from gate.run import decide_main

        return decide_main(
            settings,
            tenant=args.tenant,
            route=args.route,
            decision=args.decision,
            by=args.by,
            reason=args.reason,
        )

    if args.command == "admin":
        from gate.http import run as run_admin

        return run_admin(settings, host=args.host, port=args.port, policy_path=args.policy)

    if args.command == "audit":
        from store.commands import audit_main as run_audit

        return run_audit(
            settings,
            args.audit_command,
            fmt=getattr(args, "format", "jsonl"),
            output=getattr(args, "output", None),
        )

    if args.command == "review":
        from store.commands import review_main

        return review_main(
            settings,
            args.review_command,
            tenant=getattr(args, "tenant", None),
            route=getattr(args, "route", None),
            pair=getattr(args, "pair", None),
            mark=getattr(args, "mark", None),
            by=getattr(args, "by", ""),
            note=getattr(args, "note", ""),
        )

    if args.command in ("cutover", "rollback", "modes", "kill-switch"):
        from gate.cutover import command_main

        with _redis_for(settings) as resolved:
            return command_main(
                resolved,
                args.command,
                tenant=getattr(args, "tenant", None),
                route=getattr(args, "route", None),
                by=getattr(args, "by", ""),
                reason=getattr(args, "reason", ""),
                force=getattr(args, "force", False),
                as_json=args.json,
                switch=getattr(args, "state", None),
            )

    if args.command == "dashboard":
        import os

        from dashboard.serve import run as run_dashboard

        return run_dashboard(config=args.config, host=args.host, port=args.port, environ=os.environ)

    if args.command == "demo":
        from shadowgate.demo import run as run_demo

        return run_demo(settings, seconds=args.seconds, as_json=args.json, config=args.config)

    raise AssertionError(args.command)  # argparse only lets the commands above through


@contextlib.contextmanager
def _redis_for(settings: Settings) -> Iterator[Settings]:
    """Settings with a Redis URL: the configured one, else the embedded server another shadowgate
    process runs for this data folder, else an embedded server started for this run."""
    if settings.redis_url:
        yield settings
        return
    from shadowgate.embedded_redis import EmbeddedRedis, EmbeddedRedisError, running_url

    shared = running_url(settings.data_dir)
    if shared is not None:
        print(f"shadowgate: using the embedded Redis at {shared}", file=sys.stderr)
        yield settings.model_copy(update={"redis_url": shared})
        return

    server = EmbeddedRedis(settings.data_dir)
    try:
        server.start()
    except EmbeddedRedisError as exc:
        raise ConfigError(f"could not start the embedded Redis: {exc}") from exc
    try:
        print(
            f"shadowgate: no SHADOWGATE_REDIS_URL set, using embedded Redis at {server.url}",
            file=sys.stderr,
        )
        yield settings.model_copy(update={"redis_url": server.url})
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
