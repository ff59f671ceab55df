"""A small fake primary for tap tests: byte-exact answers, timed SSE, echo of what it received."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time

from aiohttp import web

SSE_CHUNKS = 6
SSE_GAP_S = 0.15


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    text = " ".join(m["content"] for m in body["messages"])
    if not body.get("stream"):
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"echo: {text}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            }
        )
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i in range(SSE_CHUNKS):
        chunk = {
            "id": "chatcmpl-2",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "delta": {"content": f"part{i} "}, "finish_reason": None}],
            # When the upstream produced it: the test compares with when the client saw it.
            "system_fingerprint": repr(time.time()),
        }
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await asyncio.sleep(SSE_GAP_S)
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def transcribe(request: web.Request) -> web.Response:
    form = await request.post()
    upload = form["file"]
    assert isinstance(upload, web.FileField)
    data = upload.file.read()
    return web.json_response({"text": f"{len(data)} bytes sha256 {hashlib.sha256(data).hexdigest()}"})


async def embeddings(request: web.Request) -> web.Response:
    body = await request.json()
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [
        {"object": "embedding", "index": i, "embedding": [len(s) / 10, 0.5, -0.25]}
        for i, s in enumerate(inputs)
    ]
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
    )


async def echo(request: web.Request) -> web.Response:
    """Says what arrived: method, path, query, headers and a digest of the raw body."""
    raw = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_sha256": hashlib.sha256(raw).hexdigest(),
            "body_len": len(raw),
        },
        headers={"Set-Cookie": "session=upstream-secret", "X-Upstream": "yes"},
        status=int(request.query.get("status", "200")),
    )


async def gzipped(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b'{"ok": true}' * 100),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "5")))
    return web.Response(text="late")


async def broken_stream(request: web.Request) -> web.StreamResponse:
    """Starts an SSE answer, then drops the connection: a primary failing mid-stream."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(b'data: {"partial": 1}\n\n')
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.abort()
    return resp


async def endless_stream(request: web.Request) -> web.StreamResponse:
    """SSE that goes on for a long time (bounded), for clients that leave mid-way."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i in range(200):
        await resp.write(f"data: {i}\n\n".encode())
        await asyncio.sleep(0.02)
    await resp.write_eof()
    return resp


def build_upstream() -> web.Application:
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/audio/transcriptions", transcribe)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/slow", slow)
    app.router.add_get("/echo-stream/broken", broken_stream)
    app.router.add_get("/echo-stream/endless", endless_stream)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    return app
