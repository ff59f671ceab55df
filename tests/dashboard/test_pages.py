"""The dashboard's pages, headless (Streamlit's AppTest), on stores the real pipeline filled.

Each test runs on SQLite and on PostgreSQL (the `filled` fixture). The stores are shared by the tests of
a backend: tests that act only add (audit entries, a replay run, a mode they undo), and assert on what
they added.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from comparators.embedder import Embedder
from comparators.worker import ScoringWorker
from dashboard.replays import JOBS
from store.audit import entries, verify
from store.payloads import load_payload
from store.queries import latency_quantiles, pair_volumes, replay_runs, worst_pairs
from store.reviews import awaiting, marks
from store.verdicts import latest
from tests.conftest import TEST_REDIS_URL
from tests.dashboard.conftest import PASSWORD, USER, Filled

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
OIDC_SECRETS = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a-long-random-string-for-the-test-only",
        "client_id": "shadowgate",
        "client_secret": "not-a-secret",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
    }
}


def app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=60)


def markdown(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def html(at: AppTest) -> str:
    return "\n".join(str(el.proto.body) for el in at.get("html"))


def links(at: AppTest) -> dict[str, str]:
    return {str(el.proto.label): str(el.proto.query_string) for el in at.get("page_link")}


def walk(node: Any) -> Iterator[Any]:
    """Every node under `node`, depth first."""
    for child in getattr(node, "children", {}).values():
        yield child
        yield from walk(child)


def signed_in(at: AppTest) -> AppTest:
    """Sign in with the fixture's local user through the sidebar's form."""
    at.run()
    at.sidebar.text_input(key="sg-signin-name").input(USER)
    at.sidebar.text_input(key="sg-signin-password").input(PASSWORD)
    at.sidebar.button[0].click().run()
    assert not at.exception, at.exception
    assert f"Signed in as **{USER}**" in "\n".join(m.value for m in at.sidebar.markdown)
    return at


def with_oidc(at: AppTest, email: str = "eng.lead@klinik.example") -> AppTest:
    at.secrets = json.loads(json.dumps(OIDC_SECRETS))
    at.user = {"is_logged_in": True, "email": email, "name": "Eng Lead"}
    return at


def on_page(at: AppTest, page: str, **params: str) -> AppTest:
    at.query_params.update(params)
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def pick(at: AppTest, key: str, label: str) -> None:
    box = at.selectbox(key=key)
    box.select_index(list(box.options).index(label))


def test_board_shows_every_tenant_and_its_verdicts(dashboard_env: Filled) -> None:
    at = app().run()
    assert not at.exception, at.exception
    shown = markdown(at)
    stored = {(v.tenant, v.route): v for v in latest(dashboard_env.engine)}
    assert {v.status for v in stored.values()} == {"GO", "HOLD", "NO_GO", "INSUFFICIENT_DATA"}
    # The flags nobody has reviewed, counted for the whole board and shown in their cells.
    waiting = awaiting(dashboard_env.engine)
    assert waiting
    assert f"{sum(waiting.values())} critical clinical flag(s) await a clinician's review" in shown
    flags = max(waiting.values())
    assert f"{flags} critical flag{'s' if flags > 1 else ''} await review" in shown
    tenants = {label for label, query in links(at).items() if query == f"tenant={label}"}
    assert tenants == {"klinik-same", "klinik-drift", "klinik-edge"}
    # One bordered row per tenant: its name, then a cell per route with that verdict.
    rows = [b for b in walk(at.main) if getattr(b, "type", "") == "flex_container"]
    cells = {}
    for row in rows:
        row_links = [el.proto.label for el in row.get("page_link")]
        if len(row_links) != 1 or row_links[0] not in tenants:
            continue
        columns = row.get("column")
        routes = ["audio", "chat", "embed"]
        for route, column in zip(routes, columns[1:], strict=True):
            cells[(row_links[0], route)] = "\n".join(m.value for m in column.get("markdown"))
    assert set(cells) == set(stored)
    labels = {
        "GO": "**GO**",
        "HOLD": "**HOLD**",
        "NO_GO": "**NO-GO**",
        "INSUFFICIENT_DATA": "**INSUFFICIENT DATA**",
    }
    for key, verdict in stored.items():
        assert labels[verdict.status] in cells[key], key
        assert f"{verdict.body['n']} pairs judged" in cells[key]
    # The decisive metric against its limit, and the trend since yesterday's (stricter) verdicts.
    assert "fact mismatches 100.0 % vs ≤ 30.0 %" in cells[("klinik-drift", "chat")]
    assert "▲ up from" in cells[("klinik-same", "chat")]
    assert "Only 3 pairs in the last 24h" in cells[("klinik-same", "audio")]
    assert "unchanged since yesterday" in cells[("klinik-same", "audio")]
    assert "Klinik Hanyut" in shown  # the configured display name


def test_an_approval_by_a_signed_in_user_lands_in_the_audit_chain(dashboard_env: Filled) -> None:
    at = signed_in(app())
    pick(at, "sg-board-pick", "klinik-same / chat")
    at.run()
    at.text_input(key="sg-reason-klinik-same-chat").input("90 clean pairs, latency well inside the plan")
    at.button(key="sg-approve-klinik-same-chat").click().run()
    assert not at.exception, at.exception
    assert any("local:alice approves klinik-same / chat" in s.value for s in at.success)

    last = entries(dashboard_env.engine, action="approve", limit=1)[0]
    assert (last.actor, last.tenant, last.route) == (f"local:{USER}", "klinik-same", "chat")
    assert last.reason == "90 clean pairs, latency well inside the plan"
    go = latest(dashboard_env.engine, tenant="klinik-same", route="chat")[0]
    assert json.loads(last.details) == {
        "verdict": "GO",
        "verdict_id": go.id,
        "policy_version": go.policy_version,
    }
    assert verify(dashboard_env.engine).ok

    on_page(at, "audit")
    assert any("Chain verified" in s.value for s in at.success)
    table = at.dataframe[0].value
    row = table[table["seq"] == last.seq].iloc[0]
    assert (row["actor"], row["action"], row["tenant"]) == (f"local:{USER}", "approve", "klinik-same")


def test_without_a_sign_in_there_is_no_action_and_no_reason_box(dashboard_env: Filled) -> None:
    at = app().run()
    pick(at, "sg-board-pick", "klinik-same / chat")
    at.run()
    assert not at.exception, at.exception
    assert not [t for t in at.text_input if str(t.key).startswith("sg-reason")]
    assert not [b for b in at.button if str(b.key).startswith(("sg-approve", "sg-hold", "sg-cutover"))]
    assert any("Sign in to approve" in i.value for i in at.info)
    gate = next(b for b in at.button if b.label == "Run the gate now")
    assert gate.disabled


def test_a_wrong_password_signs_no_one_in(dashboard_env: Filled) -> None:
    at = app().run()
    at.sidebar.text_input(key="sg-signin-name").input(USER)
    at.sidebar.text_input(key="sg-signin-password").input("not the password")
    at.sidebar.button[0].click().run()
    assert any("Wrong name or password" in e.value for e in at.sidebar.error)
    assert not any("Signed in as" in m.value for m in at.sidebar.markdown)


def _worst(engine: Engine, tenant: str, route: str, metric: str) -> str:
    return worst_pairs(engine, tenant, route, metric, 1, ascending=False)[0].key


def test_the_pair_page_shows_no_clinical_text_to_anyone_not_signed_in(dashboard_env: Filled) -> None:
    key = _worst(dashboard_env.engine, "klinik-drift", "chat", "fact_mismatches")
    content = load_payload(dashboard_env.engine, key, None)
    assert content is not None
    assert content.primary
    at = on_page(app().run(), "pair", pair=key)
    assert any("sign in to read them" in i.value for i in at.info)
    assert not at.get("html")
    assert not at.code
    page = markdown(at) + "".join(str(t.value) for t in at.table)
    sentence = next(line for line in content.primary.splitlines() if len(line) > 30)
    assert sentence not in page
    assert "klinik-drift / chat" in page  # the metadata is there
    assert "candidate" in str(at.table[0].value)


def test_a_signed_in_clinician_marks_a_flag_from_the_pair_page(dashboard_env: Filled) -> None:
    engine = dashboard_env.engine
    key = _worst(engine, "klinik-drift", "chat", "fact_mismatches")
    at = on_page(with_oidc(app()).run(), "pair", pair=key)
    assert any("Review this flag" in m.value for m in at.markdown)
    record = next(b for b in at.button if b.label == "Record the mark")
    at.radio[0].set_value("false_alarm")
    at.text_input[-1].input("")
    record.click().run()  # no note: refused, nothing recorded
    assert any("Not recorded" in e.value for e in at.error)
    assert marks(engine, [key]) == {}
    at.radio[0].set_value("real")
    at.text_input[-1].input("the candidate changed the dose")
    next(b for b in at.button if b.label == "Record the mark").click().run()
    assert not at.exception, at.exception
    assert any("marks this flag real" in s.value for s in at.success)
    assert marks(engine, [key]) == {key: "real"}
    last = entries(engine, action="review", limit=1)[0]
    assert (last.actor, last.reason) == ("oidc:eng.lead@klinik.example", "the candidate changed the dose")
    assert verify(engine).ok


def test_the_pair_page_marks_changed_numbers_and_negations(dashboard_env: Filled) -> None:
    engine = dashboard_env.engine
    key = _worst(engine, "klinik-drift", "chat", "fact_mismatches")
    at = on_page(with_oidc(app()).run(), "pair", pair=key)
    assert "Signed in as **eng.lead@klinik.example**" in "\n".join(m.value for m in at.sidebar.markdown)
    shown = html(at)
    assert '<del class="number"' in shown
    assert '<ins class="number"' in shown
    assert "negation" in shown
    assert '<mark class="critical contradiction"' in shown  # the clinical differences, marked in place
    facts = at.table[-1].value
    assert "critical" in {str(k) for k in facts["severity"]}
    assert {"dose", "assertion"} & {str(k) for k in facts["slot"]}
    content = load_payload(engine, key, None)
    assert content is not None
    assert content.candidate is not None
    # Every word of the candidate's answer is on the page (escaped as HTML, nothing lost).
    assert content.candidate.split()[0] in shown


def test_the_pair_page_aligns_transcripts_word_by_word(dashboard_env: Filled) -> None:
    key = _worst(dashboard_env.engine, "klinik-drift", "audio", "wer")
    at = on_page(with_oidc(app()).run(), "pair", pair=key)
    shown = html(at)
    assert "<del>" in shown or "<del " in shown  # dropped words: only the primary heard them
    caption = markdown(at)
    assert "missing" in caption
    assert "WER" in caption


def test_the_tenant_page_shows_distributions_and_links_worst_examples(dashboard_env: Filled) -> None:
    at = on_page(app().run(), "tenant", tenant="klinik-drift", route="chat")
    assert at.radio(key="sg-tenant-route").value == "chat"
    chat = at.main
    tables = [t.value for t in chat.table]
    latency = next(t for t in tables if "side" in getattr(t, "columns", []))
    assert list(latency["side"])[:2] == ["primary, total", "candidate, total"]
    assert {"p50", "p95", "p99"} <= set(latency.columns)
    assert "similarity" in "\n".join(m.value for m in chat.markdown).lower()
    charts = chat.get("vega_lite_chart")
    assert len(charts) >= 3  # two CDFs (total, first byte) and the similarity histogram
    pair_links = [el for el in chat.get("page_link") if str(el.proto.query_string).startswith("pair=")]
    assert pair_links
    keys = {str(el.proto.query_string).removeprefix("pair=") for el in pair_links}
    mismatched = {
        w.key
        for w in worst_pairs(
            dashboard_env.engine, "klinik-drift", "chat", "fact_mismatches", 10, ascending=False
        )
    }
    assert mismatched & keys
    assert any("Do not cut over" in m.value for m in chat.markdown)  # the gate's reasons, in words
    assert "the noise floor is primary vs a second primary answer" in markdown(at)  # secondary_rate 0.5
    p50 = latency_quantiles(dashboard_env.engine, (0.5,), tenant="klinik-drift", route="chat")
    candidate = next(r for _, r in latency.iterrows() if r["side"] == "candidate, total")
    assert candidate["p50"] == f"{p50['candidate_total_ms'][0.5]:.0f} ms"

    at.radio(key="sg-tenant-route").set_value("audio").run()
    assert "Word error rate" in markdown(at)
    assert any(str(el.proto.label).startswith("WER ") for el in at.get("page_link"))


def test_the_audit_page_offers_both_exports(dashboard_env: Filled) -> None:
    at = on_page(app().run(), "audit")
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download JSON lines", "Download CSV"]
    assert any("Head: seq" in c.value for c in at.caption)


def test_cut_over_is_offered_only_on_go_and_rolls_back(dashboard_env: Filled) -> None:
    at = signed_in(app())
    pick(at, "sg-board-pick", "klinik-drift / chat")
    at.run()
    assert at.button(key="sg-cutover-klinik-drift-chat").disabled  # NO-GO
    pick(at, "sg-board-pick", "klinik-same / chat")
    at.run()
    assert not at.button(key="sg-cutover-klinik-same-chat").disabled
    assert at.button(key="sg-rollback-klinik-same-chat").disabled
    at.text_input(key="sg-reason-klinik-same-chat").input("approved this morning")
    at.button(key="sg-cutover-klinik-same-chat").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    try:
        assert at.button(key="sg-cutover-klinik-same-chat").disabled
        assert not at.button(key="sg-rollback-klinik-same-chat").disabled
        at.text_input(key="sg-reason-klinik-same-chat").input("checking the roll back")
        at.button(key="sg-rollback-klinik-same-chat").click().run()
        assert not at.error, [e.value for e in at.error]
    finally:
        from dashboard.actions import mode_of

        if mode_of(dashboard_env.settings, "klinik-same", "chat") != "mirror":
            from gate.cutover import rollback

            rollback(dashboard_env.settings, tenant="klinik-same", route="chat", by="test", reason="cleanup")
    done = entries(dashboard_env.engine, tenant="klinik-same", route="chat", limit=2)
    assert [(e.action, e.actor) for e in done] == [("rollback", "local:alice"), ("cutover", "local:alice")]


def test_a_replay_started_from_the_page_is_watched_to_the_end(
    dashboard_env: Filled, embedder: Embedder
) -> None:
    at = on_page(signed_in(app()), "replay")
    at.selectbox(key="sg-replay-tenant").select("klinik-same")
    at.selectbox(key="sg-replay-route").select("embed")
    at.number_input[0].set_value(50.0)
    at.text_input(key="sg-replay-reason").input("the candidate's new embedding build")
    next(b for b in at.button if b.label == "Start replay").click().run()
    assert not at.exception, at.exception
    started = [s.value for s in at.success]
    assert started
    assert started[0].startswith("Replay replay-")
    run_id = started[0].split()[1]

    assert JOBS.wait(run_id, 30)
    job = JOBS.get(run_id)
    assert job is not None
    assert job.error is None
    expected = sum(v.pairs for v in pair_volumes(dashboard_env.engine, tenant="klinik-same", route="embed"))
    assert job.matched == expected
    assert job.summary is not None
    assert job.summary["sent"] == expected

    asyncio.run(_score(dashboard_env, embedder))
    assert replay_runs(dashboard_env.engine, run_id=run_id)[0].pairs == expected
    at.run()
    assert any(
        f"{expected} of {expected} replayed pairs scored" in str(p.proto.text) for p in at.get("progress")
    )
    start = entries(dashboard_env.engine, action="replay_start", limit=1)[0]
    assert (start.actor, json.loads(start.details)["run_id"]) == (f"local:{USER}", run_id)


async def _score(filled: Filled, embedder: Embedder) -> None:
    redis = Redis.from_url(TEST_REDIS_URL)
    try:
        worker = ScoringWorker(redis, filled.settings, filled.engine, embedder)
        await asyncio.wait_for(worker.run(asyncio.Event(), burst=True), 60)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("page", ["board", "tenant", "pair", "review", "replay", "audit"])
def test_every_page_renders_on_an_empty_store(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("SHADOWGATE_") and "TEST_" not in n]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SHADOWGATE_DB_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    at = app().run()
    if page != "board":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
