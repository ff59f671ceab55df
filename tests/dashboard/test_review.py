"""The Review page, headless (Streamlit's AppTest): critical clinical flags nobody has reviewed, queued per
tenant x route, marked one pair after another by a signed-in person.

Most tests run on the stores the real pipeline filled (both backends; they only add marks, on klinik-edge's
flags, and assert on what they added). Tests that need a store of their own (empty, a pair purged or marked
by someone else while the page shows it) get a fresh database of synthetic pairs, on both backends.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, delete
from streamlit.testing.v1 import AppTest

from store.audit import entries, verify
from store.db import init_db, make_engine
from store.models import PAIRS
from store.records import Payload
from store.reviews import awaiting, mark, marks, queue
from store.writes import save_scored
from tests.dashboard.conftest import USER, Filled, pg_database
from tests.dashboard.test_pages import app, html, markdown, on_page, signed_in, with_oidc
from tests.integration.test_gate import pairs

EDGE = ("klinik-edge", "chat")  # the pipeline's tenant x route whose flags these tests mark
MARK_KEYS = ("sg-review-real", "sg-review-false-alarm", "sg-review-skip")
# Synthetic answers only: the candidate doubles a dose and turns a denied symptom into a present one.
PRIMARY = "Paracetamol 500 mg orally every 6 hours for 3 days. Denies chest pain."
CANDIDATE = "Paracetamol 1000 mg orally every 6 hours for 3 days. Chest pain present."


def label(tenant: str, route: str, n: int) -> str:
    return f"{tenant} / {route} · {n} awaiting"


def review(at: AppTest, **params: str) -> AppTest:
    return on_page(at, "review", **params)


def pick(at: AppTest, tenant: str, route: str) -> AppTest:
    at.selectbox(key="sg-review-pick").set_value((tenant, route)).run()
    assert not at.exception, at.exception
    return at


def shown_key(at: AppTest) -> str:
    """The key of the pair the page shows now (its header caption says `key <key>`)."""
    found = [c.value for c in at.caption if str(c.value).startswith("key ")]
    assert len(found) == 1, markdown(at)
    return str(found[0]).split()[1]


def mark_with(at: AppTest, button: str, note: str) -> AppTest:
    at.text_input(key="sg-review-note").input(note)
    at.button(key=button).click().run()
    assert not at.exception, at.exception
    return at


def test_the_queue_is_shown_per_tenant_and_route(dashboard_env: Filled) -> None:
    engine = dashboard_env.engine
    waiting = awaiting(engine)
    at = review(with_oidc(app()).run())
    box = at.selectbox(key="sg-review-pick")
    ordered = sorted(waiting.items(), key=lambda kv: (-kv[1], kv[0]))
    assert list(box.options) == [label(t, r, n) for (t, r), n in ordered]
    assert box.index == 0  # the tenant x route with the most flags awaiting review
    (tenant, route), n = ordered[0]
    first = queue(engine, tenant=tenant, route=route)[0]
    assert shown_key(at) == first.key  # oldest first
    assert f"**1 of {n} awaiting**" in markdown(at)
    # Both answers with their clinical differences marked in place, and the list of differences.
    assert '<mark class="critical' in html(at)
    facts = at.table[-1].value
    assert {"severity", "kind", "slot", "primary", "candidate"} <= set(facts.columns)
    assert "critical" in {str(s) for s in facts["severity"]}

    pick(at, *EDGE)
    edge = queue(engine, tenant=EDGE[0], route=EDGE[1])
    assert shown_key(at) == edge[0].key
    assert f"**1 of {len(edge)} awaiting**" in markdown(at)


def test_a_false_alarm_is_recorded_with_who_and_why_and_the_next_pair_follows(
    dashboard_env: Filled,
) -> None:
    engine = dashboard_env.engine
    at = pick(review(signed_in(app())), *EDGE)
    before = queue(engine, tenant=EDGE[0], route=EDGE[1])
    assert len(before) >= 3
    key = shown_key(at)
    assert key == before[0].key

    mark_with(at, "sg-review-false-alarm", "both doses are the same, written two ways")
    assert marks(engine, [key]) == {key: "false_alarm"}
    last = entries(engine, action="review", limit=1)[0]
    assert (last.actor, last.tenant, last.route) == (f"local:{USER}", *EDGE)
    assert last.reason == "both doses are the same, written two ways"
    assert json.loads(last.details) == {"pair": key, "mark": "false_alarm"}
    assert verify(engine).ok
    assert any(f"local:{USER} marks" in s.value and "false alarm" in s.value for s in at.success)
    # On to the next pair, with an empty note; the marked one has left the queue.
    assert shown_key(at) == before[1].key
    assert f"**1 of {len(before) - 1} awaiting**" in markdown(at)
    assert at.text_input(key="sg-review-note").value == ""
    assert key not in {f.key for f in queue(engine, tenant=EDGE[0], route=EDGE[1])}

    at.button(key="sg-review-skip").click().run()  # skip: the next one, nothing recorded
    assert shown_key(at) == before[2].key
    assert f"**2 of {len(before) - 1} awaiting**" in markdown(at)
    assert marks(engine, [before[1].key]) == {}


def test_a_mark_needs_a_note(dashboard_env: Filled) -> None:
    engine = dashboard_env.engine
    at = pick(review(with_oidc(app()).run()), *EDGE)
    key = shown_key(at)
    seq = entries(engine, limit=1)[0].seq
    mark_with(at, "sg-review-real", "  ")
    assert any("Not recorded" in e.value and "note" in e.value for e in at.error)
    assert marks(engine, [key]) == {}
    assert entries(engine, limit=1)[0].seq == seq
    assert shown_key(at) == key  # still this pair


def test_without_a_sign_in_no_one_can_mark(dashboard_env: Filled) -> None:
    at = pick(review(app().run()), *EDGE)
    keys = {str(b.key) for b in at.button}
    assert not keys & set(MARK_KEYS)
    assert not [t for t in at.text_input if t.key == "sg-review-note"]
    assert any("Sign in" in i.value and "mark" in i.value for i in at.info)
    assert not at.get("html")  # no clinical text either
    waiting = awaiting(dashboard_env.engine)
    assert label(*EDGE, waiting[EDGE]) in at.selectbox(key="sg-review-pick").options


def test_a_reviewed_pair_leaves_the_queue_and_is_listed_with_who_when_and_why(dashboard_env: Filled) -> None:
    engine = dashboard_env.engine
    key = queue(engine, tenant=EDGE[0], route=EDGE[1])[-1].key
    mark(engine, key, "real", by="local:dr.siti", note="the candidate doubled the dose")
    st.cache_data.clear()  # what the page would do after its own mark
    at = pick(review(with_oidc(app()).run()), *EDGE)
    left = queue(engine, tenant=EDGE[0], route=EDGE[1])
    assert key not in {f.key for f in left}
    assert f"of {len(left)} awaiting**" in markdown(at)

    at.toggle(key="sg-review-show-done").set_value(True).run()
    assert not at.exception, at.exception
    done = at.dataframe[-1].value
    row = done[done["pair"] == key].iloc[0]
    assert (row["mark"], row["by"], row["note"]) == (
        "real difference",
        "local:dr.siti",
        "the candidate doubled the dose",
    )
    assert str(row["when"]).startswith(str(entries(engine, action="review", limit=1)[0].at)[:10])


def test_the_boards_awaiting_count_links_to_the_review_page(dashboard_env: Filled) -> None:
    at = app().run()
    assert not at.exception, at.exception
    link = next(el for el in at.get("page_link") if "Review" in str(el.proto.label))
    assert str(link.proto.page).endswith("review.py") or "review" in str(link.proto.page)


# --- a store of its own ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def own_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """An empty store of this test's own, which the dashboard is pointed at (no other settings)."""
    for name in [n for n in os.environ if n.startswith("SHADOWGATE_") and "TEST_" not in n]:
        monkeypatch.delenv(name)
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'review.db'}")
        drop = engine.dispose
    else:
        engine, drop = pg_database("sg_review")
    init_db(engine)
    monkeypatch.setenv("SHADOWGATE_DB_URL", engine.url.render_as_string(hide_password=False))
    st.cache_data.clear()
    try:
        yield engine
    finally:
        st.cache_data.clear()
        drop()


