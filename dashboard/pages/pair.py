"""Pair: one exchange side by side — request, both answers with their differences, timings, models."""

from __future__ import annotations

import logging

import streamlit as st

from dashboard import actions, context, data, diffs
from shadowgate.crypto import CryptoError
from store.queries import PairRecord

log = logging.getLogger("shadowgate.dashboard")
settings, identity = context.page()
url = settings.database_url

st.title("Pair")
asked = st.query_params.get("pair", "")
key = st.text_input(
    "Pair key", value=asked, key="sg-pair-key", help="Reached from every worst-examples list."
)
if not key:
    st.info("Open a pair from a worst-examples list on the Board or Tenant page, or paste its key.")
    st.stop()
if key != asked:
    st.query_params["pair"] = key

record = data.pair(url, key.strip())
if record is None:
    st.warning(f"No pair with key {key!r} in the store.")
    st.stop()


def _ms(v: object) -> str:
    return f"{v:,.0f} ms" if isinstance(v, int | float) else "—"


def header(r: PairRecord) -> None:
    traffic = f"replay {r.replay}" if r.replay else "live"
    st.markdown(f"**{r.tenant} / {r.route}** · {traffic} · exchange `{r.exchange_id}`")
    st.caption(
        f"captured {r.captured_at:%Y-%m-%d %H:%M:%S} UTC · scored {r.scored_at:%Y-%m-%d %H:%M:%S} UTC · "
        f"key {r.key}"
    )
    rows = [
        {
            "side": side,
            "status": s.get("status"),
            "error": s.get("error") or "",
            "total": _ms(s.get("total_ms")),
            "first byte": _ms(s.get("ttfb_ms")),
            "model": s.get("model") or "",
            "version": s.get("model_version") or "",
            "GPU": s.get("gpu") or "",
        }
        for side, s in r.sides.items()
    ]
    st.table(rows)
    scores = r.scores.get("candidate", {})
    if scores:
        with st.expander("Scores against the primary", expanded=False):
            st.table([{"metric": k, "value": round(v, 4)} for k, v in sorted(scores.items())])
    found = r.findings.get("candidate", {})
    if found:
        st.caption("Differences found: " + ", ".join(f"{n} {kind}" for kind, n in sorted(found.items())))


header(record)

st.divider()
if identity is None:
    st.info(
        "The request and the answers are clinical text: sign in to read them. Every figure above is metadata."
    )
    st.stop()

try:
    content = data.payload(settings, record.key)
except CryptoError as exc:  # a key missing from this dashboard's settings, or a tampered cell
    st.error(f"This pair's content cannot be opened here: {exc}")
    st.stop()
log.info("dashboard: %s read the content of pair %s", identity.actor, record.key)
if content is None:
    st.warning("This pair's content is not in the store (purged by retention, or never kept).")
    st.stop()

with st.expander("Request", expanded=False):
    language, text = diffs.request_text(content.request)
    st.code(text, language=language, wrap_lines=True)

primary, candidate = content.primary or "", content.candidate or ""
if record.route == "audio":
    st.markdown("#### Transcripts, word by word")
    st.caption(
        "After the pinned normalization WER uses: struck-through words only the primary heard, underlaid "
        "words only the candidate heard; outlined: numbers and negations."
    )
    alignment = diffs.transcript_alignment(primary, candidate)
    st.html(alignment.html)
    wer = alignment.wer
    st.caption(
        f"{alignment.substitutions} substituted, {alignment.deletions} missing, {alignment.insertions} extra "
        f"of {alignment.reference_words} words" + (f" · WER {wer:.3f}" if wer is not None else "")
    )
    cols = st.columns(2)
    cols[0].markdown("**Primary, as returned**")
    cols[0].text(primary)
    cols[1].markdown("**Candidate, as returned**")
    cols[1].text(candidate)
else:
    st.markdown("#### Answers")
    st.caption(
        "Struck through: only the primary says it; underlaid: only the candidate says it; outlined in "
        "yellow: a changed number; in purple: a changed negation."
    )
    left, right = diffs.side_by_side_html(diffs.word_diff(primary, candidate))
    cols = st.columns(2)
    with cols[0]:
        st.markdown("**Primary** (what the user got)")
        st.html(left)
    with cols[1]:
        st.markdown("**Candidate** (never shown to a user)")
        st.html(right)

facts = diffs.clinical_view(primary, candidate)
st.markdown("#### Clinical facts")
if facts.unscorable is not None:
    st.warning(f"The clinical facts could not be read: {facts.unscorable}.")
elif facts.rows:
    st.caption(
        "Each difference marked where it stands, numbered as in the table: red critical, yellow major, "
        "blue minor. Hover a mark for its kind."
    )
    cols = st.columns(2)
    with cols[0]:
        st.markdown("**Primary**")
        st.html(facts.primary_html)
    with cols[1]:
        st.markdown("**Candidate**")
        st.html(facts.candidate_html)
    st.table(facts.table())
else:
    st.caption("The two answers state the same clinical facts.")

if record.scores.get("candidate", {}).get("clinical_ok") == 0.0:
    st.markdown("#### Review this flag")
    current = actions.review_of(settings, record.key)
    if current is not None:
        st.caption(
            f"Marked {current.replace('_', ' ')}; a new mark replaces it (both stay in the audit log)."
        )
    with st.form("sg-review"):
        choice = st.radio(
            "The critical difference is",
            ["real", "false_alarm"],
            format_func=lambda m: {"real": "a real difference", "false_alarm": "a scorer false alarm"}[m],
            horizontal=True,
        )
        note = st.text_input("Why (goes into the audit log with your name; no patient data)")
        if st.form_submit_button("Record the mark"):
            try:
                actions.review_flag(settings, identity, pair_key=record.key, mark=choice, note=note)
            except actions.ActionError as exc:
                st.error(f"Not recorded: {exc}.")
            else:
                st.success(f"Recorded: {identity.actor} marks this flag {choice.replace('_', ' ')}.")
fields = diffs.json_rows(primary, candidate)
if fields is not None:
    st.markdown("#### JSON fields")
    if fields:
        st.table(
            [
                {"kind": r.kind, "path": r.where, "primary": r.primary, "candidate": r.candidate}
                for r in fields
            ]
        )
    else:
        st.caption("Both answers are the same JSON.")
if content.secondary is not None:
    with st.expander("The noise floor's second primary answer"):
        st.text(content.secondary)
