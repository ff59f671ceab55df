"""Replay: send a tenant x route's captured window to the candidate again, and watch it go through."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import actions, context, data
from dashboard.replays import JOBS, ReplayJob

settings, identity = context.page()
url = settings.database_url

st.title("Replay")
st.caption(
    "Captures stay in the Redis stream after dispatch; a replay sends a window of them to the candidate "
    "again (after a fix, or a new model build). Its pairs carry the run id and never count as live."
)

known = data.tenants(url)
with st.form("sg-replay-form"):
    c1, c2, c3 = st.columns(3)
    tenant = c1.selectbox("Tenant", known, key="sg-replay-tenant", accept_new_options=True)
    route = c2.selectbox(
        "Route", ["chat", "audio", "reason", "vision", "embed", "rerank"], key="sg-replay-route"
    )
    window = c3.selectbox(
        "Captured in the", [w for w in data.WINDOWS if w != "all time"] + ["all time"], index=2
    )
    c4, c5 = st.columns([1, 3])
    speed = c4.number_input(
        "Speed (× the original pace)", min_value=0.1, max_value=1000.0, value=1.0, step=1.0
    )
    reason = c5.text_input("Reason (goes into the audit log with your name)", key="sg-replay-reason")
    start = st.form_submit_button("Start replay", type="primary", disabled=identity is None)
if identity is None:
    st.info("Sign in to start a replay: every replay is recorded with who started it.")
if start and tenant:
    span = data.WINDOWS.get(window)
    since_ms = None if span is None else int((datetime.now(UTC) - span).timestamp() * 1000)
    try:
        job = actions.start_replay(
            JOBS,
            settings,
            identity,
            tenant=str(tenant),
            route=route,
            since_ms=since_ms,
            until_ms=None,
            speed=float(speed),
            reason=reason,
        )
    except actions.ActionError as exc:
        st.error(str(exc))
    else:
        data.forget()
        st.success(f"Replay {job.run_id} started.")


def show(job: ReplayJob) -> None:
    scored = data.replay_progress(url, job.run_id)
    with st.container(border=True):
        st.markdown(
            f"**{job.run_id}** · {job.tenant} / {job.route} · ×{job.speed:g} · by {job.by} · **{job.state}**"
        )
        total = job.matched
        if job.error:
            st.error(job.error)
        elif total == 0:
            st.warning("No captures in that window for this tenant and route.")
        elif total is not None:
            sent = job.summary["sent"] if job.summary else None
            st.progress(
                min(scored / total, 1.0), text=f"{scored} of {total} replayed pairs scored into the store"
            )
            if job.summary:
                errors = ", ".join(f"{k} {v}" for k, v in sorted(job.summary["errors"].items())) or "none"
                st.caption(
                    f"sent {sent}, answered {job.summary['ok']}, errors: {errors}; "
                    f"{job.summary['seconds']:.1f} s (scoring needs a running `shadowgate worker`)"
                )
        st.page_link(
            "pages/tenant.py",
            label="See this run on the Tenant page",
            query_params={"tenant": job.tenant, "route": job.route, "replay": job.run_id},
        )


@st.fragment(run_every=2)
def progress() -> None:
    started = JOBS.all()
    if started:
        st.subheader("Started here")
        for job in started:
            show(job)
    earlier = [r for r in data.runs(url) if all(j.run_id != r.run_id for j in started)]
    if earlier:
        st.subheader("Replay runs in the store")
        st.table(
            [
                {
                    "run": r.run_id,
                    "pairs scored": r.pairs,
                    "candidate errors": r.candidate_errors,
                    "last scored": f"{r.last_scored_at:%Y-%m-%d %H:%M:%S}" if r.last_scored_at else "",
                }
                for r in earlier
            ]
        )


progress()
