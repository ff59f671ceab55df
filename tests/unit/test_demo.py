"""The demo's pure parts: its traffic plan, its policy, how verdicts roll up per clinic, its data folder."""

from __future__ import annotations

import os
import random
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gate.judge import judge
from gate.policy import load_policy
from gate.samples import Samples
from shadowgate.demo import load_demo_policy
from shadowgate.demo_report import PLANTED, by_tenant, report, verdict_table, worst
from shadowgate.demo_setup import MARKER, DemoError, prepare
from shadowgate.traffic import DEMO_TENANTS, ROUTE_OF_KIND, route_counts, schedule
from simulator.profile import demo_profiles


def test_twenty_seconds_give_each_clinic_its_planned_pairs() -> None:
    counts = route_counts(schedule(DEMO_TENANTS, 20))
    assert {r: counts["klinik-sejahtera", r] for r in ("audio", "chat", "embed", "rerank")} == {
        "audio": 100,
        "chat": 100,
        "embed": 100,
        "rerank": 100,
    }
    assert counts["klinik-harmoni", "audio"] == 40
    assert counts["klinik-harmoni", "chat"] == 100
    assert all(counts["klinik-bayu", r] == 30 for r in ("audio", "chat", "embed", "rerank"))
    assert counts["klinik-mutiara", "chat"] == counts["klinik-mutiara", "audio"] == 40
    # klinik-kecil never reaches the demo policy's minimum, even in a long run
    policy, _ = load_demo_policy()
    long_run = route_counts(schedule(DEMO_TENANTS, 300))
    for route in ("audio", "chat", "embed", "rerank"):
        assert 0 < long_run["klinik-kecil", route] < policy.for_("klinik-kecil", route).min_pairs


def test_the_plan_is_deterministic_timed_and_varied() -> None:
    a, b = schedule(DEMO_TENANTS, 10), schedule(DEMO_TENANTS, 10)
    assert a == b
    assert [p.at for p in a] == sorted(p.at for p in a)
    assert a[-1].at < 10
    # SOAP notes lead the chat route, and no two chat questions are the same
    kinds = Counter(p.kind for p in a if ROUTE_OF_KIND[p.kind] == "chat")
    assert kinds["soap"] > kinds["chat"] > 0
    assert kinds["chat_stream"] > 0
    questions = [p.content for p in a if p.kind in ("chat", "chat_stream")]
    assert len(set(questions)) == len(questions)
    recordings = [p.content for p in a if p.kind == "transcribe"]
    assert len(set(recordings)) == len(recordings)


def test_planted_clinics_are_the_simulated_ones() -> None:
    candidate = demo_profiles()["candidate"]
    assert set(PLANTED) == set(DEMO_TENANTS) == set(candidate.tenants)


def test_the_demo_policy_differs_from_the_default_only_where_it_says() -> None:
    demo, _ = load_demo_policy()
    default = load_policy(None)
    changed = {
        "alpha": 0.10,
        "min_pairs": 20,
        "fact_mismatch_rate_max": 0.05,
        "fact_margin_vs_noise": 0.05,
        "omission_rate_max": 0.05,
        "omission_margin_vs_noise": 0.05,
        "require_review": False,
    }
    for route in ("audio", "chat", "reason", "vision", "embed", "rerank", "other"):
        d, p = demo.for_("t", route).model_dump(), default.for_("t", route).model_dump()
        assert {k: v for k, v in d.items() if p[k] != v} == changed


def _clean(route: str, n: int, ms: float) -> Samples:
    metrics: dict[str, list[float | None]] = {
        "semantic_similarity": [0.99] * n,
        "rouge_l_f1": [0.95] * n,
        "clinical_ok": [1.0] * n,
        "wer": [0.02] * n,
        "cer": [0.01] * n,
        "embed_rank_correlation": [0.99] * n,
        "rerank_top1_match": [1.0] * n,
    }
    rng = random.Random(n)
    return Samples(
        tenant="klinik-sejahtera",
        route=route,
        keys=[f"1-{i}" for i in range(n)],
        primary_ms=[2 * ms] * n,
        candidate_ms=[ms * rng.uniform(0.5, 1.5) for _ in range(n)],
        candidate_failed=[False] * n,
        primary_failed=[False] * n,
        metrics=metrics,
    )


@pytest.mark.parametrize(
    ("route", "ms"), [("chat", 600.0), ("audio", 400.0), ("embed", 40.0), ("rerank", 40.0)]
)
def test_a_hundred_clean_pairs_are_a_go_under_the_demo_policy_and_forty_are_not(
    route: str, ms: float
) -> None:
    """Why the equivalent clinic sends 5 requests a second per route: 100 pairs are enough for a GO with
    the judge untouched; 40 leave the p95 and the error rate unbounded enough for a HOLD."""
    demo, _ = load_demo_policy()
    assert judge(_clean(route, 100, ms), demo.for_("klinik-sejahtera", route)).status == "GO"
    assert judge(_clean(route, 40, ms), demo.for_("klinik-sejahtera", route)).status == "HOLD"
    # and where clinical facts are judged, the default policy wants more than the demo sends
    if route in ("chat", "audio"):
        default = judge(_clean(route, 100, ms), load_policy(None).for_("klinik-sejahtera", route))
        assert default.status == "HOLD"


