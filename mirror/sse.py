"""Reading answers: the text and model of an SSE stream, reassembled from its chunks (pure)."""

from __future__ import annotations

import gzip
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


def decoded(body: bytes, content_encoding: str | None) -> bytes:
    """The body with its Content-Encoding undone (the tap keeps bodies exactly as they travelled)."""
    encoding = (content_encoding or "").strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError) as exc:
        raise MalformedBody(f"body does not decode as {encoding}") from exc
    return body


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
