"""Who is signed in to the dashboard: OIDC claims, a trusted proxy's header, or a local password (pure).

Order: OIDC (Streamlit's st.login, when `[auth]` is in the Streamlit secrets) wins; else a configured
`dashboard.trusted_user_header` set by a signing-in proxy; else a local user's password
(`dashboard.users`, scrypt hashes). With none of them no one is signed in: the board shows aggregate
numbers, never clinical text, and refuses every action. See docs/DASHBOARD.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shadowgate.settings import DashboardUser

Method = Literal["oidc", "proxy", "password"]

# scrypt's cost: 2^15 x 8 x 1 takes ~50 ms and 32 MiB here, a price paid once per sign-in.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024
# A proxy's user header holds a user name or an e-mail address, nothing else.
_HEADER_NAME = re.compile(r"^[\w.@+-]{1,128}$", re.UNICODE)


@dataclass(frozen=True)
class Identity:
    """A signed-in person. `actor` is what the audit log records: how they signed in, and who."""

    name: str
    method: Method

    @property
    def actor(self) -> str:
        prefix = {"oidc": "oidc", "proxy": "proxy", "password": "local"}[self.method]
        return f"{prefix}:{self.name}"


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """`scrypt$N$r$p$salt$key` (base64), for `dashboard.users[].password_scrypt`."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return "$".join(("scrypt", str(n), str(r), str(p), _b64(salt), _b64(key)))


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches the scrypt hash; False for a wrong password or a malformed hash."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# A stand-in hash, so that an unknown user name costs as much time as a wrong password.
_DUMMY = hash_password("not a password")


def check_user(users: Sequence[DashboardUser], name: str, password: str) -> Identity | None:
    """The identity of a local user whose password matches, else None (same cost either way)."""
    user = next((u for u in users if hmac.compare_digest(u.name.encode(), name.strip().encode())), None)
    encoded = user.password_scrypt.get_secret_value() if user is not None else _DUMMY
    ok = verify_password(password, encoded)
    return Identity(user.name, "password") if ok and user is not None else None


def from_oidc(user: Mapping[str, Any]) -> Identity | None:
    """The identity in Streamlit's st.user after st.login: the e-mail, else the name, else the subject."""
    if not user.get("is_logged_in"):
        return None
    for claim in ("email", "preferred_username", "name", "sub"):
        value = user.get(claim)
        if isinstance(value, str) and value.strip():
            return Identity(value.strip(), "oidc")
    return None


def from_header(headers: Mapping[str, str], header: str | None) -> Identity | None:
    """The identity a trusted proxy put in `header` (only when that header is configured)."""
    if not header:
        return None
    value = next((v for k, v in headers.items() if k.lower() == header.lower()), None)
    if value is None or not _HEADER_NAME.match(value.strip()):
        return None
    return Identity(value.strip(), "proxy")
