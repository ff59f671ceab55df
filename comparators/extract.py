"""From a captured answer's bytes to the Side scorers see: text, JSON payload, vectors or ranking (pure)."""

from __future__ import annotations

import binascii
import contextlib
import dataclasses
import json
import re
import struct
from typing import Any

import numpy as np

from comparators.scoring import Side
from mirror.exchange import ResponseSide
from mirror.sse import MalformedBody, decoded, reassemble_sse

# What a malformed or surprising body can raise while we walk it; none of it may reach the worker,
# which already has the error class on the ResponseSide.
_BAD_BODY = (ValueError, TypeError, LookupError, AttributeError, struct.error, RecursionError)
_FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_SUBTITLE_TAG = re.compile(r"<[^>]+>")


def side_from(resp: ResponseSide, body: bytes, route: str, request_body: bytes) -> Side:
    """The Side of one answer. Never raises: what cannot be read is left None."""
    headers = {name.lower(): value for name, value in resp.headers}
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    streamed = resp.streamed or content_type == "text/event-stream"
    base = Side(
        status=resp.status,
        error=resp.error,
        total_ms=resp.total_ms,
        # Time to first byte only means "first token" on a stream; on a JSON answer it is about the
        # total time, and tokens per second must not divide by the gap between the two.
        ttfb_ms=resp.ttfb_ms if streamed else None,
        model=resp.model,
    )
    # An error body describes the error, not an answer; there is nothing in it to compare.
    if resp.status is None or not 200 <= resp.status < 300:
        return base
    if not body:
        # A transcription of silence can be an empty text/plain body; anywhere else it is no answer.
        return dataclasses.replace(base, text="") if route == "audio" else base
    try:
        raw = decoded(body, headers.get("content-encoding"))
        if route == "audio":
            return _audio(base, raw, content_type, request_body)
        if route == "embed":
            return _embeddings(base, _json(raw))
        if route == "rerank":
            return _rerank(base, _json(raw))
        # chat, reason, vision, and any other route that answers the way chat does
        if streamed or raw.lstrip().startswith(b"data:"):
            return _chat_stream(base, raw, resp.text)
        return _chat(base, _json(raw))
    except _BAD_BODY:
        pass
    return base


def _json(raw: bytes) -> Any:
    return json.loads(raw)


# chat, reason, vision (and other routes that happen to answer like chat)


def _chat(base: Side, value: Any) -> Side:
    if not isinstance(value, dict):
        return base
    choices = value.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    if isinstance(message, dict):
        text = content_text(message.get("content"))
        tools = tool_calls(message.get("tool_calls"), message.get("function_call"))
    else:  # the legacy completions API
        text = choice.get("text") if isinstance(choice.get("text"), str) else None
        tools = None
    usage = value.get("usage")
    return _chat_side(
        base,
        text=text,
        tools=tools,
        finish=choice.get("finish_reason"),
        tokens=usage.get("completion_tokens") if isinstance(usage, dict) else None,
        model=value.get("model"),
    )


def _chat_stream(base: Side, raw: bytes, text: str | None) -> Side:
    if not raw.endswith(b"\n"):
        # A stream cut short (the client went away) ends mid-event; the events before it still count.
        raw = raw[: raw.rfind(b"\n") + 1]
    try:
        assembled = reassemble_sse(raw)
    except MalformedBody:
        return dataclasses.replace(base, text=text) if text is not None else base
    tokens: Any = None
    fragments: dict[int, dict[str, Any]] = {}
    for chunk in _sse_events(raw):
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            tokens = usage.get("completion_tokens")
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    _collect_tool_deltas(fragments, delta.get("tool_calls"))
    tools = tool_calls([fragments[i] for i in sorted(fragments)], None)
    return _chat_side(
        base,
        text=text if text is not None else assembled.text,
        tools=tools,
        finish=assembled.finish_reason,
        tokens=tokens,
        model=assembled.model,
    )


