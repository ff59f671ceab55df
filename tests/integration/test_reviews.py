"""Clinicians' reviews of flagged pairs on SQLite and PostgreSQL: the queue, the marks, the refusals, the
audit chain, and the gate counting them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from comparators.scoring import Finding
from gate.policy import load_policy
from gate.run import evaluate
from store.audit import entries, verify
from store.records import Payload, ScoredPair
from store.reviews import ReviewError, awaiting, corpus_lines, mark, marks, queue, reviewed
from store.writes import save_scored
from tests.integration.test_gate import pairs
from tests.integration.test_store import pair


@pytest.fixture
def flagged(store_engine: Engine) -> Engine:
    # 1,200 answered pairs of which every 300th has a critical flag (4 flags, 0.33 %).
    save_scored(store_engine, pairs("klinik-review", 1200, mismatch_every=300, seed=4))
    return store_engine


def test_flags_wait_in_a_queue_until_a_person_marks_them(flagged: Engine) -> None:
    waiting = queue(flagged, tenant="klinik-review")
    assert len(waiting) == 4
    assert all(f.tenant == "klinik-review" and f.route == "chat" for f in waiting)
    assert awaiting(flagged) == {("klinik-review", "chat"): 4}
    mark(flagged, waiting[0].key, "false_alarm", by="dr.aisyah", note="dose written two ways")
    mark(flagged, waiting[1].key, "real", by="dr.aisyah", note="the candidate halved the dose")
    assert len(queue(flagged, tenant="klinik-review")) == 2
    assert awaiting(flagged) == {("klinik-review", "chat"): 2}
    assert marks(flagged, [f.key for f in waiting]) == {waiting[0].key: "false_alarm", waiting[1].key: "real"}
    # A later mark replaces the earlier one; both are in the audit log.
    mark(flagged, waiting[0].key, "real", by="dr.lim", note="on second reading it is a real change")
    assert marks(flagged, [waiting[0].key]) == {waiting[0].key: "real"}
    logged = sorted(entries(flagged, action="review"), key=lambda e: e.seq)
    assert [(e.actor, e.tenant, e.reason) for e in logged] == [
        ("dr.aisyah", "klinik-review", "dose written two ways"),
        ("dr.aisyah", "klinik-review", "the candidate halved the dose"),
        ("dr.lim", "klinik-review", "on second reading it is a real change"),
    ]
    assert verify(flagged).ok


def test_bad_reviews_are_refused_and_record_nothing(flagged: Engine) -> None:
    key = queue(flagged)[0].key
    clean = "klinik-review-1-0"  # not flagged
    for args, message in (
        ((key, "maybe"), "'real' or 'false_alarm'"),
        (("no-such-pair", "real"), "no pair"),
        ((clean, "real"), "no critical clinical flag"),
    ):
        with pytest.raises(ReviewError, match=message):
            mark(flagged, *args, by="dr.aisyah", note="x")
    with pytest.raises(ReviewError, match="name"):
        mark(flagged, key, "real", by=" ", note="x")
    with pytest.raises(ReviewError, match="note"):
        mark(flagged, key, "real", by="dr.aisyah", note="")
    assert entries(flagged, action="review") == []
    assert len(queue(flagged)) == 4
    assert verify(flagged).ok


def test_the_gate_holds_until_every_flag_is_reviewed(store_engine: Engine) -> None:
    # 2,400 pairs and one critical flag: the rate passes its ceiling, but the flag is unreviewed.
    save_scored(store_engine, pairs("klinik-one-flag", 2400, mismatch_every=2400, seed=5))
    policy = load_policy(None)
    first = {v["route"]: v for v in evaluate(store_engine, policy, tenant="klinik-one-flag").verdicts}["chat"]
    assert first["status"] == "HOLD"
    assert "1 critical clinical flag(s) in this window await a clinician's review" in first["reasons"][0]
    (only,) = queue(store_engine)
    mark(store_engine, only.key, "real", by="dr.aisyah", note="the candidate dropped the dose")
    after = {v["route"]: v for v in evaluate(store_engine, policy, tenant="klinik-one-flag").verdicts}["chat"]
    assert after["status"] == "GO", after["reasons"]  # one real difference in 2,400 is under 0.5 %


def test_the_review_command(flagged: Engine, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_DB_URL": flagged.url.render_as_string(hide_password=False),
        "SHADOWGATE_DATA_DIR": str(tmp_path),
    }
    run = [sys.executable, "-m", "shadowgate.cli", "review"]
    listed = subprocess.run([*run, "queue"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    keys = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert len(keys) == 4
    done = subprocess.run(
        [*run, "mark", keys[0], "false-alarm", "--by", "dr.aisyah", "--note", "same dose"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert marks(flagged, [keys[0]]) == {keys[0]: "false_alarm"}
    refused = subprocess.run(
        [*run, "mark", "no-such-pair", "real", "--by", "dr.aisyah", "--note", "x"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2
    assert (
        refused.stderr.strip()
        == "shadowgate: there is no pair 'no-such-pair' in the store (purged, or never scored)."
    )


def test_reviewed_pairs_export_as_clinical_corpus_lines(store_engine: Engine) -> None:
    def flagged_pair(key: str, primary: str, candidate: str, findings: list[Finding]) -> ScoredPair:
        return pair(
            key,
            metrics={"clinical_ok": 0.0, "clinical_critical": float(len(findings))},
            findings=findings,
            payload=Payload(request=b"{}", primary=primary, candidate=candidate, secondary=None),
        )

    dose = Finding("critical_contradiction", "dose: paracetamol", "Paracetamol 500 mg", "Paracetamol 50 mg")
    save_scored(
        store_engine,
        [
            flagged_pair("r1", "Paracetamol 500 mg TDS.", "Paracetamol 50 mg TDS.", [dose]),
            flagged_pair("r2", "Paracetamol 1 g QID.", "Paracetamol 1000 mg QID.", []),
        ],
    )
    mark(store_engine, "r1", "real", by="dr.aisyah", note="the dose is a tenth")
    mark(store_engine, "r2", "false_alarm", by="dr.aisyah", note="the same dose written two ways")
    lines = {line["id"]: line for line in corpus_lines(store_engine, None)}
    assert lines["review-r1"]["label"] == "different"
    assert lines["review-r1"]["expected"] == [
        {"kind": "contradiction", "slot": "dose", "severity": "critical"}
    ]
    assert (lines["review-r1"]["primary"], lines["review-r1"]["other"]) == (
        "Paracetamol 500 mg TDS.",
        "Paracetamol 50 mg TDS.",
    )
    assert lines["review-r2"]["label"] == "equivalent"
    assert lines["review-r2"]["expected"] == []
    json.dumps(list(lines.values()))


def test_a_queue_reviewer_overtaken_by_someone_else_records_nothing(flagged: Engine) -> None:
    first, second = (f.key for f in queue(flagged, tenant="klinik-review")[:2])
    mark(flagged, first, "real", by="dr.lim", note="the candidate halved the dose")
    with pytest.raises(ReviewError, match=r"already marked real by dr\.lim"):
        mark(flagged, first, "false_alarm", by="dr.aisyah", note="same dose", replace=False)
    assert marks(flagged, [first]) == {first: "real"}
    assert [e.actor for e in entries(flagged, action="review")] == ["dr.lim"]
    mark(flagged, second, "false_alarm", by="dr.aisyah", note="dose written two ways", replace=False)
    mark(flagged, first, "false_alarm", by="dr.aisyah", note="on second reading the same dose")
    done = reviewed(flagged, tenant="klinik-review", route="chat")
    assert [(r.key, r.mark, r.actor, r.note) for r in done] == [
        (first, "false_alarm", "dr.aisyah", "on second reading the same dose"),
        (second, "false_alarm", "dr.aisyah", "dose written two ways"),
    ]
    assert reviewed(flagged, tenant="klinik-review", route="audio") == []
