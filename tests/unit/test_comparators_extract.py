"""Extraction: what scorers see of simulator-shaped answers (chat, SSE, transcripts, embeddings, rerank)."""

from __future__ import annotations

import gzip
import json
from random import Random
from typing import Any

import pytest

from comparators.extract import side_from, subtitle_text
from mirror.exchange import Body, ResponseSide
from simulator import payloads
from simulator.vectors import embed, to_base64

IDS: dict[str, Any] = {"completion_id": "chatcmpl-1", "created": 1_700_000_000, "model": "gpt-4o-mini"}


def _resp(
    body: bytes,
    content_type: str = "application/json",
    *,
    status: int | None = 200,
    streamed: bool = False,
    text: str | None = None,
    model: str | None = None,
    encoding: str | None = None,
    error: str | None = None,
) -> ResponseSide:
    headers = [("Content-Type", content_type)]
    if encoding:
        headers.append(("Content-Encoding", encoding))
    return ResponseSide(
        role="candidate",
        status=status,
        headers=headers,
        body=Body(size=len(body), data=body),
        started_at=1_700_000_000.0,
        headers_ms=100.0,
        ttfb_ms=120.0,
        total_ms=900.0,
        error=error,
        streamed=streamed,
        model=model,
        text=text,
    )


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_chat_completion() -> None:
    body = _json(
        payloads.chat_completion(
            **IDS, content="Take paracetamol 500 mg.", finish_reason="stop", prompt_tokens=12
        )
    )
    side = side_from(_resp(body, "application/json; charset=utf-8"), body, "chat", b"{}")
    assert side.text == "Take paracetamol 500 mg."
    assert side.json is None
    assert side.finish_reason == "stop"
    assert side.completion_tokens == payloads.count_tokens("Take paracetamol 500 mg.")
    assert side.model == "gpt-4o-mini"  # from the body when dispatch did not name one
    assert (side.status, side.error, side.total_ms) == (200, None, 900.0)
    assert side.ttfb_ms is None  # not a stream: time to first byte is not time to first token


def test_chat_gzip_and_json_content() -> None:
    content = '```json\n{"diagnosis": "URTI", "days": 3}\n```'
    body = gzip.compress(
        _json(payloads.chat_completion(**IDS, content=content, finish_reason="stop", prompt_tokens=5))
    )
    side = side_from(_resp(body, encoding="gzip", model="candidate-model"), body, "reason", b"{}")
    assert side.text == content
    assert side.json == {"diagnosis": "URTI", "days": 3}
    assert side.model == "candidate-model"


def test_chat_content_parts_and_tool_calls() -> None:
    value = payloads.chat_completion(**IDS, content="", finish_reason="tool_calls", prompt_tokens=5)
    value["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "book_slot", "arguments": '{"day": "Monday", "hour": 9}'},
            }
        ],
    }
    body = _json(value)
    side = side_from(_resp(body), body, "chat", b"{}")
    assert side.text is None
    assert side.json == [{"type": "function", "name": "book_slot", "arguments": {"day": "Monday", "hour": 9}}]
    assert side.finish_reason == "tool_calls"

    value["choices"][0]["message"] = {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Hello "},
            {"type": "image_url"},
            {"type": "text", "text": "there"},
        ],
    }
    body = _json(value)
    assert side_from(_resp(body), body, "vision", b"{}").text == "Hello there"


def _stream(text: str, *, usage: bool, tool_args: list[str] | None = None) -> bytes:
    out = [payloads.sse(payloads.chat_chunk(**IDS, delta={"role": "assistant", "content": ""}))]
    out += [
        payloads.sse(payloads.chat_chunk(**IDS, delta={"content": piece}))
        for piece in payloads.stream_pieces(text, Random(1))
    ]
    for index, piece in enumerate(tool_args or []):
        call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
        if index == 0:
            call |= {"id": "call_x", "type": "function", "function": {"name": "lookup", "arguments": piece}}
        out.append(payloads.sse(payloads.chat_chunk(**IDS, delta={"tool_calls": [call]})))
    out.append(payloads.sse(payloads.chat_chunk(**IDS, delta={}, finish_reason="stop")))
    if usage:
        out.append(payloads.sse(payloads.usage_chunk(**IDS, prompt_tokens=3, completion_tokens=42)))
    out.append(payloads.sse("[DONE]"))
    return b"".join(out)


def test_sse_with_usage_chunk() -> None:
    answer = "Demam selama tiga hari. Minum air yang banyak."
    body = _stream(answer, usage=True)
    side = side_from(_resp(body, "text/event-stream", streamed=True), body, "chat", b'{"stream": true}')
    assert side.text == answer
    assert side.finish_reason == "stop"
    assert side.completion_tokens == 42
    assert side.model == "gpt-4o-mini"
    assert side.ttfb_ms == 120.0


def test_sse_prefers_dispatch_text_and_counts_words_without_usage() -> None:
    body = _stream("one two three", usage=False)
    side = side_from(_resp(body, "text/event-stream", text="one two three four"), body, "chat", b"{}")
    assert side.text == "one two three four"
    assert side.completion_tokens == 4  # the contract's fallback: counted words


def test_sse_tool_call_fragments() -> None:
    body = _stream("", usage=False, tool_args=['{"pat', 'ient": ', '"A1"}'])
    side = side_from(_resp(body, "text/event-stream"), body, "chat", b"{}")
    assert side.json == [{"type": "function", "name": "lookup", "arguments": {"patient": "A1"}}]
    assert side.text is None


