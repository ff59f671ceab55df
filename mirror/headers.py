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
    return one_spelling((k, v) for k, v in headers.items() if k.lower() not in drop)


def one_spelling(items: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """Headers for aiohttp's client, each repeated name spelled as it first came. Its ClientSession
    merges fields by exact name, so of `X-A: 1` and `x-a: 2` only the last would be sent."""
    spelled: dict[str, str] = {}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in items:
        out.add(spelled.setdefault(name.lower(), name), value)
    return out


def client_response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The primary's headers as the client should see them; the tap recomputes framing itself."""
    drop = HOP_BY_HOP | _connection_listed(headers) | {"content-length"}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def sanitize(headers: Iterable[tuple[str, str]], secret: frozenset[str]) -> list[tuple[str, str]]:
    """Headers for a stream entry: secrets replaced by a marker (their presence is kept, not their value)."""
    return [(str(k), REDACTED if k.lower() in secret else on_the_wire(str(v))) for k, v in headers]


def on_the_wire(value: str) -> str:
    """A header as aiohttp forwards it. Bytes that are not UTF-8 (obs-text, which its parser keeps as
    lone surrogates) cannot be written again, and its writer drops them; the record says the same,
    which also keeps it encodable."""
    return value if value.isascii() else value.encode("utf-8", "ignore").decode("utf-8")


# Query parameters that carry a client's credentials (Azure OpenAI's `api-key`, Google-style `key`,
# OAuth's `access_token`): never stored, never sent to the candidate.
SECRET_QUERY_PARAMS = frozenset({"api-key", "api_key", "apikey", "key", "access_token", "token"})


def public_query(raw_query: str) -> str:
    """The raw query string without credential parameters; everything else kept byte for byte, in order."""
    if not raw_query:
        return raw_query
    kept = [
        part
        for part in raw_query.split("&")
        if part.split("=", 1)[0].lower().replace("%2d", "-") not in SECRET_QUERY_PARAMS
    ]
    return "&".join(kept)
