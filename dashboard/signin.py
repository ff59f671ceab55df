"""Signing in to the dashboard, in its sidebar: OIDC (st.login), a trusted proxy's header, or a password."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard.auth import Identity, check_user, from_header, from_oidc
from shadowgate.settings import Settings

log = logging.getLogger("shadowgate.dashboard")

_SESSION_KEY = "shadowgate.password_identity"
# After this many wrong passwords in a row for one name, that name waits this long (per server process).
MAX_FAILURES, LOCKOUT_S = 5, 60.0
_failures: dict[str, tuple[int, float]] = {}
_failures_lock = threading.Lock()


def oidc_config() -> Mapping[str, Any] | None:
    """The [auth] section of the Streamlit secrets, when there is one."""
    if not st.secrets.load_if_toml_exists() or "auth" not in st.secrets:
        return None
    section = st.secrets["auth"]
    return section if isinstance(section, Mapping) else None


def method(settings: Settings) -> str:
    """How people sign in here: "oidc", "proxy", "password", or "none"."""
    if oidc_config() is not None:
        return "oidc"
    if settings.dashboard.trusted_user_header:
        return "proxy"
    return "password" if settings.dashboard.users else "none"


def current(settings: Settings) -> Identity | None:
    """Who is signed in for this run, by the configured method only."""
    how = method(settings)
    if how == "oidc":
        return from_oidc(st.user.to_dict())
    if how == "proxy":
        return from_header(dict(st.context.headers.items()), settings.dashboard.trusted_user_header)
    if how == "password":
        found = st.session_state.get(_SESSION_KEY)
        if isinstance(found, Identity) and any(u.name == found.name for u in settings.dashboard.users):
            return found
    return None


def sidebar(settings: Settings) -> Identity | None:
    """The sign-in box in the sidebar; returns who is signed in after it."""
    how = method(settings)
    box = st.sidebar.container(border=True)
    who = current(settings)
    if who is not None:
        box.markdown(f"Signed in as **{who.name}**  \n:gray[{_how_text(how)}]")
        if how == "oidc" and box.button("Sign out", key="sg-signout"):
            st.logout()
        if how == "password" and box.button("Sign out", key="sg-signout"):
            del st.session_state[_SESSION_KEY]
            st.rerun()
        return who
    if how == "oidc":
        box.caption("Sign in to see answers and to act.")
        if box.button("Sign in", key="sg-signin", type="primary"):
            auth = oidc_config() or {}
            providers = [k for k, v in auth.items() if isinstance(v, Mapping)]
            st.login(providers[0] if len(providers) == 1 else None)
    elif how == "proxy":
        box.warning(
            f"The proxy sent no {settings.dashboard.trusted_user_header} header: read-only, aggregates only."
        )
    elif how == "password":
        _password_form(settings, box)
    else:
        box.caption(
            "Read-only: aggregate numbers only. Configure sign-in (docs/DASHBOARD.md) to read answers "
            "and act."
        )
    return None


def _how_text(how: str) -> str:
    return {
        "oidc": "via your identity provider",
        "proxy": "via the sign-in proxy",
        "password": "local user",
    }.get(how, how)


def _password_form(settings: Settings, box: Any) -> None:
    with box.form("sg-signin-form", clear_on_submit=True):
        st.markdown("**Sign in**")
        name = st.text_input("Name", key="sg-signin-name")
        password = st.text_input("Password", type="password", key="sg-signin-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    wait = _locked_for(name)
    if wait > 0:
        box.error(f"Too many wrong passwords for this name; try again in {wait:.0f} s.")
        return
    who = check_user(settings.dashboard.users, name, password)
    _note(name, ok=who is not None)
    if who is None:
        log.warning("dashboard: failed sign-in")
        box.error("Wrong name or password.")
        return
    log.info("dashboard: %s signed in", who.actor)
    st.session_state[_SESSION_KEY] = who
    st.rerun()


def _locked_for(name: str) -> float:
    with _failures_lock:
        count, since = _failures.get(name.strip(), (0, 0.0))
    if count < MAX_FAILURES:
        return 0.0
    return max(0.0, since + LOCKOUT_S - time.monotonic())


def _note(name: str, *, ok: bool) -> None:
    with _failures_lock:
        if ok:
            _failures.pop(name.strip(), None)
        else:
            count, _ = _failures.get(name.strip(), (0, 0.0))
            _failures[name.strip()] = (count + 1, time.monotonic())
