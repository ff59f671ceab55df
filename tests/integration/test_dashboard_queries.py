"""The dashboard's store queries on SQLite and PostgreSQL, checked against the same numbers by hand."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select

from comparators.scoring import Finding
from dashboard import actions, data
from dashboard.auth import Identity
from shadowgate.crypto import CryptoError, cipher_from, generate_key
from shadowgate.settings import Encryption, Settings
from store.audit import entries, verify
from store.models import PAYLOADS
from store.queries import (
    latency_quantiles,
    metric_histogram,
    pair_record,
    pair_volumes,
    replay_runs,
)
from store.records import Payload
from store.verdicts import latest, save_verdict
from store.writes import save_scored
from tests.integration.test_store import T0, pair, percentile_cont


def test_histogram_counts_every_value_once_in_its_bin(store_engine: Engine) -> None:
    rng = random.Random(3)
    values = [rng.uniform(-0.2, 1.2) for _ in range(200)] + [0.0, 0.05, 0.1, 0.95, 1.0]
    save_scored(
        store_engine,
        [pair(f"k{i}", metrics={"semantic_similarity": v}) for i, v in enumerate(values)]
        + [pair("none", metrics={})],  # no value: in no bin
    )
    counts = metric_histogram(store_engine, "semantic_similarity", lo=0.0, hi=1.0, bins=20)
    expected = [0] * 20
    for v in values:
        expected[min(max(int((v - 0.0) / 0.05) if v >= 0 else 0, 0), 19)] += 1
    assert counts == expected
    assert sum(counts) == len(values)
    with pytest.raises(ValueError, match="unknown metric"):
        metric_histogram(store_engine, "1; DROP TABLE scores", lo=0, hi=1, bins=2)


def test_latency_quantiles_leave_failed_sides_out(store_engine: Engine) -> None:
    rng = random.Random(5)
    ok = [rng.uniform(50, 5000) for _ in range(101)]
    items = [pair(f"k{i}", primary_ms=ms / 2, candidate_ms=ms) for i, ms in enumerate(ok)]
    items.append(pair("failed", candidate_ms=9999.0, candidate_status=503))
    items.append(pair("none", candidate_ms=None))
    save_scored(store_engine, items)
    qs = (0.0, 0.5, 0.95, 1.0)
    found = latency_quantiles(store_engine, qs, tenant="clinic-a", route="chat")
    for q in qs:
        assert found["candidate_total_ms"][q] == pytest.approx(percentile_cont(ok, q))
    primary = [ms / 2 for ms in ok] + [100.0, 100.0]  # the primary answered the failed ones
    assert found["primary_total_ms"][0.5] == pytest.approx(percentile_cont(primary, 0.5))
    assert found["candidate_ttfb_ms"][0.5] == pytest.approx(20.0)
    empty = latency_quantiles(store_engine, qs, tenant="nobody")
    assert empty["candidate_total_ms"] == dict.fromkeys(qs)


def test_pair_volumes_and_the_pair_record(store_engine: Engine) -> None:
    finding = Finding("number_mismatch", "mg", "500 mg", "50 mg")
    save_scored(
        store_engine,
        [
            pair("a1", metrics={"fact_mismatches": 1.0}, findings=[finding, finding]),
            pair("a2", at=T0 + timedelta(minutes=5), candidate_status=500),
            pair("b1", tenant="clinic-b", route="audio", metrics={"wer": 0.2}),
            pair("r1", replay="replay-1"),
            pair("old", at=T0 - timedelta(days=2)),
        ],
    )
    volumes = pair_volumes(store_engine, since=T0 - timedelta(hours=1))
    assert [(v.tenant, v.route, v.pairs, v.candidate_errors) for v in volumes] == [
        ("clinic-a", "chat", 2, 1),
        ("clinic-b", "audio", 1, 0),
    ]
    assert volumes[0].last_captured_at == T0 + timedelta(minutes=5)

    record = pair_record(store_engine, "a1")
    assert record is not None
    assert (record.tenant, record.route, record.replay) == ("clinic-a", "chat", None)
    assert record.sides["candidate"]["model"] == "llama-3.1-70b"
    assert record.sides["candidate"]["gpu"] == "H100"
    assert "secondary" not in record.sides
    assert record.scores["candidate"] == {"fact_mismatches": 1.0}
    assert record.findings == {"candidate": {"number_mismatch": 2}}
    assert pair_record(store_engine, "missing") is None

    runs = replay_runs(store_engine)
    assert [(r.run_id, r.pairs, r.tenants) for r in runs] == [("replay-1", 1, 1)]
    assert replay_runs(store_engine, run_id="replay-2") == []


def test_verdicts_as_of_a_moment(store_engine: Engine) -> None:
    def v(status: str) -> dict[str, object]:
        return {"tenant": "t", "route": "chat", "status": status, "policy_version": "p", "n": 40}

    save_verdict(store_engine, v("NO_GO"), at=T0 - timedelta(days=2))
    save_verdict(store_engine, v("HOLD"), at=T0 - timedelta(hours=30))
    save_verdict(store_engine, v("GO"), at=T0)
    before = latest(store_engine, as_of=T0 - timedelta(hours=24))
    assert [(x.tenant, x.status) for x in before] == [("t", "HOLD")]
    assert [x.status for x in latest(store_engine, as_of=T0)] == ["GO"]
    assert latest(store_engine, as_of=T0 - timedelta(days=3)) == []


def test_actions_need_a_person_and_a_reason_and_are_audited(store_engine: Engine, tmp_path: Path) -> None:
    settings = Settings(db_url=store_engine.url.render_as_string(hide_password=False), data_dir=tmp_path)
    lead = Identity("lead@klinik.example", "oidc")
    with pytest.raises(actions.ActionError, match="sign in"):
        actions.record_decision(settings, None, tenant="t", route="chat", decision="hold", reason="why")
    with pytest.raises(actions.ActionError, match="reason"):
        actions.record_decision(settings, lead, tenant="t", route="chat", decision="hold", reason="  ")
    actions.record_decision(
        settings, lead, tenant="t", route="chat", decision="hold", reason="wait for Monday"
    )
    run = actions.run_gate(settings, lead)
    assert run.verdicts == []  # nothing to judge in an empty store, but who asked is on record
    log = entries(store_engine, limit=10)
    assert [(e.action, e.actor) for e in reversed(log)] == [
        ("hold", "oidc:lead@klinik.example"),
        ("gate_run", "oidc:lead@klinik.example"),
        ("policy_change", "gate"),
    ]
    assert verify(store_engine).ok
    with pytest.raises(actions.ActionError, match="no Redis"):
        actions.cut_over(settings, lead, tenant="t", route="chat", reason="go")


def test_the_dashboard_opens_sealed_content_only_with_the_key(store_engine: Engine, tmp_path: Path) -> None:
    url = store_engine.url.render_as_string(hide_password=False)
    keyed = Settings(
        db_url=url, data_dir=tmp_path, encryption=Encryption(keys={"k1": SecretStr(generate_key())})
    )
    content = Payload(b'{"messages": []}', "Paracetamol 500 mg TDS.", "Paracetamol 50 mg TDS.")
    save_scored(store_engine, [pair("sealed", payload=content)], cipher_from(keyed.encryption))
    with store_engine.connect() as conn:
        stored = conn.execute(
            select(PAYLOADS.c.primary_text).where(PAYLOADS.c.pair_key == "sealed")
        ).scalar_one()
    assert "Paracetamol" not in stored  # sealed at rest
    opened = data.payload(keyed, "sealed")
    assert opened is not None
    assert (opened.primary, opened.candidate, opened.request) == (
        content.primary,
        content.candidate,
        content.request,
    )
    with pytest.raises(CryptoError):
        data.payload(Settings(db_url=url, data_dir=tmp_path), "sealed")
