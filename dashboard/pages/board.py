"""Board: every tenant x route's verdict, the metric that decided it, and its trend since yesterday."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import actions, context, data, widgets
from dashboard.cells import Board, Cell
from gate.policy import PolicyError

settings, identity = context.page()
url = settings.database_url
configured = tuple(t.id for t in settings.tenants)
names = {t.id: t.name for t in settings.tenants if t.name}

st.title("Cutover board")
st.caption(
    "Each cell: the gate's latest verdict, the pairs it judged, the metric that decided it against its "
    "limit, and how it moved since yesterday. Click a tenant for its routes; decide below."
)


def cell_markdown(c: Cell | None, flags: int = 0) -> str:
    if c is None:
        return ":gray[—]"
    lines = [widgets.badge(c.status)]
    if flags:
        lines.append(f":orange[**{flags} critical flag{'s' if flags > 1 else ''} await review**]")
    if c.status is None:
        lines.append(f":gray[{c.pairs} pairs in 24 h, not judged yet]")
        return "  \n".join(lines)
    lines.append(f"{c.n} pairs judged")
    if c.decisive is not None:
        lines.append(f":gray[{c.decisive.text}]")
    elif c.reasons:
        lines.append(f":gray[{c.reasons[0]}]")
    arrow = f"{c.trend.arrow} " if c.trend.arrow and c.trend.arrow != "new" else ""
    lines.append(f":gray[{arrow}{c.trend.text}]")
    return "  \n".join(lines)


def grid(b: Board) -> None:
    if not b.cells:
        st.info(
            "No pairs and no verdicts yet. Send traffic through the tap (or run `shadowgate demo`), let the "
            "worker score it, then run the gate (`shadowgate gate`, or the button below)."
        )
        return
    counts = b.counts()
    st.markdown(" · ".join(f"{widgets.badge(k)} {counts[v]}" for k, v in _order(counts)))
    widths = [2] + [3] * len(b.routes)
    head = st.columns(widths)
    head[0].markdown("**tenant**")
    for col, route in zip(head[1:], b.routes, strict=True):
        col.markdown(f"**{route}**")
    waiting = data.awaiting_review(url)
    if waiting:
        st.markdown(
            f":orange[**{sum(waiting.values())} critical clinical flag(s) await a clinician's review**] "
            "(or `shadowgate review queue`)."
        )
        st.page_link(
            widgets.REVIEW_PAGE, label="Review them, one pair at a time", icon=":material/rate_review:"
        )
    for tenant in b.tenants:
        row = st.columns(widths, border=True)
        with row[0]:
            st.page_link(widgets.TENANT_PAGE, label=tenant, query_params={"tenant": tenant})
            if tenant in names:
                st.caption(names[tenant])
        for col, route in zip(row[1:], b.routes, strict=True):
            col.markdown(cell_markdown(b.cell(tenant, route), waiting.get((tenant, route), 0)))


def _order(counts: dict[str, int]) -> list[tuple[str | None, str]]:
    known = [("GO", "GO"), ("HOLD", "HOLD"), ("NO_GO", "NO-GO"), ("INSUFFICIENT_DATA", "INSUFFICIENT DATA")]
    out: list[tuple[str | None, str]] = [(k, v) for k, v in known if v in counts]
    if "NOT JUDGED" in counts:
        out.append((None, "NOT JUDGED"))
    return out


@st.fragment(run_every=settings.dashboard.refresh_s)
def live_grid() -> None:
    grid(data.board(url, configured))
    st.caption(
        f"Updated {datetime.now(UTC):%H:%M:%S} UTC; refreshes every {settings.dashboard.refresh_s:g} s. "
        "Verdicts come from the gate (`shadowgate gate`); pairs are counted over the last 24 hours."
    )


live_grid()

st.divider()
board = data.board(url, configured)
options = {f"{t} / {r}": (t, r) for t, r in sorted(board.cells)}
left, right = st.columns([1, 2])
with left:
    st.subheader("Drill down")
    # A HOLD first (a person decides), else a GO (ready to approve), else whatever is there.
    first = next(
        (
            i
            for status in ("HOLD", "GO")
            for i, k in enumerate(options.values())
            if board.cells[k].status == status
        ),
        0,
    )
    picked = (
        st.selectbox("Tenant × route", list(options), index=first, key="sg-board-pick") if options else None
    )
    choice = options.get(picked) if picked else None
    if st.button("Run the gate now", disabled=identity is None, help="Judge every tenant x route now."):
        try:
            with st.spinner("The gate is judging every tenant × route…"):
                result = actions.run_gate(settings, identity)
        except (actions.ActionError, PolicyError) as exc:
            st.error(str(exc))
        else:
            data.forget()
            st.success(f"The gate judged {len(result.verdicts)} tenant × route(s).")
            st.rerun()
with right:
    if choice is not None:
        cell = board.cell(*choice)
        assert cell is not None
        tenant, route = choice
        st.markdown(f"### {tenant} / {route}  {widgets.badge(cell.status)}")
        if cell.verdict_at is not None:
            st.caption(f"verdict #{cell.verdict_id} at {cell.verdict_at:%Y-%m-%d %H:%M:%S} UTC")
        for reason in cell.reasons or ["Every judged metric is within its limit."]:
            st.markdown(f"- {reason}")
        st.page_link(
            widgets.TENANT_PAGE,
            label=f"Distributions and worst examples of {tenant} / {route}",
            query_params={"tenant": tenant, "route": route},
        )
        if cell.worst:
            with st.expander("The gate's worst examples"):
                for metric, keys in cell.worst.items():
                    st.markdown(f"**{metric}**")
                    widgets.key_links(keys)
        widgets.decision_panel(settings, identity, tenant, route, cell.status)
