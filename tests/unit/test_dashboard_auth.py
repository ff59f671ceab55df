"""Who is signed in to the dashboard (dashboard/auth.py): passwords, OIDC claims, a proxy's header."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from dashboard.auth import Identity, check_user, from_header, from_oidc, hash_password, verify_password
from shadowgate.settings import Dashboard, DashboardUser

FAST = 2**10  # cheap hashes for tests; the default cost is 2**15


def test_a_password_hash_verifies_only_its_password() -> None:
    encoded = hash_password("s3cret pass", n=FAST)
    assert encoded.startswith("scrypt$1024$8$1$")
    assert verify_password("s3cret pass", encoded)
    assert not verify_password("s3cret pas", encoded)
    assert hash_password("s3cret pass", n=FAST) != encoded  # salted
    assert not verify_password("x", "scrypt$1024$8$1$not-base64$also-not")
    assert not verify_password("x", "md5$whatever")


def test_a_local_user_signs_in_by_name_and_password() -> None:
    users = (DashboardUser(name="alice", password_scrypt=SecretStr(hash_password("pw-alice", n=FAST))),)
    assert check_user(users, "alice", "pw-alice") == Identity("alice", "password")
    assert check_user(users, " alice ", "pw-alice") == Identity("alice", "password")
    assert check_user(users, "alice", "pw-bob") is None
    assert check_user(users, "mallory", "pw-alice") is None
    assert Identity("alice", "password").actor == "local:alice"


def test_oidc_claims_give_the_email_first() -> None:
    assert from_oidc({"is_logged_in": True, "email": "lead@klinik.example", "name": "Lead"}) == Identity(
        "lead@klinik.example", "oidc"
    )
    assert from_oidc({"is_logged_in": True, "name": "Lead"}) == Identity("Lead", "oidc")
    assert from_oidc({"is_logged_in": False, "email": "lead@klinik.example"}) is None
    assert from_oidc({"email": "test@example.com"}) is None  # st.user outside a login says nothing
    assert Identity("lead@klinik.example", "oidc").actor == "oidc:lead@klinik.example"


def test_a_proxy_header_counts_only_when_configured() -> None:
    headers = {"x-forwarded-user": "bob", "Host": "dash"}
    assert from_header(headers, None) is None
    assert from_header(headers, "X-Forwarded-User") == Identity("bob", "proxy")
    assert from_header({"X-Forwarded-User": "bob <script>"}, "X-Forwarded-User") is None
    assert from_header({}, "X-Forwarded-User") is None


def test_settings_refuse_a_plain_password_and_duplicate_users() -> None:
    with pytest.raises(ValidationError, match="hash-password"):
        DashboardUser(name="alice", password_scrypt=SecretStr("hunter2"))
    good = hash_password("pw", n=FAST)
    with pytest.raises(ValidationError, match="unique"):
        Dashboard(users=(DashboardUser(name="a", password_scrypt=SecretStr(good)),) * 2)
    assert "pw" not in repr(DashboardUser(name="a", password_scrypt=SecretStr(good)))
