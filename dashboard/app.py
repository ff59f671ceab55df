"""The dashboard's entry point: `shadowgate dashboard` (or `streamlit run dashboard/app.py`).

Each run builds the settings (the TOML file named by $SHADOWGATE_CONFIG, plus SHADOWGATE_* variables),
and hands them to the page through dashboard.context (each page draws the sign-in box).
"""

from __future__ import annotations

import streamlit as st

from dashboard import context
from shadowgate.settings import ConfigError, load_settings

st.set_page_config(page_title="shadowgate · cutover board", page_icon=":material/traffic:", layout="wide")

try:
    settings = load_settings()
except ConfigError as exc:
    st.error(f"shadowgate cannot start: {exc}")
    st.stop()

context.use(settings)

pages = [
    st.Page("pages/board.py", title="Board", icon=":material/dashboard:", default=True),
    st.Page("pages/tenant.py", title="Tenant", icon=":material/local_hospital:"),
    st.Page("pages/pair.py", title="Pair", icon=":material/compare:"),
    st.Page("pages/review.py", title="Review", icon=":material/rate_review:"),
    st.Page("pages/replay.py", title="Replay", icon=":material/replay:"),
    st.Page("pages/audit.py", title="Audit", icon=":material/receipt_long:"),
]
st.navigation(pages).run()
