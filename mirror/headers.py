"""Which headers cross the tap: hop-by-hop ones never do, secrets never reach Redis or the candidate."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 §7.6.1 connection-specific fields, plus the ones aiohttp must compute itself.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
REDACTED = "[redacted]"


def _connection_listed(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    listed: set[str] = set()
    for value in headers.getall("Connection", ()):
        listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return listed


def upstream_request_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The client's headers as the primary should see them: end-to-end ones, in order, Host rewritten."""
    drop = HOP_BY_HOP | _connection_listed(headers) | {"host"}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def client_response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The primary's headers as the client should see them; the tap recomputes framing itself."""
    drop = HOP_BY_HOP | _connection_listed(headers) | {"content-length"}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def sanitize(headers: Iterable[tuple[str, str]], secret: frozenset[str]) -> list[tuple[str, str]]:
    """Headers for a stream entry: secrets replaced by a marker (their presence is kept, not their value)."""
    return [(str(k), REDACTED if k.lower() in secret else str(v)) for k, v in headers]