def _verdict(tenant: str, route: str, status: str, n: int, failed: tuple[str, ...] = ()) -> dict[str, Any]:
    metrics = [
        {"name": m, "status": "FAIL", "value": 1.0, "ci_low": 0.9, "ci_high": 1.0, "limit": 0.1, "n": n}
        for m in failed
    ]
    reasons = [
        "Head." if status != "GO" else "Every judged metric passed.",
        *(f"{m} is bad." for m in failed),
    ]
    return {
        "tenant": tenant,
        "route": route,
        "status": status,
        "n": n,
        "metrics": metrics,
        "reasons": reasons,
    }


def test_a_clinic_takes_its_worst_route_and_says_why() -> None:
    assert worst(["GO", "INSUFFICIENT_DATA", "HOLD"]) == "HOLD"
    assert worst(["GO", "NO_GO", "HOLD"]) == "NO_GO"
    verdicts = [
        _verdict("klinik-harmoni", "audio", "NO_GO", 40, ("wer", "cer")),
        _verdict("klinik-harmoni", "chat", "GO", 80),
        _verdict("klinik-kecil", "chat", "INSUFFICIENT_DATA", 1),
        _verdict("klinik-kecil", "audio", "INSUFFICIENT_DATA", 2),
        _verdict("klinik-sejahtera", "chat", "HOLD", 80),
    ]
    rows = {t["tenant"]: t for t in by_tenant(verdicts, {})}
    harmoni = rows["klinik-harmoni"]
    assert harmoni["verdict"] == "NO_GO"
    assert harmoni["as_planted"]
    assert harmoni["reason"] == "do not cut over: audio (word error rate, character error rate) failed"
    assert [r["route"] for r in harmoni["routes"]] == ["audio", "chat"]
    assert rows["klinik-kecil"]["verdict"] == "INSUFFICIENT_DATA"
    assert "1–2 pairs per route" in rows["klinik-kecil"]["reason"]
    assert rows["klinik-sejahtera"]["as_planted"] is False
    # a planted clinic with no verdict at all is listed, and not as planted
    assert rows["klinik-bayu"]["routes"] == []
    assert rows["klinik-bayu"]["as_planted"] is False
    table = verdict_table(list(rows.values()))
    assert "NOT AS PLANTED: expected GO" in table
    assert "NO-GO" in table


def test_the_demo_starts_from_an_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    prepare(folder)
    assert (folder / MARKER).is_file()
    # what a previous demo left is removed
    (folder / "shadowgate.db").write_text("old")
    (folder / "redis").mkdir()
    (folder / "redis" / "appendonly.aof").write_text("old")
    (folder / "worker.log").write_text("old")
    (folder / "blobs" / "ab").mkdir(parents=True)
    (folder / "blobs" / "ab" / "x").write_text("a body")
    prepare(folder)
    assert not (folder / "shadowgate.db").exists()
    assert not (folder / "redis").exists()
    assert not (folder / "worker.log").exists()
    # blobs are never the demo's to delete: content-addressed, they may be a deployment's
    assert (folder / "blobs" / "ab" / "x").read_text() == "a body"


def test_a_folder_with_only_blobs_is_used_and_its_blobs_kept(tmp_path: Path) -> None:
    (tmp_path / "blobs" / "cd").mkdir(parents=True)
    (tmp_path / "blobs" / "cd" / "y").write_text("a body")
    prepare(tmp_path)
    assert (tmp_path / MARKER).is_file()
    assert (tmp_path / "blobs" / "cd" / "y").read_text() == "a body"


@pytest.mark.parametrize("what", ["shadowgate.db", "redis"])
def test_the_demo_refuses_a_folder_with_real_data(tmp_path: Path, what: str) -> None:
    (tmp_path / what).write_text("real pairs")
    with pytest.raises(DemoError, match="holds data the demo did not make"):
        prepare(tmp_path)
    assert (tmp_path / what).read_text() == "real pairs"
    assert not (tmp_path / MARKER).exists()


def test_the_report_names_the_demo_policy_and_the_dashboard() -> None:
    tenants = by_tenant([_verdict("klinik-sejahtera", "chat", "GO", 80)], {})
    summary: dict[str, Any] = {
        "by_tenant_route": [],
        "requests": 80,
        "captured": 80,
        "paired": 80,
        "scored": 80,
        "dropped": {},
        "client_errors": {},
        "not_scored_in_time": 0,
        "policy": {"path": "shadowgate/demo_policy.toml"},
        "tenants": tenants,
        "data_dir": ".shadowgate",
        "ignored": ["db_url"],
        "loop_lag_ms": {"p50": 0.0, "p99": 90.0, "max": 400.0},
    }
    text = report(summary)
    assert "judged by the DEMO policy shadowgate/demo_policy.toml" in text
    # the dashboard command names a launcher that exists: the venv's, which need not be on the PATH
    command = text.split("Open it with: ", 1)[1].split("\n", 1)[0]
    launcher, verb = shlex.split(command)
    assert verb == "dashboard"
    assert os.access(launcher, os.X_OK), launcher
    assert "it did not use db_url" in text
    # a clinic not as planted on a busy machine: the lateness is named
    assert "This machine was busy" in text
