"""The Exchange record that travels through the pipeline, and the one codec for its stream entries."""

from __future__ import annotations

import time
from typing import Literal

import msgspec

from shadowgate.crypto import Cipher, Undecryptable, place, sealed, unseal

SCHEMA_VERSION = 1

Headers = list[tuple[str, str]]
Role = Literal["primary", "candidate", "secondary"]


class Body(msgspec.Struct, frozen=True, omit_defaults=True):
    """A payload: inline bytes, or a reference to the blob store (`sha256:<hex>`; `hmac-sha256:<hex>`
    when sealed), never both."""

    size: int
    data: bytes | None = None
    ref: str | None = None


class RequestSide(msgspec.Struct, frozen=True, omit_defaults=True):
    method: str
    path: str
    query: str
    headers: Headers
    body: Body
    # The request asked for a stream (SSE) — the candidate is asked the same way.
    stream: bool = False


class ResponseSide(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one upstream answered, and how fast. `error` is a class name, never a message with data."""

    role: Role
    status: int | None
    headers: Headers
    body: Body
    started_at: float  # unix seconds when the request was sent upstream
    headers_ms: float | None  # time to the response headers
    ttfb_ms: float | None  # time to the first byte of the body (the first token of a stream)
    total_ms: float  # time to the last byte of the body
    error: str | None = None
    streamed: bool = False
    # Set when the client went away before the body ended: the body is what had arrived.
    client_aborted: bool = False
    # Which model, version and GPU answered (the migration plan's audit asks for all three).
    model: str | None = None
    model_version: str | None = None
    gpu: str | None = None
    # The text of an SSE answer, reassembled from its deltas (dispatch fills it in on both sides).
    text: str | None = None


class Exchange(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    tenant: str
    route: str  # a RouteKind value
    route_prefix: str
    captured_at: float
    request: RequestSide
    primary: ResponseSide
    candidate: ResponseSide | None = None
    secondary: ResponseSide | None = None
    # Set on pairs made by `shadowgate replay`: the run's id, so they never mix with live pairs.
    replay: str | None = None
    paired_at: float | None = None
    # Cutover (docs/CUTOVER.md): the side whose answer the user got, and why the candidate's attempt
    # was given up for the primary's (an error class). A capture served by the candidate carries its
    # side in `candidate` and a `pending` primary, which dispatch fills in with a shadow call.
    served_by: Role = "primary"
    fallback: str | None = None
    v: int = SCHEMA_VERSION


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Exchange)


class MalformedEntry(ValueError):
    """A stream entry that no version of the codec can read; it belongs in the dead-letter stream."""


def encode_entry(exchange: Exchange, cipher: Cipher | None = None) -> dict[str, bytes | str | int]:
    """Stream entry fields: a few in clear for filtering and replay, the record itself as MessagePack —
    sealed (AES-GCM, bound to the clear fields) when a cipher is given."""
    ts = int(exchange.captured_at * 1000)
    data = _encoder.encode(exchange)
    if cipher is not None:
        data = cipher.seal(
            data, _place(exchange.v, exchange.id, exchange.tenant, exchange.route, ts, exchange.replay)
        )
    fields: dict[str, bytes | str | int] = {
        "v": exchange.v,
        "id": exchange.id,
        "tenant": exchange.tenant,
        "route": exchange.route,
        "ts": ts,
        "data": data,
    }
    if exchange.replay is not None:
        fields["replay"] = exchange.replay
    return fields


def decode_entry(fields: dict[bytes, bytes], cipher: Cipher | None = None) -> Exchange:
    """The entry's Exchange. Sealed data needs the cipher: MissingKey (a CryptoError, not a
    MalformedEntry: the entry is fine, this process lacks its key) when it has not got the key."""
    try:
        version = int(fields[b"v"])
        data = fields[b"data"]
    except (KeyError, ValueError) as exc:
        raise MalformedEntry(f"entry lacks a readable v/data field: {type(exc).__name__}") from exc
    if version != SCHEMA_VERSION:
        raise MalformedEntry(f"unsupported schema version {version}")
    if sealed(data):
        try:
            where = _place(
                version,
                fields[b"id"].decode(),
                fields[b"tenant"].decode(),
                fields[b"route"].decode(),
                int(fields[b"ts"]),
                fields[b"replay"].decode() if b"replay" in fields else None,
            )
            data = unseal(cipher, data, where)
        except (KeyError, ValueError, Undecryptable) as exc:
            raise MalformedEntry(f"sealed exchange that does not open: {exc}") from exc
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MalformedEntry(f"undecodable exchange: {exc}") from exc


def _place(v: int, id: str, tenant: str, route: str, ts: int, replay: str | None) -> bytes:
    # The entry's clear fields: a sealed record moved to another entry, or an entry whose tenant,
    # route, time or replay tag was edited in clear, no longer opens.
    return place("entry", v, id, tenant, route, ts, replay, "data")


def now() -> float:
    return time.time()
