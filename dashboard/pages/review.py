"""Review: the critical clinical flags nobody has marked, one tenant x route's queue, one pair at a time."""

from __future__ import annotations

import logging

import streamlit as st

from dashboard import actions, context, data, diffs, signin, widgets
from shadowgate.crypto import CryptoError
from store.reviews import Flagged

log = logging.getLogger("shadowgate.dashboard")
settings, identity = context.page()
url = settings.database_url

PICK, NOTE, SHOW_DONE = "sg-review-pick", "sg-review-note", "sg-review-show-done"
_AT = "shadowgate.review.at"  # per tenant x route: (the key shown, its place in the queue)
_FLASH = "shadowgate.review.flash"
QUEUE_LIMIT = 500
# Ctrl (⌘ on a Mac) and Shift: these fire while the note field has focus, where Streamlit lets a
# single-letter shortcut type its letter instead; R and C are Streamlit's own (rerun, clear cache).
KEYS = {"real": "Ctrl+Shift+D", "false_alarm": "Ctrl+Shift+F", "skip": "Ctrl+Shift+S"}
LABELS = {"real": "a real difference", "false_alarm": "a scorer false alarm"}
Scope = tuple[str, str]


def say(kind: str, message: str) -> None:
    """A message for the next run of the page (after a button's callback)."""
    st.session_state[_FLASH] = (kind, message)


def flash() -> None:
    kind, message = st.session_state.pop(_FLASH, (None, None))
    if kind == "success":
        st.success(message)
    elif kind == "error":
        st.error(message)
    elif kind == "info":
        st.info(message)


def record(key: str, verdict: str) -> None:
    """The mark buttons' callback: record the mark on the pair the person saw, then the page moves on."""
    note = str(st.session_state.get(NOTE, ""))
    who = signin.current(settings)
    if not note.strip():
        say("error", "Not recorded: write a note saying why; it goes into the audit log with your name.")
        return
    try:
        actions.review_flag(settings, who, pair_key=key, mark=verdict, note=note, replace=False)
    except actions.ActionError as exc:
        say("error", f"Not recorded: {exc}.")
    else:
        assert who is not None  # review_flag refuses no one signed in
        log.info("dashboard: %s marked pair %s %s", who.actor, key, verdict)
        say("success", f"Recorded: {who.actor} marks pair {key} {LABELS[verdict]}.")
        st.session_state[NOTE] = ""
    data.forget()  # the board's counts, and the queue's pair that someone else may have marked


def skip(scope: Scope, position: int, total: int) -> None:
    """The Skip button's callback: the next pair, nothing recorded; after the last, the first again."""
    st.session_state[NOTE] = ""
    if position + 1 < total:
        st.session_state[_AT][scope] = (None, position + 1)
    else:
        st.session_state[_AT][scope] = (None, 0)
        say("info", "That was the last pair in the queue: back to the first one you skipped.")


def scopes(counts: dict[Scope, int]) -> list[Scope]:
    """Tenant x routes with flags awaiting review, most first; the one picked earlier stays, even empty."""
    found = sorted(counts, key=lambda s: (-counts[s], s))
    picked = st.session_state.get(PICK)
    if isinstance(picked, tuple) and picked not in counts:
        found.append(picked)
    return found


def first_index(options: list[Scope]) -> int:
    """The tenant x route in the URL (?tenant=&route=), else the one with the most flags awaiting."""
    asked = (st.query_params.get("tenant", ""), st.query_params.get("route", ""))
    return options.index(asked) if asked in options else 0


def position(queue: list[Flagged], scope: Scope) -> int:
    """Where the reviewer is in this queue: the pair shown before while it is still there, else the one
    that took its place (after a mark, that is the next pair)."""
    at = st.session_state.setdefault(_AT, {}).get(scope)
    keys = [f.key for f in queue]
    if at is None:
        return 0
    key, index = at
    return keys.index(key) if key in keys else min(index, len(queue) - 1)


def answers(key: str) -> None:
    """The two answers side by side with their clinical differences marked, and the list of them."""
    try:
        content = data.payload(settings, key)
    except CryptoError as exc:
        st.error(f"This pair's content cannot be opened here: {exc}")
        return
    assert identity is not None
    log.info("dashboard: %s read the content of pair %s", identity.actor, key)
    if content is None:
        st.warning(
            "This pair's answers are no longer stored (purged by retention): skip it, or mark it "
            "from what the Pair page still shows."
        )
        return
    facts = diffs.clinical_view(content.primary or "", content.candidate or "")
    if facts.unscorable is not None:
        st.warning(f"The clinical facts could not be read: {facts.unscorable}.")
    cols = st.columns(2)
    with cols[0]:
        st.markdown("**Primary** (what the user got)")
        st.html(facts.primary_html)
    with cols[1]:
        st.markdown("**Candidate** (never shown to a user)")
        st.html(facts.candidate_html)
    if not facts.rows:
        st.caption("Read again now, the two answers state the same clinical facts.")
        return
    st.caption("Red critical, yellow major, blue minor; numbered as in the table.")
    st.table(facts.table())


