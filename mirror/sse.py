"""Reading answers: the text and model of an SSE stream, reassembled from its chunks (pure)."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any


class MalformedBody(ValueError):
    """A body that does not parse as what its Content-Type says."""


@dataclass(frozen=True, slots=True)
class Reassembled:
    text: str
    model: str | None
    events: int
    finish_reason: str | None


class BodyTooLarge(MalformedBody):
    """A body that decodes past the limit: a few kilobytes of gzip can inflate to gigabytes."""


# Undoing a Content-Encoding stops here unless the caller gives a limit of its own.
MAX_DECODED_BYTES = 64 * 1024 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def decoded(body: bytes, content_encoding: str | None, limit: int = MAX_DECODED_BYTES) -> bytes:
    """The body with its Content-Encoding undone (the tap keeps bodies exactly as they travelled),
    never more than `limit` bytes of it: a bigger one raises BodyTooLarge, in bounded memory."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        wbits = _GZIP_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        return body
    if not body:
        return body
    out = bytearray()
    rest = body
    try:
        while True:  # gzip allows several members one after another
            inflater = zlib.decompressobj(wbits)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise BodyTooLarge(f"body decodes to more than {limit} bytes")
            if not inflater.eof:
                raise MalformedBody(f"body is a truncated {encoding} stream")
            rest = inflater.unused_data
            if wbits != _GZIP_WBITS or not rest.strip(b"\0"):
                return bytes(out)
    except zlib.error as exc:
        raise MalformedBody(f"body does not decode as {encoding}") from exc


def reassemble_sse(body: bytes) -> Reassembled:
    """Join the content deltas of an OpenAI-style SSE stream (chat chunks or legacy completions)."""
    parts: list[str] = []
    model: str | None = None
    finish: str | None = None
    events = 0
    for raw_line in body.splitlines():
        line = raw_line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise MalformedBody("an SSE event is not JSON") from exc
        events += 1
        if not isinstance(chunk, dict):
            continue
        model = model or _str(chunk.get("model"))
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(piece, str):
                parts.append(piece)
            finish = _str(choice.get("finish_reason")) or finish
    if events == 0 and body.strip():
        raise MalformedBody("a stream without a single data event")
    return Reassembled("".join(parts), model, events, finish)


def json_model(body: bytes) -> str | None:
    """The `model` an OpenAI-style JSON answer names; None if the body is not such JSON."""
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    return _str(value.get("model")) if isinstance(value, dict) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