def _sse_events(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for line in raw.splitlines():
        data = line.strip()
        if data.startswith(b"data:") and data[5:].strip() != b"[DONE]":
            chunk = json.loads(data[5:])
            if isinstance(chunk, dict):
                events.append(chunk)
    return events


def _collect_tool_deltas(fragments: dict[int, dict[str, Any]], deltas: Any) -> None:
    """Streamed tool calls arrive as pieces keyed by index; the arguments string is split across them."""
    if not isinstance(deltas, list):
        return
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        call = fragments.setdefault(int(delta.get("index", 0)), {"type": "function", "function": {}})
        function = delta.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str):
                call["function"]["name"] = call["function"].get("name", "") + function["name"]
            if isinstance(function.get("arguments"), str):
                call["function"]["arguments"] = call["function"].get("arguments", "") + function["arguments"]
        if isinstance(delta.get("type"), str):
            call["type"] = delta["type"]


def _chat_side(base: Side, *, text: str | None, tools: Any, finish: Any, tokens: Any, model: Any) -> Side:
    if tools is not None and text == "":
        text = None
    if not isinstance(tokens, int) or isinstance(tokens, bool):
        # The contract's fallback when an answer carries no usage (a stream without include_usage).
        tokens = len(text.split()) if text else None
    return dataclasses.replace(
        base,
        text=text,
        json=tools if tools is not None else json_content(text),
        finish_reason=finish if isinstance(finish, str) else None,
        completion_tokens=tokens,
        model=base.model or (model if isinstance(model, str) and model else None),
    )


