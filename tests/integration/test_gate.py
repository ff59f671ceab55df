"""The gate on a real store: verdicts per tenant x route, exit codes, stored verdicts, audit chain, HTTP."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import Engine, text

from comparators.scoring import Result
from gate.http import build_app
from gate.policy import Policy, load_policy
from gate.run import EXIT_NO_GO, EXIT_UNDECIDED, decide, evaluate
from shadowgate.settings import ConfigError
from store.audit import entries, verify
from store.records import ScoredPair, SideMeta
from store.reviews import mark
from store.verdicts import latest
from store.writes import save_scored

TOKEN = "admin-token-for-tests-0123456789"


def pairs(tenant: str, n: int, *, mismatch_every: int = 0, seed: int = 0) -> list[ScoredPair]:
    rng = random.Random(seed)
    now = time.time()
    out = []
    for i in range(n):
        bad = bool(mismatch_every) and i % mismatch_every == 0
        out.append(
            ScoredPair(
                key=f"{tenant}-{i}-0",
                exchange_id=f"{tenant}-{i}",
                tenant=tenant,
                route="chat",
                replay=None,
                captured_at=now - 60 - i,
                paired_at=now - 59 - i,
                primary=SideMeta(200, None, rng.uniform(700, 900), None, "gpt-4o-mini"),
                candidate=SideMeta(200, None, rng.uniform(500, 700), None, "llama-3.1-70b", "v1", "GPU-0"),
                secondary=None,
                scores={
                    "candidate": Result(
                        metrics={
                            "semantic_similarity": rng.uniform(0.97, 1.0),
                            "rouge_l_f1": rng.uniform(0.8, 1.0),
                            "fact_mismatches": 1.0 if bad else 0.0,
                            "negation_flips": 0.0,
                            "clinical_ok": 0.0 if bad else 1.0,
                            "status_match": 1.0,
                        }
                    )
                },
            )
        )
    return out


@pytest.fixture
def filled(store_engine: Engine) -> Engine:
    save_scored(store_engine, pairs("klinik-good", 1200, seed=1))
    save_scored(store_engine, pairs("klinik-dose", 400, mismatch_every=10, seed=2))
    for i in range(0, 400, 10):  # a clinician confirmed every flag: a NO-GO may rest on them
        mark(store_engine, f"klinik-dose-{i}-0", "real", by="dr-aminah", note="the dose differs")
    save_scored(store_engine, pairs("klinik-few", 10, seed=3))
    return store_engine


def test_verdicts_are_explained_stored_and_audited(filled: Engine) -> None:
    policy = load_policy(None)
    run = evaluate(filled, policy)
    by_tenant = {v["tenant"]: v for v in run.verdicts}
    assert by_tenant["klinik-good"]["status"] == "GO"
    assert by_tenant["klinik-few"]["status"] == "INSUFFICIENT_DATA"
    dose = by_tenant["klinik-dose"]
    assert dose["status"] == "NO_GO"
    assert any(r.startswith("Critical") and "fact" in r.lower() for r in dose["reasons"])
    assert set(dose["worst"]["fact_mismatch_rate"]) <= {
        p.key for p in pairs("klinik-dose", 400, mismatch_every=10)
    }
    assert dose["worst"]["fact_mismatch_rate"]
    assert run.exit_code == EXIT_NO_GO

    stored = {v.tenant: v for v in latest(filled)}
    assert {t: v.status for t, v in stored.items()} == {t: v["status"] for t, v in by_tenant.items()}
    assert stored["klinik-good"].body["policy_version"] == policy.for_("klinik-good", "chat").version

    audit = entries(filled, action="verdict")
    assert len(audit) == 3
    assert verify(filled).ok

    # A second look at the same data is look 2, at the same alpha and with the same verdict: the bounds
    # hold at every look at once, so looking again neither spends nor needs anything.
    again = {v["tenant"]: v for v in evaluate(filled, policy).verdicts}
    assert again["klinik-good"]["look"] == 2
    assert again["klinik-good"]["alpha_used"] == by_tenant["klinik-good"]["alpha_used"] == 0.05
    assert again["klinik-good"]["status"] == "GO"
    # The judge of before (intervals = "per_look") divided alpha between looks: by look 3 the same 1,200
    # clean pairs no longer proved a critical-contradiction rate under 0.5 %, and it held.
    data = policy.model_dump()
    data["defaults"]["intervals"] = "per_look"
    per_look = Policy.model_validate(data)
    verdicts = [evaluate(filled, per_look, tenant="klinik-good").verdicts[0] for _ in range(3)]
    assert [v["look"] for v in verdicts] == [1, 2, 3]
    assert verdicts[0]["status"] == "GO"
    assert verdicts[2]["status"] == "HOLD"
    assert verdicts[2]["alpha_used"] < verdicts[0]["alpha_used"]
    third = evaluate(filled, per_look, tenant="klinik-good", record=False)
    assert third.exit_code == EXIT_UNDECIDED


def test_cli_exit_codes_and_a_tampered_audit_entry(filled: Engine) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_DB_URL": filled.url.render_as_string(hide_password=False),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shadowgate.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    good = cli("gate", "--tenant", "klinik-good", "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["verdicts"][0]["status"] == "GO"
    everyone = cli("gate")
    assert everyone.returncode == 1
    assert "klinik-dose" in everyone.stdout
    assert "NO_GO" in everyone.stdout
    assert cli("audit", "verify").returncode == 0

    with filled.begin() as conn:
        conn.execute(text("UPDATE audit SET reason = 'all fine' WHERE seq = 2"))
    broken = cli("audit", "verify")
    assert broken.returncode == 1
    assert "entry 2" in broken.stderr


@pytest.fixture
async def admin(filled: Engine) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    evaluate(filled, load_policy(None))
    async with TestClient(TestServer(build_app(filled, load_policy(None), SecretStr(TOKEN)))) as client:
        yield client


async def test_admin_api_needs_the_token(admin: TestClient) -> None:  # type: ignore[type-arg]
    assert (await admin.get("/healthz")).status == 200
    assert (await admin.get("/verdicts")).status == 401
    assert (await admin.get("/verdicts", headers={"Authorization": "Bearer wrong"})).status == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    got = await (await admin.get("/verdicts?tenant=klinik-good", headers=auth)).json()
    assert [v["status"] for v in got["verdicts"]] == ["GO"]
    fresh = await (await admin.post("/verdicts/evaluate?tenant=klinik-dose", headers=auth)).json()
    assert fresh["exit_code"] == EXIT_NO_GO
    assert fresh["verdicts"][0]["status"] == "NO_GO"


def test_policy_changes_and_decisions_are_on_record(filled: Engine, tmp_path: Path) -> None:
    default = load_policy(None)
    evaluate(filled, default)
    evaluate(filled, default)
    assert len(entries(filled, action="policy_change")) == 1  # recorded once per policy version

    stricter = tmp_path / "strict.toml"
    stricter.write_text("[tenants.klinik-good]\nfact_mismatch_rate_max = 0.002\n")
    strict = load_policy(stricter)
    verdicts = {v["tenant"]: v for v in evaluate(filled, strict).verdicts}
    changes = entries(filled, action="policy_change")
    assert len(changes) == 2
    assert json.loads(changes[0].details)["version"] == strict.version
    # The changed tenant starts its looks afresh under its new effective policy; the others go on.
    assert verdicts["klinik-good"]["look"] == 1
    assert verdicts["klinik-dose"]["look"] == 3

    decide(filled, tenant="klinik-good", route="chat", decision="approve", by="dr.aisyah", reason="GO twice")
    (approval,) = entries(filled, action="approve")
    assert (approval.actor, approval.tenant, approval.reason) == ("dr.aisyah", "klinik-good", "GO twice")
    assert json.loads(approval.details)["verdict"] == verdicts["klinik-good"]["status"]
    with pytest.raises(ConfigError, match="who"):
        decide(filled, tenant="klinik-good", route="chat", decision="hold", by=" ", reason="x")
    assert verify(filled).ok


def test_a_reader_that_stops_early_gets_no_traceback(filled: Engine) -> None:
    """`shadowgate export | head` and `shadowgate audit export | head`: when the reader goes away, the CLI
    stops quietly with SIGPIPE's status, as Unix tools do, instead of a BrokenPipeError traceback."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_DB_URL": filled.url.render_as_string(hide_password=False),
    }
    # export's 1,610 pairs are far more than a pipe holds: it meets the closed pipe; the audit log may fit
    for args, statuses in ((["export"], (141,)), (["audit", "export"], (0, 141))):
        proc = subprocess.Popen(
            [sys.executable, "-m", "shadowgate.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline()  # the first line, then the reader goes away, as `head -1` does
        proc.stdout.close()
        _, err = proc.communicate(timeout=120)
        assert b"Traceback" not in err, err.decode()
        assert proc.returncode in statuses, err.decode()