def test_stream_cut_mid_event_keeps_dispatch_text() -> None:
    body = _stream("hello there", usage=False)[:-30]
    side = side_from(_resp(body, "text/event-stream", text="hello there"), body, "chat", b"{}")
    assert side.text == "hello there"
    side = side_from(_resp(body, "text/event-stream"), body, "chat", b"{}")
    assert side.text == "hello there"  # the events before the cut
    assert side.model == "gpt-4o-mini"
    assert side.finish_reason is None


@pytest.mark.parametrize("verbose", [False, True])
def test_transcription_json(verbose: bool) -> None:
    segments = ["Doktor, saya demam.", "Sudah tiga hari."]
    value = payloads.transcription(
        " ".join(segments), segments, language="malay", duration=4.0, verbose=verbose
    )
    body = _json(value)
    assert side_from(_resp(body), body, "audio", b"").text == "Doktor, saya demam. Sudah tiga hari."


def test_transcription_text_srt_and_vtt() -> None:
    body = b"I have had a cough for two weeks.\n"
    assert (
        side_from(_resp(body, "text/plain"), body, "audio", b"").text == "I have had a cough for two weeks."
    )
    srt = (
        b"1\n00:00:00,000 --> 00:00:02,000\nI have had a cough\n\n"
        b"2\n00:00:02,000 --> 00:00:04,500\nfor 2 weeks.\n120\n\n"
    )
    assert (
        side_from(_resp(srt, "text/plain"), srt, "audio", b"").text == "I have had a cough for 2 weeks. 120"
    )
    vtt = (
        "WEBVTT\n\nNOTE made by a test\nacross two lines\n\n"
        "00:00.000 --> 00:02.000\n<v Doktor>Ada demam?</v>\n\n"
        "intro\n00:02.000 --> 00:03.000\nTak ada.\n"
    )
    assert subtitle_text(vtt) == "Ada demam? Tak ada."


def test_embeddings_float_and_base64_in_index_order() -> None:
    vecs = [embed(t, 16) for t in ("demam", "batuk", "sakit kepala")]
    as_float = payloads.embedding_list("text-embedding-3-small", vecs, base64=False, tokens=3)
    as_float["data"].reverse()  # an answer may list them in any order; `index` says which is which
    body = _json(as_float)
    side = side_from(_resp(body), body, "embed", b"{}")
    assert side.vectors == vecs
    assert side.model == "text-embedding-3-small"

    body = _json(payloads.embedding_list("m", vecs, base64=True, tokens=3))
    decoded = side_from(_resp(body), body, "embed", b"{}").vectors
    assert decoded is not None
    assert len(decoded) == 3
    for got, want in zip(decoded, vecs, strict=True):
        assert got == pytest.approx(want, abs=1e-7)  # float32 on the wire


def test_embeddings_bare_list_and_bad_base64() -> None:
    body = _json([[1.0, 2.0], [3, 4]])
    assert side_from(_resp(body), body, "embed", b"{}").vectors == [[1.0, 2.0], [3.0, 4.0]]
    body = _json({"data": [{"index": 0, "embedding": to_base64([1.0])[:-2] + "!"}]})
    assert side_from(_resp(body), body, "embed", b"{}").vectors is None


def test_rerank_results() -> None:
    value = payloads.rerank(
        rerank_id="r1",
        model="rerank-v3",
        ranked=[(2, 0.9), (0, 0.5), (3, 0.5), (1, 0.1)],
        documents=["a", "b", "c", "d"],
        return_documents=True,
        tokens=4,
    )
    value["results"].reverse()  # sorted by score whatever the order they come in; ties by index
    body = _json(value)
    side = side_from(_resp(body), body, "rerank", b"{}")
    assert side.ranking == [2, 0, 3, 1]
    assert side.model == "rerank-v3"
    body = _json([{"index": 1, "score": 0.2}, {"index": 0, "score": 0.7}])
    assert side_from(_resp(body), body, "rerank", b"{}").ranking == [0, 1]
    body = _json([0.1, 0.8, 0.3])
    assert side_from(_resp(body), body, "rerank", b"{}").ranking == [1, 2, 0]


@pytest.mark.parametrize(
    ("body", "content_type", "route", "status", "encoding"),
    [
        (b"not json", "application/json", "chat", 200, None),
        (b'{"choices": "nope"}', "application/json", "chat", 200, None),
        (b"\x00\x01", "application/json", "chat", 200, "gzip"),
        (b"data: {broken\n\n", "text/event-stream", "chat", 200, None),
        (b'{"data": [{"embedding": "x"}]}', "application/json", "embed", 200, None),
        (b'{"results": [{"index": "a"}]}', "application/json", "rerank", 200, None),
        (b"[" * 100_000, "application/json", "chat", 200, None),
        (b"", "application/json", "chat", 200, None),
        (_json(payloads.error("overloaded", kind="server_error")), "application/json", "chat", 503, None),
    ],
)
def test_errors_and_unparseable_bodies_never_raise(
    body: bytes, content_type: str, route: str, status: int, encoding: str | None
) -> None:
    resp = _resp(
        body, content_type, status=status, encoding=encoding, error="http_5xx" if status >= 500 else None
    )
    side = side_from(resp, body, route, b"{}")
    assert (side.text, side.json, side.vectors, side.ranking, side.completion_tokens) == (None,) * 5
    assert side.status == status
    assert side.error == resp.error


def test_silence_is_an_empty_transcript() -> None:
    assert side_from(_resp(b"", "text/plain"), b"", "audio", b"").text == ""


def test_no_response_at_all() -> None:
    side = side_from(_resp(b"", status=None, error="timeout"), b"", "chat", b"{}")
    assert (side.status, side.error, side.text, side.total_ms) == (None, "timeout", None, 900.0)
