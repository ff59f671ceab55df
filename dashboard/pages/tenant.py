"""Tenant: per route over a window — latency and TTFT, errors, similarity, WER, clinical facts, the gate."""

from __future__ import annotations

import streamlit as st

from dashboard import context, data, widgets
from dashboard.data import RouteDetail

settings, identity = context.page()
url = settings.database_url

st.title("Tenant")
known = data.tenants(url)
if not known:
    st.info("No pairs in the store yet.")
    st.stop()

asked = st.query_params.get("tenant")
c1, c2, c3 = st.columns(3)
tenant = c1.selectbox("Tenant", known, index=known.index(asked) if asked in known else 0, key="sg-tenant")
window = c2.selectbox("Window", list(data.WINDOWS), index=2, key="sg-window")
runs = [r.run_id for r in data.runs(url, tenant=tenant)]
asked_run = st.query_params.get("replay")
traffic = c3.selectbox(
    "Traffic",
    ["live", *runs],
    index=1 + runs.index(asked_run) if asked_run in runs else 0,
    key="sg-traffic",
    help="Live pairs, or the pairs of one replay run (never mixed).",
)
replay = None if traffic == "live" else traffic
st.query_params["tenant"] = tenant

routes = data.routes(url, tenant, window, replay)
if not routes:
    st.info(f"No {'live ' if replay is None else ''}pairs for {tenant} in the {window}.")
    st.stop()
if st.session_state.get("sg-tenant-route") not in routes:  # first visit, or another tenant's routes
    asked_route = st.query_params.get("route")
    st.session_state["sg-tenant-route"] = asked_route if asked_route in routes else routes[0]


def _ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def latency_section(d: RouteDetail) -> None:
    st.markdown("#### Latency")
    rows = []
    for name, label in (
        ("primary_total_ms", "primary, total"),
        ("candidate_total_ms", "candidate, total"),
        ("primary_ttfb_ms", "primary, first byte (TTFT of streams)"),
        ("candidate_ttfb_ms", "candidate, first byte (TTFT of streams)"),
    ):
        q = d.cdf.get(name, {})
        rows.append({"side": label, **{f"p{round(k * 100)}": _ms(q.get(k)) for k in data.QS}})
    st.table(rows)
    for kind, label in (("total", "total time"), ("ttfb", "time to first byte")):
        points: dict[str, list[object]] = {"milliseconds": [], "share of pairs at or below": [], "side": []}
        for side in ("primary", "candidate"):
            for share, ms in d.cdf.get(f"{side}_{kind}_ms", {}).items():
                if ms is not None:
                    points["milliseconds"].append(ms)
                    points["share of pairs at or below"].append(share)
                    points["side"].append(side)
        if points["side"]:
            st.caption(f"Cumulative distribution of {label}")
            st.line_chart(points, x="milliseconds", y="share of pairs at or below", color="side", height=260)


def errors_section(d: RouteDetail) -> None:
    s = d.stats
    if s is None:
        return
    cols = st.columns(4)
    cols[0].metric("pairs", f"{s.pairs:,}")
    cols[1].metric(
        "scored", f"{s.scored:,}", help=f"{d.unscored:,} left unscored while the worker was behind"
    )
    cols[2].metric("candidate errors", f"{100 * s.candidate_errors / s.pairs:.1f} %" if s.pairs else "—")
    cols[3].metric("primary errors", f"{100 * s.primary_errors / s.pairs:.1f} %" if s.pairs else "—")


def histogram(d: RouteDetail, names: dict[str, str], x: str) -> None:
    points: dict[str, list[object]] = {x: [], "pairs": [], "compared": []}
    for key, label in names.items():
        h = d.histograms.get(key)
        if h is None:
            continue
        total = sum(h.counts) or 1
        for edge, n in zip(h.edges, h.counts, strict=True):
            points[x].append(round(edge, 3))
            points["pairs"].append(n / total)
            points["compared"].append(label)
    st.bar_chart(points, x=x, y="pairs", color="compared", stack=False, height=240, y_label="share of pairs")


def quality_section(d: RouteDetail) -> None:
    s = d.stats
    means = s.means if s else {}
    if "similarity" in d.histograms:
        st.markdown("#### Semantic similarity")
        sim = means.get("semantic_similarity")
        text = f"mean {sim:.3f}" if sim is not None else ""
        if "similarity_noise" in d.histograms:
            text += " · the noise floor is primary vs a second primary answer to the same request"
        st.caption(text)
        histogram(d, {"similarity": "candidate vs primary", "similarity_noise": "noise floor"}, "similarity")
    if "wer" in d.histograms:
        st.markdown("#### Word error rate (disagreement with the primary's transcript)")
        wer = means.get("wer")
        st.caption(f"mean {wer:.3f}" if wer is not None else "")
        histogram(d, {"wer": "candidate vs primary"}, "WER")
    facts = means.get("fact_mismatches")
    if facts is not None:
        st.markdown("#### Clinical facts")
        ok = means.get("clinical_ok")
        cols = st.columns(3)
        cols[0].metric(
            "pairs with a fact mismatch or flip", f"{100 * (1 - ok):.1f} %" if ok is not None else "—"
        )
        cols[1].metric("fact mismatches per pair", f"{facts:.2f}")
        flips = means.get("negation_flips")
        cols[2].metric("negation flips per pair", f"{flips:.2f}" if flips is not None else "—")
        if d.findings:
            st.table([{"kind": f.kind, "findings": f.findings, "pairs": f.pairs} for f in d.findings])


def gate_section(d: RouteDetail) -> None:
    v = d.verdict
    if v is None:
        st.caption(
            "The gate has not judged this route yet."
            if d.replay is None
            else "Replayed pairs are never judged."
        )
        return
    st.markdown(f"#### The gate says {widgets.badge(v.status)}")
    st.caption(
        f"verdict #{v.id} at {v.at:%Y-%m-%d %H:%M:%S} UTC over its own window, policy {v.policy_version}"
    )
    for reason in v.body.get("reasons") or ["Every judged metric is within its limit."]:
        st.markdown(f"- {reason}")
    with st.expander("Every metric the gate judged"):
        for m in v.body.get("metrics", []):
            st.markdown(f"- **{m.get('name')}** {m.get('status')}: {m.get('reason')}")


def worst_section(d: RouteDetail) -> None:
    if not d.worst and not (d.verdict and d.verdict.body.get("worst")):
        return
    st.markdown("#### Worst examples")
    for label, pairs in d.worst.items():
        with st.expander(label):
            widgets.pair_links(pairs, label.split()[-1])
    if d.verdict is not None:
        for metric, keys in d.verdict.body.get("worst", {}).items():
            with st.expander(f"the gate's examples for {metric}"):
                widgets.key_links(keys)


# One route at a time: each is a dozen aggregates over its window.
route = st.radio("Route", routes, horizontal=True, key="sg-tenant-route")
st.query_params["route"] = route
detail = data.route_detail(url, tenant, route, window, replay)
gate_section(detail)
errors_section(detail)
latency_section(detail)
quality_section(detail)
worst_section(detail)
if replay is None:
    st.divider()
    widgets.decision_panel(
        settings, identity, tenant, route, detail.verdict.status if detail.verdict else None
    )