def flagged(engine: Engine, tenant: str, flags: int) -> list[str]:
    """`flags` synthetic pairs with a critical clinical flag and their answers; their keys, oldest first."""
    content = Payload(request=b'{"messages": []}', primary=PRIMARY, candidate=CANDIDATE)
    items = [dataclasses.replace(p, payload=content) for p in pairs(tenant, flags, mismatch_every=1)]
    save_scored(engine, items)
    return [f.key for f in queue(engine, tenant=tenant)]


def test_an_empty_queue_says_so(own_store: Engine) -> None:
    at = review(with_oidc(app()).run())
    assert any("No critical clinical flag awaits review" in s.value for s in at.success)
    assert not {str(b.key) for b in at.button} & set(MARK_KEYS)


def test_a_pair_marked_by_someone_else_meanwhile_is_not_marked_again(own_store: Engine) -> None:
    keys = flagged(own_store, "klinik-sintetik", 3)
    at = review(with_oidc(app()).run())
    assert shown_key(at) == keys[0]
    assert "1 of 3 awaiting" in markdown(at)
    mark(own_store, keys[0], "real", by="local:dr.siti", note="the dose doubled")  # in another browser
    mark_with(at, "sg-review-false-alarm", "looks the same to me")
    assert any("Not recorded" in e.value and "already marked" in e.value for e in at.error)
    assert marks(own_store, [keys[0]]) == {keys[0]: "real"}  # the other person's mark stands
    assert [e.actor for e in entries(own_store, action="review")] == ["local:dr.siti"]
    assert shown_key(at) == keys[1]
    assert "1 of 2 awaiting" in markdown(at)
    assert verify(own_store).ok


def test_a_pair_purged_meanwhile_is_not_marked(own_store: Engine) -> None:
    keys = flagged(own_store, "klinik-sintetik", 2)
    at = review(with_oidc(app()).run())
    assert shown_key(at) == keys[0]
    assert '<mark class="critical contradiction"' in html(at)
    with own_store.begin() as conn:  # retention, or an erasure request, while the page is open
        conn.execute(delete(PAIRS).where(PAIRS.c.key == keys[0]))
    mark_with(at, "sg-review-real", "the dose doubled")
    assert any("Not recorded" in e.value and "no pair" in e.value for e in at.error)
    assert entries(own_store, action="review") == []
    assert shown_key(at) == keys[1]
    assert "1 of 1 awaiting" in markdown(at)


def test_the_last_pair_marked_empties_the_queue(own_store: Engine) -> None:
    flagged(own_store, "klinik-sintetik", 1)
    at = review(with_oidc(app()).run())
    mark_with(at, "sg-review-real", "the dose doubled")
    assert any("marks" in s.value for s in at.success)
    assert any("No critical clinical flag awaits review" in s.value for s in at.success)
    assert awaiting(own_store) == {}
