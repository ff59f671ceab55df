"""`shadowgate demo` end to end, as a user runs it: a fresh folder, no Redis URL, JSON out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_demo_captures_every_request_and_cleans_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "shadowgate.cli", "demo", "--seconds", "10", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["requests"] > 10
    # Every request is captured, the primary's own error answers included.
    assert summary["captured"] == summary["requests"]
    assert summary["dropped"] == {}
    # Dispatch ran beside the tap and paired every capture with the candidate's answer.
    assert summary["paired"] == summary["captured"]
    routes = {row["route"] for row in summary["by_tenant_route"]}
    assert {"chat", "audio", "embed"} <= routes
    tenants = {row["tenant"] for row in summary["by_tenant_route"]}
    assert {"klinik-sejahtera", "klinik-harmoni", "klinik-bayu", "klinik-mutiara"} <= tenants
    for row in summary["by_tenant_route"]:
        assert 0 < row["primary_p50_ms"] <= row["primary_p95_ms"]
        assert row["paired"] == row["captured"]
    # Every pair was scored into the store, and the planted situations show in the scores.
    assert summary["scored"] == summary["paired"]
    chat = {r["tenant"]: r for r in summary["by_tenant_route"] if r["route"] == "chat"}
    assert chat["klinik-sejahtera"]["fact_mismatches"] == 0
    assert chat["klinik-sejahtera"]["clinical_ok"] == 1
    assert chat["klinik-mutiara"]["fact_mismatches"] > 0
    assert chat["klinik-mutiara"]["clinical_ok"] < 1
    # The planted latency regression shows: klinik-bayu's candidate is slower than its primary.
    bayu = next(
        r for r in summary["by_tenant_route"] if r["tenant"] == "klinik-bayu" and r["route"] == "chat"
    )
    assert bayu["candidate_p50_ms"] > bayu["primary_p50_ms"]
    # The embedded Redis was started here, kept its data, and was stopped.
    state = tmp_path / ".shadowgate" / "redis"
    assert (state / "appendonlydir").is_dir()
    assert not (state / "server.json").exists()


def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")}
    log = tmp_path / "demo.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shadowgate.cli", "demo", "--seconds", "60"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            # A shell's background job ignores SIGINT; a terminal's foreground job does not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 60
        while "driving" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # let traffic and dispatch get going
        state = json.loads((tmp_path / ".shadowgate" / "redis" / "server.json").read_text())
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, log.read_text()[-2000:]
    assert not (tmp_path / ".shadowgate" / "redis" / "server.json").exists()
    stat = Path(f"/proc/{state['pid']}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1].startswith(("Z", "X"))
