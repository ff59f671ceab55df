"""Audit: the hash-chained log of verdicts and decisions, whether the chain holds, and an export."""

from __future__ import annotations

import io

import streamlit as st

from dashboard import context, data
from store import audit

settings, _ = context.page()
url = settings.database_url

st.title("Audit log")
st.caption(
    "Every verdict, approval, hold, cutover, rollback, replay and policy change, with who and why. Each "
    "entry names the one before it by hash, so a change anywhere breaks the chain from there on."
)

result = data.audit_verify(url)
head = data.audit_head(url)
if result.ok:
    st.success(f"Chain verified: {result.entries} entries, every hash and link intact.")
else:
    st.error(
        f"Chain broken at entry {result.first_bad}: {result.problem}. "
        f"{result.entries} entries before it check out."
    )
if head is not None:
    st.caption(
        f"Head: seq {head[0]}, hash `{head[1]}`. Record it somewhere the log's writers cannot change "
        "(a signed report): the chain cannot show entries cut off its end."
    )

c1, c2, c3, c4 = st.columns(4)
tenant = c1.text_input("Tenant", key="sg-audit-tenant").strip() or None
route = c2.text_input("Route", key="sg-audit-route").strip() or None
action = c3.selectbox(
    "Action",
    [
        "(all)",
        "approve",
        "hold",
        "cutover",
        "rollback",
        "verdict",
        "replay_start",
        "gate_run",
        "policy_change",
    ],
    key="sg-audit-action",
)
limit = c4.number_input("Newest", min_value=10, max_value=5000, value=200, step=50)
entries = data.audit_entries(url, tenant, route, None if action == "(all)" else action, int(limit))
if not entries:
    st.info("No entries match.")
else:
    st.dataframe(
        [
            {
                "seq": e["seq"],
                "at": e["at"],
                "actor": e["actor"],
                "action": e["action"],
                "tenant": e["tenant"],
                "route": e["route"],
                "reason": e["reason"],
                "details": e["details"],
                "hash": str(e["hash"])[:16] + "…",
            }
            for e in entries
        ],
        hide_index=True,
    )


def export(fmt: str) -> str:
    out = io.StringIO(newline="")
    audit.export(data.engine(url), out, "csv" if fmt == "csv" else "jsonl")
    return out.getvalue()


st.markdown("#### Export for an auditor")
st.caption(
    "Every entry with its hashes, oldest first; `store.audit.verify_jsonl` (or any re-implementation of "
    "the rule in store/audit.py) checks it without the database."
)
cols = st.columns(2)
cols[0].download_button(
    "Download JSON lines", data=lambda: export("jsonl"), file_name="audit.jsonl", mime="application/jsonl"
)
cols[1].download_button("Download CSV", data=lambda: export("csv"), file_name="audit.csv", mime="text/csv")
