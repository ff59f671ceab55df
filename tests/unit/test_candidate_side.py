"""What a shadow call sends and how its answer is read: headers, SSE reassembly, error classes."""

from __future__ import annotations

import gzip
import json

import pytest
from pydantic import SecretStr

from mirror.candidate import CallLimits, Target, identify, shadow_headers
from mirror.exchange import Body, RequestSide, ResponseSide
from mirror.sse import MalformedBody, decoded, reassemble_sse
from shadowgate.settings import ConfigError
from shadowgate.when import parse_when

LIMITS = CallLimits(
    timeout_s=10,
    max_body_bytes=1000,
    shadow_header="X-Shadowgate-Shadow",
    model_version_header="x-model-version",
    gpu_header="x-gpu-id",
)


def side(
    status: int | None, body: bytes, content_type: str = "application/json", **kw: object
) -> ResponseSide:
    return ResponseSide(
        role="candidate",
        status=status,
        headers=[("Content-Type", content_type), ("x-model-version", "v9"), ("X-GPU-ID", "GPU-1")],
        body=Body(len(body), body),
        started_at=0.0,
        headers_ms=1.0,
        ttfb_ms=2.0,
        total_ms=3.0,
        **kw,  # type: ignore[arg-type]
    )


def test_shadow_headers_drop_client_secrets_and_add_our_own() -> None:
    request = RequestSide(
        method="POST",
        path="/v1/chat/completions",
        query="",
        headers=[
            ("Host", "tap"),
            ("Authorization", "[redacted]"),
            ("X-Api-Key", "[redacted]"),
            ("Content-Type", "multipart/form-data; boundary=abc"),
            ("Content-Length", "10"),
            ("X-Tenant-ID", "klinik-a"),
        ],
        body=Body(0, b""),
    )
    got = shadow_headers(request, Target("candidate", "http://c", SecretStr("sk-own")), LIMITS)
    assert dict(got) == {
        "Content-Type": "multipart/form-data; boundary=abc",
        "X-Tenant-ID": "klinik-a",
        "Authorization": "Bearer sk-own",
        "X-Shadowgate-Shadow": "1",
    }
    no_key = shadow_headers(request, Target("candidate", "http://c"), LIMITS)
    assert "Authorization" not in no_key


def test_sse_reassembly() -> None:
    events = [
        {"model": "llama", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {"model": "llama", "choices": [{"index": 0, "delta": {"content": "Dos: "}}]},
        {"model": "llama", "choices": [{"index": 1, "delta": {"content": "other choice"}}]},
        {
            "model": "llama",
            "choices": [{"index": 0, "delta": {"content": "500 mg"}, "finish_reason": "stop"}],
        },
    ]
    body = (
        b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b": keepalive\n\ndata: [DONE]\n\n"
    )
    got = reassemble_sse(body)
    assert got.text == "Dos: 500 mg"
    assert got.model == "llama"
    assert got.finish_reason == "stop"
    assert got.events == 4
    with pytest.raises(MalformedBody):
        reassemble_sse(b"data: {not json\n\n")
    with pytest.raises(MalformedBody):
        reassemble_sse(b"<html>oops</html>")


def test_decoding_bodies() -> None:
    assert decoded(gzip.compress(b"abc"), "gzip") == b"abc"
    assert decoded(b"abc", None) == b"abc"
    with pytest.raises(MalformedBody):
        decoded(b"not gzip", "gzip")


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error", "model"),
    [
        (200, b'{"model": "llama-3.1-70b"}', "application/json", None, "llama-3.1-70b"),
        (200, b'{"choices": [', "application/json", "malformed_body", None),
        (503, b'{"error": {}}', "application/json", "http_5xx", None),
        (429, b'{"error": {}}', "application/json", "http_4xx", None),
        (200, b"data: {\n\n", "text/event-stream", "malformed_body", None),
        (200, b"plain words", "text/plain", None, None),
    ],
)
def test_identify_classifies(
    status: int, body: bytes, content_type: str, error: str | None, model: str | None
) -> None:
    got = identify(side(status, body, content_type), LIMITS)
    assert got.error == error
    assert got.model == model
    assert got.model_version == "v9"
    assert got.gpu == "GPU-1"


def test_identify_keeps_transport_errors() -> None:
    got = identify(side(None, b"", error="timeout"), LIMITS)
    assert got.error == "timeout"


def test_parse_when() -> None:
    now = 1_800_000_000.0
    assert parse_when("15m", now=now) == (now - 900) * 1000
    assert parse_when("2026-11-27T09:00:00", now=now) == 1_795_770_000_000
    assert parse_when("2026-11-27T09:00:00+08:00", now=now) == 1_795_741_200_000
    with pytest.raises(ConfigError, match="15m"):
        parse_when("yesterday-ish", now=now)
