"""Sending an upstream's answer on to the client: whole when small, chunk by chunk (SSE above all) when not.

The tap relays the primary's answer and, in cutover, the candidate's; both go through here."""

from __future__ import annotations

import time
from typing import NamedTuple

import aiohttp
from aiohttp import web

from mirror.headers import client_response_headers

# Responses with a known length up to this size are read whole and sent in one write (cheapest path);
# anything else, SSE above all, is relayed chunk by chunk as it arrives.
BUFFER_RESPONSE_BYTES = 1024 * 1024


class Relayed(NamedTuple):
    response: web.StreamResponse
    copy: bytes | None  # None when not kept or over the limit
    first_byte: float | None  # perf_counter() of the first body byte
    error: str | None  # the upstream's error class when its stream broke
    client_left: bool


def buffered(resp: aiohttp.ClientResponse) -> bool:
    """Whether the answer is small and known-length enough to be read whole before it is sent."""
    length = resp.content_length
    if length is None or length > BUFFER_RESPONSE_BYTES:
        return False
    return not resp.headers.get("Content-Type", "").startswith("text/event-stream")


async def relay(
    request: web.Request, resp: aiohttp.ClientResponse, keep_limit: int, first: bytes = b""
) -> Relayed:
    """Send the upstream's body to the client as it arrives (`first`, already read, before it), keeping
    a copy up to `keep_limit` bytes (-1: none).

    When the upstream's stream breaks after the headers went out, the client's connection is ended
    abruptly, as the upstream did to us, so the client sees a broken response and not a complete one.
    """
    out = web.StreamResponse(
        status=resp.status, reason=resp.reason, headers=client_response_headers(resp.headers)
    )
    chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
    if resp.content_length is not None and not chunked:
        out.content_length = resp.content_length
    await out.prepare(request)
    copy: bytearray | None = bytearray() if keep_limit >= 0 else None
    first_byte: float | None = None
    chunk = first
    while True:
        if not chunk:
            try:
                chunk = await resp.content.readany()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if request.transport is not None:
                    request.transport.abort()
                return Relayed(out, _bytes(copy), first_byte, type(exc).__name__, False)
            if not chunk:
                break
        if first_byte is None:
            first_byte = time.perf_counter()
        if copy is not None:
            if len(copy) + len(chunk) > keep_limit:
                copy = None
            else:
                copy += chunk
        try:
            await out.write(chunk)
        except ConnectionResetError:
            resp.close()
            return Relayed(out, _bytes(copy), first_byte, None, True)
        chunk = b""
    try:
        await out.write_eof()
    except ConnectionResetError:  # the client left just before the end of the answer
        return Relayed(out, _bytes(copy), first_byte, None, True)
    return Relayed(out, _bytes(copy), first_byte, None, False)


def _bytes(copy: bytearray | None) -> bytes | None:
    return bytes(copy) if copy is not None else None
