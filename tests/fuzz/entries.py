"""Stream entries, good and malformed, for the consumers' property tests."""

from __future__ import annotations

import json
import time

import msgspec
from hypothesis import assume
from hypothesis import strategies as st

from mirror.exchange import (
    Body,
    Exchange,
    MalformedEntry,
    RequestSide,
    ResponseSide,
    decode_entry,
    encode_entry,
)

Fields = dict[bytes, bytes]


def exchange(n: int, *, paired: bool, at: float | None = None) -> Exchange:
    """A chat exchange whose two sides answer alike (the worker scores it without the model's help)."""
    now = time.time() if at is None else at
    request = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"visit {n}"}]})
    answer = json.dumps(
        {
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"Note {n}: rest."}}],
        }
    ).encode()

    def side(role: str) -> ResponseSide:
        return ResponseSide(
            role=role,  # type: ignore[arg-type]
            status=200,
            headers=[("Content-Type", "application/json")],
            body=Body(len(answer), answer),
            started_at=now,
            headers_ms=5.0,
            ttfb_ms=5.0,
            total_ms=9.0,
        )

    return Exchange(
        id=f"good-{n}",
        tenant="klinik-a",
        route="chat",
        route_prefix="/echo",
        captured_at=now,
        request=RequestSide(
            method="POST",
            path="/echo/ok",
            query=f"n={n}",
            headers=[("Content-Type", "application/json")],
            body=Body(len(request), request.encode()),
        ),
        primary=side("primary"),
        candidate=side("candidate") if paired else None,
        paired_at=now if paired else None,
    )


def as_fields(entry: dict[str, bytes | str | int]) -> Fields:
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in entry.items()}


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_EXCHANGE_KEYS = [
    "id",
    "tenant",
    "route",
    "route_prefix",
    "captured_at",
    "request",
    "primary",
    "candidate",
    "v",
]

KINDS = (
    "garbage fields",
    "no v",
    "no data",
    "bad version",
    "v not a number",
    "data not MessagePack",
    "truncated MessagePack",
    "MessagePack of another shape",
    "fields of the wrong type",
    "forged envelope",
)


# What malformed entries are made from: fixed, so that hypothesis can replay what it drew.
TEMPLATE = exchange(0, paired=True, at=1_790_000_000.0)


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, Fields]:
    """A malformed entry (its kind, its fields), made from a good one so that it is wrong in one way."""
    kind = draw(st.sampled_from(KINDS))
    fields = as_fields(encode_entry(TEMPLATE))
    data = fields[b"data"]
    if kind == "garbage fields":
        garbage = draw(st.dictionaries(st.binary(min_size=1, max_size=8), st.binary(max_size=40), min_size=1))
        return kind, {k: v for k, v in garbage.items() if k not in (b"v", b"data")} or {b"x": b""}
    if kind == "no v":
        del fields[b"v"]
    elif kind == "no data":
        del fields[b"data"]
    elif kind == "bad version":
        fields[b"v"] = str(draw(st.integers().filter(lambda v: v != 1))).encode()
    elif kind == "v not a number":
        fields[b"v"] = draw(st.binary(max_size=6).filter(lambda b: not b.strip().isdigit()))
    elif kind == "data not MessagePack":
        fields[b"data"] = draw(st.binary(max_size=200))
    elif kind == "truncated MessagePack":
        fields[b"data"] = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "MessagePack of another shape":
        fields[b"data"] = msgspec.msgpack.encode(draw(_json.filter(lambda x: not isinstance(x, dict))))
    elif kind == "fields of the wrong type":
        record = msgspec.msgpack.decode(data)
        key = draw(st.sampled_from(_EXCHANGE_KEYS))
        record[key] = draw(_json.filter(lambda x: x is not None))
        fields[b"data"] = msgspec.msgpack.encode(record)
        assume(_undecodable(fields))  # a value that happens to have the right type is no fault
    else:  # "forged envelope": looks sealed, is not
        fields[b"data"] = b"\x00SGE" + draw(st.binary(max_size=80))
    return kind, fields


def _undecodable(fields: Fields) -> bool:
    try:
        decode_entry(fields)
    except MalformedEntry:
        return True
    return False


def missing_blob(n: int, *, paired: bool) -> Fields:
    """An entry that decodes but can never be processed: its large body is not in the blob store."""
    x = exchange(n, paired=paired)
    gone = Body(size=10**6, ref="sha256:" + "0" * 64)
    x = msgspec.structs.replace(
        x,
        id=f"missing-blob-{n}",
        request=msgspec.structs.replace(x.request, body=gone),
        primary=msgspec.structs.replace(x.primary, body=gone),
    )
    return as_fields(encode_entry(x))