def content_text(content: Any) -> str | None:
    """A message's content: a string, or the text parts of a list of parts joined without a separator."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "output_text") and "text" in part
        ]
        return "".join(p for p in parts if isinstance(p, str))
    return None


def tool_calls(calls: Any, function_call: Any) -> list[dict[str, Any]] | None:
    """Tool calls as [{"type", "name", "arguments"}], arguments parsed when they are JSON.

    Call ids are dropped (each server makes up its own, so they always differ) and the arguments
    string is parsed so that a structural diff sees fields, not one long string."""
    if isinstance(function_call, dict) and not calls:
        calls = [{"type": "function", "function": function_call}]
    if not isinstance(calls, list) or not calls:
        return None
    out: list[dict[str, Any]] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        arguments: Any = function.get("arguments")
        if isinstance(arguments, str):
            # A model that wrote broken JSON keeps its string: the string itself is what differs.
            with contextlib.suppress(ValueError, RecursionError):
                arguments = json.loads(arguments)
        out.append(
            {"type": call.get("type", "function"), "name": function.get("name"), "arguments": arguments}
        )
    return out or None


def json_content(text: str | None) -> Any:
    """The content parsed, when it is a JSON object or array (a code fence around it is allowed:
    open models often add one where OpenAI's JSON mode does not, and the structure is what we compare)."""
    if not text:
        return None
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


# audio


def _audio(base: Side, raw: bytes, content_type: str, request_body: bytes) -> Side:
    if "json" in content_type or (not content_type and raw.lstrip().startswith(b"{")):
        value = _json(raw)
        if not isinstance(value, dict):
            return base
        text = value.get("text")
        if not isinstance(text, str) and isinstance(value.get("segments"), list):
            text = " ".join(
                s["text"].strip()
                for s in value["segments"]
                if isinstance(s, dict) and isinstance(s.get("text"), str)
            )
        return dataclasses.replace(base, text=text if isinstance(text, str) else None)
    body = raw.decode("utf-8", errors="replace")
    if _is_subtitles(body, content_type, request_body):
        body = subtitle_text(body)
    return dataclasses.replace(base, text=body.strip())


def _is_subtitles(body: str, content_type: str, request_body: bytes) -> bool:
    if content_type in ("text/vtt", "application/x-subrip", "text/srt"):
        return True
    # OpenAI sends srt as text/plain; the request's response_format says so, and so does the body.
    asked = re.search(rb'name="response_format"\s*\r?\n\r?\n\s*(srt|vtt)\b', request_body) is not None
    return asked or body.lstrip().startswith("WEBVTT") or "-->" in body


def subtitle_text(body: str) -> str:
    """The spoken text of an SRT or WebVTT file: cue numbers, timings, headers, notes and tags removed."""
    lines = body.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    skipping_block = False
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            skipping_block = False
            continue
        if skipping_block:
            continue
        if stripped.startswith("WEBVTT") or stripped.split(" ", 1)[0] in ("NOTE", "STYLE", "REGION"):
            skipping_block = True  # these blocks run to the next blank line
            continue
        if "-->" in stripped:
            continue
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if "-->" in following:
            continue  # a cue identifier (a number in SRT), only ever directly above its timing line
        out.append(_SUBTITLE_TAG.sub("", stripped))
    return " ".join(out)


# embed


def _embeddings(base: Side, value: Any) -> Side:
    if isinstance(value, dict):
        items = value.get("data") if "data" in value else value.get("embeddings")
        model = value.get("model")
    else:  # text-embeddings-inference's /embed answers with a bare list of vectors
        items, model = value, None
    if not isinstance(items, list):
        return base
    indexed: list[tuple[int, list[float]]] = []
    for position, item in enumerate(items):
        if isinstance(item, dict):
            index = item.get("index", position)
            vector = vector_of(item.get("embedding"))
        else:
            index, vector = position, vector_of(item)
        if vector is None or not isinstance(index, int):
            return base  # one unreadable vector makes the order of the rest doubtful
        indexed.append((index, vector))
    indexed.sort(key=lambda pair: pair[0])
    return dataclasses.replace(
        base,
        vectors=[vector for _, vector in indexed],
        model=base.model or (model if isinstance(model, str) and model else None),
    )


def vector_of(embedding: Any) -> list[float] | None:
    """A list of floats, or base64 of little-endian float32 (what the openai SDK asks for by default)."""
    if isinstance(embedding, str):
        try:
            raw = binascii.a2b_base64(embedding)
        except binascii.Error:
            return None
        if len(raw) % 4:
            return None
        values: list[float] = np.frombuffer(raw, dtype="<f4").astype(np.float64).tolist()
        return values
    if isinstance(embedding, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in embedding
    ):
        return [float(x) for x in embedding]
    return None


# rerank


def _rerank(base: Side, value: Any) -> Side:
    items = value.get("results", value.get("data")) if isinstance(value, dict) else value
    if not isinstance(items, list):
        return base
    ranking = ranking_of(items)
    model = value.get("model") if isinstance(value, dict) else None
    return dataclasses.replace(
        base,
        ranking=ranking,
        model=base.model or (model if isinstance(model, str) and model else None),
    )


def ranking_of(items: list[Any]) -> list[int] | None:
    """Document indexes, best first: by score descending, ties by index.

    Accepts Cohere/Jina results ({"index", "relevance_score"}), text-embeddings-inference's
    ({"index", "score"}), and a bare list of scores in document order."""
    if all(isinstance(x, int | float) and not isinstance(x, bool) for x in items):
        scored = [(float(score), index) for index, score in enumerate(items)]
    else:
        if not all(isinstance(x, dict) and isinstance(x.get("index"), int) for x in items):
            return None
        scores = [x.get("relevance_score", x.get("score")) for x in items]
        if all(isinstance(s, int | float) for s in scores):
            scored = [(float(s), x["index"]) for s, x in zip(scores, items, strict=True)]
        else:  # without scores, the answer's own order is the ranking
            scored = [(-float(position), x["index"]) for position, x in enumerate(items)]
    ordered = [index for _, index in sorted(scored, key=lambda pair: (-pair[0], pair[1]))]
    return list(dict.fromkeys(ordered))  # a document listed twice counts once, at its best place
