"""A fake candidate server whose behaviour each request picks by its path, and which remembers what it got."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    body_sha256: str


@dataclass
class CandidateLog:
    seen: list[Seen] = field(default_factory=list)


LOG = web.AppKey("log", CandidateLog)
IDENTITY = {"x-model-version": "llama-3.1-70b@vllm-0.6", "x-gpu-id": "GPU-2"}


async def behave(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    request.app[LOG].seen.append(
        Seen(
            request.method,
            request.path_qs,
            {k.lower(): v for k, v in request.headers.items()},
            hashlib.sha256(body).hexdigest(),
        )
    )
    mode = request.match_info.get("mode", "")
    if request.path == "/v1/chat/completions":
        mode = "stream" if json.loads(body).get("stream") else "ok"
    if mode.startswith("slow"):
        await asyncio.sleep(float(request.query.get("s", "5")))
    if mode == "reset":
        assert request.transport is not None
        request.transport.abort()
        return web.Response()
    if mode == "500":
        return web.json_response({"error": {"message": "boom"}}, status=500, headers=IDENTITY)
    if mode == "garbage":
        return web.Response(body=b'{"choices": [', content_type="application/json", headers=IDENTITY)
    if mode == "stream":
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **IDENTITY})
        await resp.prepare(request)
        for piece in ("Paracetamol ", "1 g ", "tiada demam"):
            chunk = {"model": "llama-3.1-70b", "choices": [{"index": 0, "delta": {"content": piece}}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(0.01)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
    if mode == "huge":
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for _ in range(10_000):  # bounded: 10,000 x 1 kB
            await resp.write(b"data: " + b"x" * 1024 + b"\n\n")
        await resp.write_eof()
        return resp
    return web.json_response(
        {"model": "llama-3.1-70b", "echo_sha256": hashlib.sha256(body).hexdigest()}, headers=IDENTITY
    )


def build_candidate() -> web.Application:
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app[LOG] = CandidateLog()
    app.router.add_post("/v1/chat/completions", behave)
    app.router.add_route("*", "/{prefix}/{mode}", behave)
    app.router.add_route("*", "/{prefix}/{mode}/{rest:.*}", behave)
    return app
