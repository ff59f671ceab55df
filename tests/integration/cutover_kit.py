"""Two OpenAI-like upstreams for cutover tests: each says who answered, and the candidate misbehaves on
demand, per route kind, while both remember the headers they got."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from mirror.tap import STATE, TapState, build_app
from shadowgate.settings import Settings
from tests.integration.tapkit import serving


@dataclass
class Side:
    """One upstream: `behaviour[route]` is ok, 500, 429, slow or reset; `seen` is what it got."""

    name: str
    behaviour: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def count(self, route: str) -> int:
        return sum(1 for r, _ in self.seen if r == route)


SIDE = web.AppKey("side", Side)


async def _answer(
    request: web.Request, route: str, payload: Callable[[str, dict[str, object]], object]
) -> web.StreamResponse:
    side = request.app[SIDE]
    body = await request.json()
    side.seen.append((route, {k.lower(): v for k, v in request.headers.items()}))
    mode = side.behaviour.get(route, "ok")
    if mode == "slow":  # up to 30 s, or until the tap gives up and closes the connection
        for _ in range(600):
            if request.transport is None or request.transport.is_closing():
                return web.Response()
            await asyncio.sleep(0.05)
    if mode == "reset":
        assert request.transport is not None
        request.transport.abort()
        return web.Response()
    if mode in ("500", "429"):
        return web.json_response({"error": {"message": "unavailable"}}, status=int(mode))
    if body.get("stream"):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in (f"{side.name}: ", "part"):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": f"{side.name}-model",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
    return web.json_response(payload(side.name, body), headers={"x-model-version": f"{side.name}-v1"})


def _chat(name: str, body: dict[str, object]) -> object:
    messages = body["messages"]
    assert isinstance(messages, list)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": f"{name}-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"{name}: {messages[-1]['content']}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


def _embed(name: str, body: dict[str, object]) -> object:
    first = 1.0 if name == "primary" else -1.0
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [first, 0.5]}],
        "model": f"{name}-embed",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }


async def chat(request: web.Request) -> web.StreamResponse:
    return await _answer(request, "chat", _chat)


async def embed(request: web.Request) -> web.StreamResponse:
    return await _answer(request, "embed", _embed)


def build_side(name: str) -> web.Application:
    app = web.Application()
    app[SIDE] = Side(name)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embed)
    return app


@asynccontextmanager
async def two_upstreams() -> AsyncIterator[tuple[str, Side, str, Side]]:
    primary, candidate = build_side("primary"), build_side("candidate")
    async with serving(primary) as p_url, serving(candidate) as c_url:
        yield p_url, primary[SIDE], c_url, candidate[SIDE]


@asynccontextmanager
async def tap(settings: Settings) -> AsyncIterator[tuple[str, TapState]]:
    app = build_app(settings)
    async with serving(app, tap_runner=True) as url:
        yield url, app[STATE]


async def until(check: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition") -> None:
    """Wait for `check` to hold (polling); fail the test with `what` when it does not in time."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
