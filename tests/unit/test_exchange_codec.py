"""The one codec of stream entries: round trip, version check, malformed entries named as such."""

from __future__ import annotations

import pytest

from mirror.exchange import (
    SCHEMA_VERSION,
    Body,
    Exchange,
    MalformedEntry,
    RequestSide,
    ResponseSide,
    decode_entry,
    encode_entry,
)


def sample() -> Exchange:
    return Exchange(
        id="req-1",
        tenant="klinik-a",
        route="chat",
        route_prefix="/v1/chat/completions",
        captured_at=1_790_000_000.25,
        request=RequestSide(
            method="POST",
            path="/v1/chat/completions",
            query="",
            headers=[("Content-Type", "application/json"), ("Authorization", "[redacted]")],
            body=Body(size=9, data=b'{"a": "\xc3\xa9"}'),
        ),
        primary=ResponseSide(
            role="primary",
            status=200,
            headers=[("Content-Type", "application/json")],
            body=Body(size=70_000, ref="sha256:" + "ab" * 32),
            started_at=1_790_000_000.0,
            headers_ms=12.5,
            ttfb_ms=13.0,
            total_ms=40.0,
        ),
    )


def as_redis(fields: dict[str, bytes | str | int]) -> dict[bytes, bytes]:
    """What redis-py gives back: every key and value as bytes."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def test_round_trip_keeps_every_field() -> None:
    original = sample()
    fields = encode_entry(original)
    assert fields["v"] == SCHEMA_VERSION
    assert fields["ts"] == 1_790_000_000_250
    assert decode_entry(as_redis(fields)) == original


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.pop(b"data"),
        lambda f: f.update({b"v": b"99"}),
        lambda f: f.update({b"v": b"x"}),
        lambda f: f.update({b"data": b"\xc1not msgpack"}),
        lambda f: f.update({b"data": b"\x80"}),  # an empty map: required fields missing
    ],
)
def test_malformed_entries_raise_malformed_entry(damage: object) -> None:
    fields = as_redis(encode_entry(sample()))
    damage(fields)  # type: ignore[operator]
    with pytest.raises(MalformedEntry):
        decode_entry(fields)