def mark_form(scope: Scope, key: str, index: int, total: int) -> None:
    """The note and the three buttons, each bound to the pair shown (a callback's arguments)."""
    with st.form("sg-review-form", enter_to_submit=False):
        st.text_input(
            "Note (goes into the audit log with your name; no patient data)",
            key=NOTE,
            placeholder="why: e.g. the same dose written two ways",
        )
        cols = st.columns(3)
        cols[0].form_submit_button(
            "Real difference",
            key="sg-review-real",
            type="primary",
            shortcut=KEYS["real"],
            on_click=record,
            args=(key, "real"),
        )
        cols[1].form_submit_button(
            "Scorer false alarm",
            key="sg-review-false-alarm",
            shortcut=KEYS["false_alarm"],
            on_click=record,
            args=(key, "false_alarm"),
        )
        cols[2].form_submit_button(
            "Skip", key="sg-review-skip", shortcut=KEYS["skip"], on_click=skip, args=(scope, index, total)
        )
    st.caption(
        f"Keys, also while typing the note: {KEYS['real']} real difference · {KEYS['false_alarm']} false "
        f"alarm · {KEYS['skip']} skip (Ctrl is ⌘ on a Mac). A mark goes into the audit log with your name."
    )


def one_pair(scope: Scope, queue: list[Flagged], total: int) -> None:
    """The pair the reviewer is at, its place in the queue, and (signed in) its answers and the buttons."""
    index = position(queue, scope)
    flag = queue[index]
    st.session_state[_AT][scope] = (flag.key, index)
    st.markdown(f"**{index + 1} of {total} awaiting** in {scope[0]} / {scope[1]}")
    st.caption(f"key {flag.key} · captured {flag.captured_at:%Y-%m-%d %H:%M:%S} UTC")
    st.page_link(widgets.PAIR_PAGE, label="Everything about this pair", query_params={"pair": flag.key})
    if identity is None:
        st.info("Sign in to read the two answers and to mark flags: each mark is recorded with your name.")
        return
    answers(flag.key)
    mark_form(scope, flag.key, index, total)


def reviewed_list(scope: Scope) -> None:
    """The pairs of this tenant x route marked already: which mark, by whom, when, and the note."""
    if not st.toggle("Show the reviewed pairs too", key=SHOW_DONE):
        return
    done = data.reviewed(url, *scope)
    if not done:
        st.caption(f"Nobody has reviewed a pair of {scope[0]} / {scope[1]} yet.")
        return
    st.dataframe(
        [
            {
                "pair": r.key,
                "mark": LABELS[r.mark].removeprefix("a "),
                "by": r.actor,
                "when": f"{r.reviewed_at:%Y-%m-%d %H:%M} UTC",
                "note": r.note or "",
            }
            for r in done
        ],
        hide_index=True,
    )
    st.caption("Open one by its key on the Pair page; a new mark there replaces the old (both stay audited).")


st.title("Review")
st.caption(
    "Critical clinical flags on live pairs that no clinician has marked yet, oldest first: mark each a "
    "real difference or a scorer false alarm. The gate holds a tenant × route while its flags wait."
)
flash()
counts = data.awaiting_review(url)
if not counts:
    st.success(
        "No critical clinical flag awaits review: every flag the scorer raised is marked. New ones appear "
        "here as the worker scores live traffic."
    )
options = scopes(counts)
if options:
    st.caption(f"{sum(counts.values())} flag(s) await review in {len(counts)} tenant × route(s).")
    picked: Scope = st.selectbox(
        "Tenant × route",
        options,
        index=first_index(options),
        key=PICK,
        format_func=lambda s: f"{s[0]} / {s[1]} · {counts.get(s, 0)} awaiting",
    )
    queue = data.review_queue(url, *picked, limit=QUEUE_LIMIT)
    if queue:
        one_pair(picked, queue, len(queue) if len(queue) < QUEUE_LIMIT else counts.get(picked, len(queue)))
    else:
        st.success(f"Every flag of {picked[0]} / {picked[1]} is reviewed.")
    st.divider()
    reviewed_list(picked)
