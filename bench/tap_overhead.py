"""What the tap adds: latency at a fixed rate and throughput at saturation, against direct and nginx mirror.

Runs, side by side and interleaved over several rounds: the primary directly; the tap with capture off;
the tap with capture on (the machine's Redis); nginx's mirror module; the tap with capture on while Redis
is down; and, at saturation, the tap with two workers. Writes bench/results/tap_overhead.{md,json}.

    python bench/tap_overhead.py              # 3 rounds, 1000 req/s for 10 s, wrk for 8 s (about 6 min)
    python bench/tap_overhead.py --quick      # 1 round, shorter runs: a smoke test of the whole thing
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from report import TARGETS, render_markdown  # bench/ is on sys.path when this runs as a script

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PATH = "/v1/chat/completions"
REDIS_URL = "redis://127.0.0.1:6379"

DIRECT, TAP_OFF, TAP_ON, NGINX, REDIS_DOWN, TAP_ON_W2 = (
    "direct",
    "tap-no-capture",
    "tap-capture",
    "nginx-mirror",
    "tap-capture-redis-down",
    "tap-capture-2-workers",
)
OPEN_LOOP = (DIRECT, TAP_OFF, TAP_ON, NGINX, REDIS_DOWN)
SATURATION = (DIRECT, TAP_OFF, TAP_ON, NGINX, REDIS_DOWN, TAP_ON_W2)


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Servers:
    """Every process the benchmark starts, each in its own session so one killpg stops it and its workers."""

    workdir: Path
    running: list[Server] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], port: int, env: dict[str, str] | None = None) -> Server:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=self.workdir,  # no stray shadowgate.toml in the caller's directory gets picked up
                start_new_session=True,
            )
        server = Server(name, port, proc, log)
        self.running.append(server)
        _wait_for_port(server)
        return server

    def stop_all(self) -> None:
        for server in self.running:
            _signal_group(server.proc, signal.SIGTERM)
        deadline = time.monotonic() + 8.0
        for server in self.running:
            try:
                server.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(server.proc, signal.SIGKILL)
                server.proc.wait(5.0)
        # A tap's spawned workers share its process group; make sure none outlives its parent.
        for server in self.running:
            _signal_group(server.proc, signal.SIGKILL)
        self.running.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _wait_for_port(server: Server, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}: {_tail(server.log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not listen on port {server.port} within {timeout_s:.0f} s")


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick); also the 'Redis is down' address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310  (a loopback http URL we built)
        return dict(json.loads(resp.read()))


# --- starting the servers ---------------------------------------------------------------------------


def start_all(servers: Servers, prefix: str, python: str) -> dict[str, str]:
    """Start every server; returns the URL the load goes to, per configuration."""
    primary_port = free_port()
    servers.start("primary", [python, str(BENCH / "primary.py"), "--port", str(primary_port)], primary_port)
    urls = {DIRECT: f"http://127.0.0.1:{primary_port}{PATH}"}

    def tap(name: str, redis_url: str, stream_prefix: str, *flags: str) -> str:
        port = free_port()
        env = {
            "SHADOWGATE_PRIMARY_URL": f"http://127.0.0.1:{primary_port}",
            "SHADOWGATE_REDIS_URL": redis_url,
            "SHADOWGATE_STREAM_PREFIX": stream_prefix,
            "SHADOWGATE_LOG_LEVEL": "WARNING",
            "SHADOWGATE_DATA_DIR": str(servers.workdir / name),
            "SHADOWGATE_SHUTDOWN_GRACE_S": "2",
            "PYTHONPATH": str(ROOT),
        }
        cmd = [python, "-m", "shadowgate.cli", "tap", "--host", "127.0.0.1", "--port", str(port), *flags]
        servers.start(name, cmd, port, env)
        return f"http://127.0.0.1:{port}{PATH}"

    urls[TAP_OFF] = tap(TAP_OFF, REDIS_URL, prefix, "--no-capture")
    urls[TAP_ON] = tap(TAP_ON, REDIS_URL, prefix)
    urls[REDIS_DOWN] = tap(REDIS_DOWN, f"redis://127.0.0.1:{free_port()}", f"{prefix}-down")
    urls[TAP_ON_W2] = tap(TAP_ON_W2, REDIS_URL, f"{prefix}-w2", "--workers", "2")

    sink_port = free_port()
    servers.start("sink", [python, str(BENCH / "primary.py"), "--sink", "--port", str(sink_port)], sink_port)
    urls[NGINX] = start_nginx(servers, primary_port, sink_port)
    return urls


def start_nginx(servers: Servers, primary_port: int, sink_port: int) -> str:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf_dir = servers.workdir / "nginx"
    conf_dir.mkdir()
    port = free_port()
    conf = (BENCH / "nginx.conf.tmpl").read_text()
    for marker, value in {
        "@DIR@": str(conf_dir),
        "@PORT@": str(port),
        "@PRIMARY_PORT@": str(primary_port),
        "@SINK_PORT@": str(sink_port),
    }.items():
        conf = conf.replace(marker, value)
    (conf_dir / "nginx.conf").write_text(conf)
    # nginx's workers drop to 'nobody' when started as root; let them reach their temp directories.
    for path in (servers.workdir, conf_dir):
        path.chmod(0o755)
    servers.start("nginx", [nginx, "-p", str(conf_dir), "-c", "nginx.conf", "-g", "daemon off;"], port)
    return f"http://127.0.0.1:{port}{PATH}"


# --- load ---------------------------------------------------------------------------------------------


def open_loop(url: str, args: argparse.Namespace, python: str) -> dict[str, Any]:
    cmd = [
        python,
        str(BENCH / "openloop.py"),
        url,
        f"--rate={args.rate}",
        f"--seconds={args.seconds}",
        f"--warmup={args.warmup}",
        f"--connections={args.connections}",
    ]
    cmd += [f"--cpu={cpu}" for cpu in args.pin_load or ()]
    done = subprocess.run(cmd, capture_output=True, timeout=args.seconds + args.warmup + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return dict(json.loads(done.stdout))


_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(\w+),")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_PCT = re.compile(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> dict[str, Any]:
    rate = _WRK_RATE.search(text)
    total = _WRK_TOTAL.search(text)
    if rate is None or total is None:
        raise RuntimeError(f"could not read wrk's output:\n{text}")
    non2xx = _WRK_NON2XX.search(text)
    sock = _WRK_SOCKET.search(text)
    return {
        "rps": float(rate.group(1)),
        "requests": int(total.group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in sock.groups()) if sock else 0,
        "latency_ms": {f"p{p}": float(v) * _UNIT_MS[u] for p, v, u in _WRK_PCT.findall(text)},
    }


def saturate(url: str, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{args.wrk_connections}", f"-d{seconds:g}s", "--latency"]
    cmd += ["-s", str(BENCH / "post.lua"), url]
    if args.pin_load:
        cmd = ["taskset", "-c", ",".join(map(str, args.pin_load)), *cmd]
    env = {**os.environ, "BENCH_BODY_FILE": str(BENCH / "request.json")}
    done = subprocess.run(cmd, capture_output=True, env=env, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return parse_wrk(done.stdout.decode())


def wait_capture_drained(urls: dict[str, str], timeout_s: float = 15.0) -> None:
    """Let the capture writers finish a backlog before the next run, so it doesn't steal that run's CPU."""
    deadline = time.monotonic() + timeout_s
    for name in (TAP_ON, TAP_ON_W2):
        health = _health_url(urls[name])
        # With two workers each GET may reach either; a few fresh connections sample both.
        clear = 0
        while clear < 3 and time.monotonic() < deadline:
            queue = _get_json(health).get("capture", {}).get("queue", 0)
            clear = clear + 1 if queue == 0 else 0
            if queue:
                time.sleep(0.1)


def _health_url(url: str) -> str:
    return url.replace(PATH, "/_shadowgate/healthz")


# --- the run --------------------------------------------------------------------------------------------


def run_rounds(urls: dict[str, str], args: argparse.Namespace, python: str) -> dict[str, Any]:
    raw: dict[str, Any] = {"open_loop": {c: [] for c in OPEN_LOOP}, "saturation": {c: [] for c in SATURATION}}
    for config in SATURATION:  # connections, pools and code paths warm before anything is measured
        saturate(urls[config], 1, args)
    wait_capture_drained(urls)
    for round_no in range(1, args.rounds + 1):
        for config in OPEN_LOOP:
            result = open_loop(urls[config], args, python)
            raw["open_loop"][config].append(result)
            lat = result["latency_ms"]
            _say(
                f"round {round_no} open  {config:<24} p50 {lat['p50']:6.3f} p99 {lat['p99']:6.3f} ms"
                f"  {result['achieved_rate']:7.1f} req/s  errors {result['error_count']}"
            )
            wait_capture_drained(urls)
        for config in SATURATION:
            result = saturate(urls[config], args.wrk_seconds, args)
            raw["saturation"][config].append(result)
            _say(f"round {round_no} sat   {config:<24} {result['rps']:8.0f} req/s")
            wait_capture_drained(urls)
    return raw


def _say(line: str) -> None:
    print(line, flush=True)


def medians(raw: dict[str, Any]) -> dict[str, Any]:
    """Median over rounds per configuration; 'added' is the median of per-round paired differences."""
    out: dict[str, Any] = {"open_loop": {}, "saturation": {}}
    direct = raw["open_loop"][DIRECT]
    for config, runs in raw["open_loop"].items():
        row: dict[str, float] = {}
        for kind in ("latency_ms", "service_ms"):
            for pct in ("p50", "p90", "p99", "p99.9", "max"):
                row[f"{kind}.{pct}"] = statistics.median(r[kind][pct] for r in runs)
            for pct in ("p50", "p99"):
                diffs = [r[kind][pct] - d[kind][pct] for r, d in zip(runs, direct, strict=True)]
                row[f"{kind}.added_{pct}"] = statistics.median(diffs)
        row["achieved_rate"] = statistics.median(r["achieved_rate"] for r in runs)
        row["errors"] = sum(r["error_count"] for r in runs)
        row["send_lag_ms.p99"] = statistics.median(r["send_lag_ms"]["p99"] for r in runs)
        out["open_loop"][config] = row
    off = raw["saturation"][TAP_OFF]
    for config, runs in raw["saturation"].items():
        out["saturation"][config] = {
            "rps": statistics.median(r["rps"] for r in runs),
            "pct_of_tap_off": statistics.median(
                100 * r["rps"] / o["rps"] for r, o in zip(runs, off, strict=True)
            ),
            "p50_ms": statistics.median(r["latency_ms"].get("p50", float("nan")) for r in runs),
            "p99_ms": statistics.median(r["latency_ms"].get("p99", float("nan")) for r in runs),
            "errors": sum(r["non_2xx"] + r["socket_errors"] for r in runs),
        }
    return out


def verify_capture(urls: dict[str, str], raw: dict[str, Any], prefix: str) -> dict[str, Any]:
    """What each capture-on tap says it captured and dropped, against what the stream actually holds."""
    wait_capture_drained(urls)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        out: dict[str, Any] = {}
        health = _get_json(_health_url(urls[TAP_ON]))
        out[TAP_ON] = {
            "stream": f"{prefix}:captures",
            "stream_length": client.xlen(f"{prefix}:captures"),
            "tap_requests": health["requests"],
            "captured": health["capture"]["captured"],
            "dropped": health["capture"]["dropped"],
        }
        sent = sum(r["requests"] for r in raw["saturation"][TAP_ON_W2])
        out[TAP_ON_W2] = {
            "stream": f"{prefix}-w2:captures",
            "stream_length": client.xlen(f"{prefix}-w2:captures"),
            "wrk_responses_measured": sent,
            "note": "healthz answers for one worker only; the stream length is the total",
        }
        down = _get_json(_health_url(urls[REDIS_DOWN]))
        out[REDIS_DOWN] = {
            "tap_requests": down["requests"],
            "captured": down["capture"]["captured"],
            "dropped": down["capture"]["dropped"],
            "queue": down["capture"]["queue"],
        }
        return out
    finally:
        client.close()


def delete_streams(prefix: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


# --- the machine ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import aiohttp
    import uvloop

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        redis_version = str(client.info("server")["redis_version"])
    finally:
        client.close()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uvloop.__version__,
        "redis_server": redis_version,
        "nginx": _first_line(["nginx", "-v"]).removeprefix("nginx version: nginx/"),
        "wrk": _first_line(["wrk", "-v"]).split(" [")[0],
    }


def _first_line(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
    text = (done.stdout or done.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else "unknown"


# --- entry ----------------------------------------------------------------------------------------------


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded open-loop seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="open-loop keepalive pool")
    parser.add_argument("--wrk-seconds", type=float, default=8.0, help="saturation seconds per run")
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument(
        "--pin-load", type=int, action="append", metavar="CPU", help="pin the load generators to CPU"
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 3 s open loop, 3 s saturation")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the .md and .json go")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.wrk_seconds, args.warmup = 1, 3.0, 3.0, 0.5
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"tap_overhead: {tool} is not installed (apt-get install -y nginx wrk)", file=sys.stderr)
            return 1
    command = "python bench/tap_overhead.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    # SIGTERM unwinds like Ctrl-C, so the finally below stops every server and deletes the streams.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prefix = f"bench-{secrets.token_hex(4)}"
    info = machine()
    python = sys.executable
    started = time.monotonic()
    with _workdir() as workdir:
        servers = Servers(workdir)
        try:
            urls = start_all(servers, prefix, python)
            raw = run_rounds(urls, args, python)
            capture = verify_capture(urls, raw, prefix)
        finally:
            servers.stop_all()
            deleted = delete_streams(prefix)
    result = {
        "machine": info,
        "command": command,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "targets": TARGETS,
        "medians": medians(raw),
        "capture": capture,
        "redis_keys_deleted": deleted,
        "wall_seconds": round(time.monotonic() - started, 1),
        "raw": raw,
    }
    markdown = render_markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tap_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "tap_overhead.md").write_text(markdown)
    print()
    print(markdown)
    return 0


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="shadowgate-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
