"""A minimal primary for the benchmarks: a fixed OpenAI chat.completion for every POST, on uvloop.

`--sink` turns it into the mirror sink for nginx: 200 with an empty body for any request, at once.
`--delay-ms N` holds every answer N ms first: a slow candidate (or a slow mirror target for nginx).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]

# A realistic non-streamed chat.completion, about 700 bytes; built once, sent as the same bytes every time.
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench0000000000000000000000000",
        "object": "chat.completion",
        "created": 1732700000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": (
                        "Based on the notes, the patient reports a mild headache for two days, no fever, "
                        "no visual changes and no neck stiffness. Suggest hydration, rest and paracetamol "
                        "as needed; review if symptoms persist beyond a week or new symptoms appear."
                    ),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 96,
            "completion_tokens": 58,
            "total_tokens": 154,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_bench00001",
    },
    separators=(",", ":"),
).encode()


async def _completion(request: web.Request) -> web.Response:
    await request.read()  # a real server reads the prompt before it answers
    return web.Response(body=COMPLETION, content_type="application/json")


async def _sink(request: web.Request) -> web.Response:
    return web.Response(status=200)


def _delayed(handler: Handler, delay_s: float) -> Handler:
    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(delay_s)
        return await handler(request)

    return slow


def build_app(*, sink: bool, delay_ms: float = 0.0) -> web.Application:
    app = web.Application()
    handler: Handler = _sink if sink else _completion
    if delay_ms > 0:
        handler = _delayed(handler, delay_ms / 1000)
    if sink:
        app.router.add_route("*", "/{tail:.*}", handler)
    else:
        app.router.add_post("/v1/chat/completions", handler)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sink", action="store_true", help="answer 200 with no body to anything")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="hold every answer this long first")
    args = parser.parse_args()

    import uvloop

    web.run_app(
        build_app(sink=args.sink, delay_ms=args.delay_ms),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=2048,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
