"""One shadow call: send a captured request to the candidate (or secondary) and record its side, timed."""

from __future__ import annotations

import asyncio
import errno
import json
import time
from dataclasses import dataclass

import aiohttp
import msgspec
from multidict import CIMultiDict
from pydantic import SecretStr
from yarl import URL

from mirror.exchange import Body, RequestSide, ResponseSide, Role
from mirror.headers import HOP_BY_HOP, REDACTED, one_spelling, public_query
from mirror.sse import BodyTooLarge, MalformedBody, decoded, json_model, reassemble_sse

# Error classes recorded on a side (`ResponseSide.error`); comparators and the gate count them.
TIMEOUT = "timeout"
CONNECT_REFUSED = "connect_refused"
CONNECT_ERROR = "connect_error"
RESET = "reset"
HTTP_5XX = "http_5xx"
HTTP_4XX = "http_4xx"
MALFORMED = "malformed_body"
TOO_LARGE = "too_large"
CONNECT_FAILURES = frozenset({CONNECT_REFUSED, CONNECT_ERROR})

_READ_BYTES = 64 * 1024
# Headers the dispatcher sets itself; the captured values would be wrong or secret.
_NOT_REPLAYED = HOP_BY_HOP | {"host", "content-length"}
CLIENT_CREDENTIALS = ("Authorization", "Proxy-Authorization", "Api-Key", "X-Api-Key", "Cookie")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a shadow call goes and with whose credentials (never the client's)."""

    role: Role
    base_url: str
    api_key: SecretStr | None = None


@dataclass(frozen=True, slots=True)
class CallLimits:
    timeout_s: float
    max_body_bytes: int
    shadow_header: str
    model_version_header: str
    gpu_header: str


def shadow_headers(request: RequestSide, target: Target, limits: CallLimits) -> CIMultiDict[str]:
    """The captured request's headers for a shadow call: secrets dropped, own credentials added."""
    headers = one_spelling(
        (k, v) for k, v in request.headers if v != REDACTED and k.lower() not in _NOT_REPLAYED
    )
    # Whatever `secret_headers` says, a client's credentials never go beyond the primary.
    for name in CLIENT_CREDENTIALS:
        headers.popall(name, None)
    if target.api_key is not None:
        headers["Authorization"] = f"Bearer {target.api_key.get_secret_value()}"
    headers[limits.shadow_header] = "1"
    return headers


async def call(
    session: aiohttp.ClientSession,
    target: Target,
    request: RequestSide,
    body: bytes,
    limits: CallLimits,
) -> ResponseSide:
    """Send the request as the client sent it to the primary; never raises for the target's faults."""
    url = URL(
        target.base_url.rstrip("/")
        + request.path
        + (f"?{query}" if (query := public_query(request.query)) else ""),
        encoded=True,
    )
    started_wall = time.time()
    started = time.perf_counter()
    status: int | None = None
    headers: list[tuple[str, str]] = []
    headers_ms: float | None = None
    first_ms: float | None = None
    chunks: list[bytes] = []
    size = 0
    error: str | None = None
    try:
        async with (
            asyncio.timeout(limits.timeout_s),
            session.request(
                request.method,
                url,
                headers=shadow_headers(request, target, limits),
                data=body or None,
                allow_redirects=False,
            ) as resp,
        ):
            status = resp.status
            headers = [(str(k), v) for k, v in resp.headers.items()]
            headers_ms = _ms(started)
            while chunk := await resp.content.readany():
                if first_ms is None:
                    first_ms = _ms(started)
                size += len(chunk)
                if size > limits.max_body_bytes:
                    error = TOO_LARGE  # bounded memory: an endless or huge answer stops here
                    break
                chunks.append(chunk)
    except TimeoutError:
        error = TIMEOUT
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError) or exc.os_error.errno == errno.ECONNREFUSED
        error = CONNECT_REFUSED if refused else CONNECT_ERROR
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError, OSError):
        error = RESET
    except aiohttp.ClientResponseError:  # what came back is not HTTP (a bad status line or header)
        error = MALFORMED
    except aiohttp.ClientError:
        error = RESET
    total_ms = _ms(started)
    data = b"".join(chunks)
    side = ResponseSide(
        role=target.role,
        status=status,
        headers=headers,
        body=Body(size=size, data=data),
        started_at=started_wall,
        headers_ms=headers_ms,
        ttfb_ms=first_ms,
        total_ms=total_ms,
        error=error,
    )
    return identify(side, limits)


def identify(side: ResponseSide, limits: CallLimits) -> ResponseSide:
    """Fill in model, version, GPU, the SSE text, and a class for a bad status or a malformed body."""
    header = {k.lower(): v for k, v in side.headers}
    content_type = header.get("content-type", "")
    streamed = content_type.startswith("text/event-stream")
    error = side.error
    if error is None and side.status is not None:
        if side.status >= 500:
            error = HTTP_5XX
        elif side.status >= 400:
            error = HTTP_4XX
    model = None
    text = None
    raw = side.body.data
    if raw is not None and error in (None, HTTP_4XX, HTTP_5XX):
        try:
            body = decoded(raw, header.get("content-encoding"), limits.max_body_bytes)
            if streamed:
                assembled = reassemble_sse(body)
                model, text = assembled.model, assembled.text
            elif "json" in content_type:
                model = json_model(body)
                if model is None and side.status == 200 and not _is_json(body):
                    raise MalformedBody("a JSON answer that does not parse")
        except BodyTooLarge:  # a small compressed answer that inflates past the body limit
            error = error or TOO_LARGE
        except MalformedBody:
            error = error or MALFORMED
    return msgspec.structs.replace(
        side,
        error=error,
        streamed=streamed,
        model=model,
        model_version=header.get(limits.model_version_header.lower()),
        gpu=header.get(limits.gpu_header.lower()),
        text=text,
    )


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
