"""What the entry point hands every page for one run: the settings, and the sign-in box in the sidebar."""

from __future__ import annotations

import streamlit as st

from dashboard import signin
from dashboard.auth import Identity
from shadowgate.settings import Settings

_SETTINGS = "shadowgate.settings"


def use(settings: Settings) -> None:
    """Called by dashboard/app.py on every run, before the page runs."""
    st.session_state[_SETTINGS] = settings


def page() -> tuple[Settings, Identity | None]:
    """The settings and who is signed in, for the page about to render; draws the sign-in box.

    Each page calls this first (rather than app.py drawing the box once) so that the box is part of
    the page's own run, the way Streamlit's AppTest sees a multipage app too."""
    found = st.session_state.get(_SETTINGS)
    if not isinstance(found, Settings):
        raise RuntimeError("the dashboard's pages run through dashboard/app.py (shadowgate dashboard)")
    return found, signin.sidebar(found)
