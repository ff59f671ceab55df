"""Property-based: undoing a Content-Encoding (dispatch and the worker both do, on both sides' answers)
never returns more than its limit, never raises anything but MalformedBody, and a gzip bomb costs
bounded memory."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.sse import BodyTooLarge, MalformedBody, decoded
from tests.fuzz.tapfuzz import gzip_bomb

encodings = st.sampled_from(["gzip", "x-gzip", "deflate", "GZIP ", "br", "", None])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    plain = draw(st.binary(max_size=5000))
    kind = draw(st.sampled_from(["plain", "gzip", "deflate", "two members", "truncated", "trailing"]))
    if kind == "gzip":
        return gzip.compress(plain)
    if kind == "deflate":
        return zlib.compress(plain)
    if kind == "two members":
        return gzip.compress(plain) + gzip.compress(plain[::-1])
    if kind == "truncated":
        packed = gzip.compress(plain)
        return packed[: draw(st.integers(0, len(packed) - 1))]
    if kind == "trailing":
        return gzip.compress(plain) + draw(st.binary(min_size=1, max_size=20))
    return plain


@given(body=bodies(), encoding=encodings, limit=st.integers(0, 20_000))
def test_decoding_is_bounded_and_fails_only_as_malformed(
    body: bytes, encoding: str | None, limit: int
) -> None:
    try:
        out = decoded(body, encoding, limit)
    except MalformedBody:
        return
    if (encoding or "").strip().lower() in ("gzip", "x-gzip", "deflate"):
        assert len(out) <= limit
    else:
        assert out == body  # nothing to undo, nothing changed


def test_a_gzip_bomb_is_refused_in_bounded_memory() -> None:
    bomb = gzip_bomb()  # 256 MiB of zeros, about 250 KiB on the wire
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            decoded(bomb, "gzip", limit=4 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"decoding a bomb held {peak / 2**20:.0f} MiB"
    assert decoded(gzip.compress(b"ok" * 10), "gzip", limit=20) == b"ok" * 10
