"""`shadowgate demo` end to end, as a user runs it: a fresh folder, no Redis URL, JSON out, verdicts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from store.audit import verify
from store.db import open_store
from store.verdicts import latest

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One 20 s demo for the tests of this module (it takes about half a minute on two cores)."""
    folder = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "shadowgate.cli", "demo", "--seconds", "20", "--json"],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    return folder, json.loads(done.stdout)


def _tenants(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["tenant"]: t for t in summary["tenants"]}


def _routes(tenant: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["route"]: r for r in tenant["routes"]}


def test_every_planted_clinic_gets_its_verdict(demo_run: tuple[Path, dict[str, Any]]) -> None:
    _, summary = demo_run
    tenants = _tenants(summary)
    assert set(tenants) == {
        "klinik-sejahtera",
        "klinik-harmoni",
        "klinik-bayu",
        "klinik-mutiara",
        "klinik-kecil",
    }
    for tenant in tenants.values():
        assert tenant["as_planted"], tenant
        assert tenant["reason"]
        for route in tenant["routes"]:
            assert route["reason"]
            assert route["reasons"]

    # (1) an equivalent candidate: GO on every route, judged on 100 pairs each
    sejahtera = tenants["klinik-sejahtera"]
    assert sejahtera["verdict"] == "GO"
    assert {r: v["verdict"] for r, v in _routes(sejahtera).items()} == {
        "audio": "GO",
        "chat": "GO",
        "embed": "GO",
        "rerank": "GO",
    }
    assert all(r["pairs"] == 100 for r in sejahtera["routes"])

    # (2) a transcription regression: NO-GO on audio for the word error rate; its chat is fine
    harmoni = _routes(tenants["klinik-harmoni"])
    assert tenants["klinik-harmoni"]["verdict"] == "NO_GO"
    assert harmoni["audio"]["verdict"] == "NO_GO"
    assert {"wer", "cer"} <= set(harmoni["audio"]["failed"])
    assert harmoni["audio"]["metrics"]["wer"]["ci_low"] > harmoni["audio"]["metrics"]["wer"]["limit"]
    assert harmoni["chat"]["verdict"] == "GO"

    # (3) a latency regression: NO-GO on every route for the p95 latency
    bayu = tenants["klinik-bayu"]
    assert bayu["verdict"] == "NO_GO"
    assert len(bayu["routes"]) == 4
    for route in bayu["routes"]:
        assert route["verdict"] == "NO_GO"
        assert route["failed"] == ["candidate_p95_ms"]
        assert "latency" in bayu["reason"]

    # (4) changed doses and flipped negations: NO-GO on the critical clinical facts
    mutiara = tenants["klinik-mutiara"]
    assert mutiara["verdict"] == "NO_GO"
    for route in ("chat", "audio"):
        judged = _routes(mutiara)[route]
        assert judged["verdict"] == "NO_GO"
        assert "fact_mismatch_rate" in judged["failed"]
        assert judged["reason"].startswith("Do not cut over: fact_mismatch_rate (critical)")

    # (5) too little traffic: INSUFFICIENT DATA, saying how many pairs are missing
    kecil = tenants["klinik-kecil"]
    assert kecil["verdict"] == "INSUFFICIENT_DATA"
    for route in kecil["routes"]:
        assert route["verdict"] == "INSUFFICIENT_DATA"
        assert route["pairs"] < route["min_pairs"]
        assert "more are needed" in route["reason"]


def test_nothing_is_lost_between_the_tap_and_the_gate(demo_run: tuple[Path, dict[str, Any]]) -> None:
    _, summary = demo_run
    assert summary["requests"] > 500
    assert summary["captured"] == summary["requests"]  # the primary's own error answers included
    assert summary["dropped"] == {}
    assert summary["paired"] == summary["captured"]
    assert summary["scored"] == summary["paired"]
    assert summary["not_scored_in_time"] == 0
    assert summary["policy"]["path"].endswith("demo_policy.toml")
    judged = sum(r["pairs"] for t in summary["tenants"] for r in t["routes"])
    assert judged == summary["scored"]


def test_the_data_stays_for_the_dashboard(demo_run: tuple[Path, dict[str, Any]]) -> None:
    folder, summary = demo_run
    data = folder / ".shadowgate"
    assert (data / "demo.json").is_file()
    # the verdicts and their audit entries are in the store, the chain intact
    with open_store(f"sqlite:///{data / 'shadowgate.db'}") as engine:
        stored = {(v.tenant, v.route): v.status for v in latest(engine)}
        assert verify(engine).ok
    expected = {(t["tenant"], r["route"]): r["verdict"] for t in summary["tenants"] for r in t["routes"]}
    assert stored == expected
    # the embedded Redis kept its data and was stopped; the worker's log is there
    assert (data / "redis" / "appendonlydir").is_dir()
    assert not (data / "redis" / "server.json").exists()
    assert "worker" in (data / "worker.log").read_text()


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`, with its start time (so a reused pid is not mistaken for it)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        starts[int(entry.name)] = fields[19]
    out: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out[child] = starts[child]
        todo.extend(children.get(child, []))
    return out


def _alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] not in ("Z", "X")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_demo_stops_everything_it_started(tmp_path: Path, signum: signal.Signals) -> None:
    log = tmp_path / "demo.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shadowgate.cli", "demo", "--seconds", "60"],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
            # A shell's background job ignores SIGINT; a terminal's foreground job does not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if re.search(r"\[\s*\d+ s\] \d+/\d+ requests sent", log.read_text()):
                break
            time.sleep(0.1)
        started = _descendants(proc.pid)
        worker = re.search(r"worker\s+pid (\d+)", log.read_text())
        assert worker is not None, log.read_text()[-2000:]
        # the embedded Redis, the scoring worker and the clinics' traffic, at least
        assert int(worker.group(1)) in started
        assert len(started) >= 3
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, log.read_text()[-2000:]
    assert "interrupted: stopping everything" in log.read_text()
    assert "Traceback" not in log.read_text()
    assert not (tmp_path / ".shadowgate" / "redis" / "server.json").exists()
    deadline = time.monotonic() + 5
    while any(_alive(p, s) for p, s in started.items()) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p, s in started.items() if _alive(p, s)]
    assert not left, f"processes the demo started are still running: {left}"
