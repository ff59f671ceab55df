"""Pieces several pages show: verdict badges, links to a pair, the decision buttons of a tenant x route."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dashboard import actions, data
from dashboard.auth import Identity
from dashboard.cells import COLORS, LABELS
from shadowgate.settings import Settings
from store.queries import WorstPair

PAIR_PAGE = "pages/pair.py"
TENANT_PAGE = "pages/tenant.py"
REVIEW_PAGE = "pages/review.py"
_FLASH = "shadowgate.flash"


def badge(status: str | None) -> str:
    """A verdict as a coloured markdown badge."""
    if status is None:
        return ":gray-badge[NOT JUDGED]"
    return f":{COLORS.get(status, 'gray')}-badge[**{LABELS.get(status, status)}**]"


def pair_links(pairs: Sequence[WorstPair], metric_label: str) -> None:
    """A "worst examples" list: each pair a link to the Pair page."""
    for w in pairs:
        st.page_link(
            PAIR_PAGE,
            label=f"{metric_label} {w.value:.3g} · {w.captured_at:%Y-%m-%d %H:%M:%S} · {w.key}",
            query_params={"pair": w.key},
        )


def key_links(keys: Sequence[str]) -> None:
    """Pair keys (the gate's worst examples) as links to the Pair page."""
    for key in keys:
        st.page_link(PAIR_PAGE, label=key, query_params={"pair": key})


def decision_panel(
    settings: Settings, identity: Identity | None, tenant: str, route: str, status: str | None
) -> None:
    """Approve / Hold / Cut over / Roll back on one tenant x route, each with a reason, into the audit log."""
    st.markdown(f"**Decide on {tenant} / {route}** — the current verdict is {badge(status)}")
    done = st.session_state.pop(_FLASH, None)
    if done:
        st.success(done)
    if identity is None:
        st.info(
            "Sign in to approve, hold, cut over or roll back: every decision is recorded with who made it."
        )
        return
    suffix = f"{tenant}-{route}"
    reason = st.text_input("Reason (goes into the audit log with your name)", key=f"sg-reason-{suffix}")
    mode = actions.mode_of(settings, tenant, route)
    cols = st.columns(4)
    approve = cols[0].button("Approve", key=f"sg-approve-{suffix}", type="primary")
    hold = cols[1].button("Hold", key=f"sg-hold-{suffix}")
    cut = cols[2].button(
        "Cut over",
        key=f"sg-cutover-{suffix}",
        disabled=status != "GO" or mode != "mirror",
        help="Serve this tenant x route from the candidate. Only when the latest verdict is GO and the "
        "route is in mirror mode (Redis reachable).",
    )
    back = cols[3].button(
        "Roll back",
        key=f"sg-rollback-{suffix}",
        disabled=mode != "cutover",
        help="Serve this tenant x route from the primary again (only when it is cut over).",
    )
    st.caption(f"Mode now: {mode or 'unknown (Redis not reachable)'}")
    try:
        if approve or hold:
            decision = "approve" if approve else "hold"
            actions.record_decision(
                settings, identity, tenant=tenant, route=route, decision=decision, reason=reason
            )
            done = f"Recorded: {identity.actor} {decision}s {tenant} / {route}."
        elif cut:
            actions.cut_over(settings, identity, tenant=tenant, route=route, reason=reason)
            done = f"Recorded: {tenant} / {route} is now served by the candidate."
        elif back:
            actions.roll_back(settings, identity, tenant=tenant, route=route, reason=reason)
            done = f"Recorded: {tenant} / {route} is served by the primary again."
        else:
            return
    except actions.ActionError as exc:
        st.error(str(exc))
        return
    # Shown after the rerun, which redraws the buttons for the new state (and clears the reason).
    st.session_state[_FLASH] = done
    st.session_state.pop(f"sg-reason-{suffix}", None)
    data.forget()
    st.rerun()
