"""The Exchange record that travels through the pipeline, and the one codec for its stream entries."""

from __future__ import annotations

import time
from typing import Literal

import msgspec

SCHEMA_VERSION = 1

Headers = list[tuple[str, str]]
Role = Literal["primary", "candidate", "secondary"]


class Body(msgspec.Struct, frozen=True, omit_defaults=True):
    """A payload: inline bytes, or a reference to the blob store (`sha256:<hex>`), never both."""

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
    v: int = SCHEMA_VERSION


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Exchange)


class MalformedEntry(ValueError):
    """A stream entry that no version of the codec can read; it belongs in the dead-letter stream."""


def encode_entry(exchange: Exchange) -> dict[str, bytes | str | int]:
    """Stream entry fields: a few in clear for filtering and replay, the record itself as MessagePack."""
    fields: dict[str, bytes | str | int] = {
        "v": exchange.v,
        "id": exchange.id,
        "tenant": exchange.tenant,
        "route": exchange.route,
        "ts": int(exchange.captured_at * 1000),
        "data": _encoder.encode(exchange),
    }
    if exchange.replay is not None:
        fields["replay"] = exchange.replay
    return fields


def decode_entry(fields: dict[bytes, bytes]) -> Exchange:
    try:
        version = int(fields[b"v"])
        data = fields[b"data"]
    except (KeyError, ValueError) as exc:
        raise MalformedEntry(f"entry lacks a readable v/data field: {type(exc).__name__}") from exc
    if version != SCHEMA_VERSION:
        raise MalformedEntry(f"unsupported schema version {version}")
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MalformedEntry(f"undecodable exchange: {exc}") from exc


def now() -> float:
    return time.time()
