"""The tap: answer every request from the primary, unchanged, and hand a copy to the capture writer."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy
from yarl import URL

from mirror.attribution import Attribution, Attributor
from mirror.blobs import BlobStore
from mirror.capture import CaptureWriter
from mirror.cutover import CutoverPath, Fallback, with_fallback
from mirror.cutover import running as cutover_running
from mirror.exchange import Body, Exchange, RequestSide, ResponseSide
from mirror.headers import client_response_headers, public_query, sanitize, upstream_request_headers
from mirror.metrics import TapMetrics
from mirror.modes import ModeWatcher
from mirror.relay import buffered, relay
from mirror.streams import Streams, redis_client
from shadowgate.crypto import cipher_from
from shadowgate.settings import Settings

log = logging.getLogger("shadowgate.tap")

_STREAM_READ_BYTES = 256 * 1024


@dataclass
class TapState:
    settings: Settings
    attributor: Attributor
    metrics: TapMetrics
    primary_base: str
    secret_headers: frozenset[str]
    session: aiohttp.ClientSession | None = None
    capture: CaptureWriter | None = None
    # Per tenant x route modes and the serving path of cutover (docs/CUTOVER.md); None without Redis.
    modes: ModeWatcher | None = None
    cutover: CutoverPath | None = None
    requests: int = 0
    primary_failures: int = 0
    _histograms: dict[str, object] = field(default_factory=dict)

    def observe_primary(self, route: str, seconds: float) -> None:
        child = self._histograms.get(route)
        if child is None:
            child = self._histograms[route] = self.metrics.primary_seconds.labels(route)
        child.observe(seconds)  # type: ignore[attr-defined]


STATE = web.AppKey("state", TapState)


def build_app(
    settings: Settings,
    *,
    metrics: TapMetrics | None = None,
    multiproc_dir: Path | None = None,
    with_dispatch: bool = False,
) -> web.Application:
    """The tap as an aiohttp application. With capture on, `settings.redis_url` must be set.

    `with_dispatch` also runs a dispatcher in this process, on its own Redis client and connection
    pool, so a slow or dead candidate still cannot delay a user's answer."""
    if settings.capture and not settings.redis_url:
        raise ValueError("capture needs settings.redis_url (the CLI starts the embedded Redis)")
    state = TapState(
        settings=settings,
        attributor=Attributor(settings),
        metrics=metrics or TapMetrics(multiproc_dir),
        primary_base=str(settings.primary_url).rstrip("/"),
        secret_headers=frozenset(h.lower() for h in settings.secret_headers),
    )
    app = web.Application(client_max_size=settings.limits.max_request_body_bytes)
    app[STATE] = state
    app.cleanup_ctx.append(_primary_session)
    if settings.capture:
        app.cleanup_ctx.append(_capture_writer)
        if with_dispatch:
            app.cleanup_ctx.append(_dispatcher)
    if settings.redis_url:
        app.cleanup_ctx.append(_cutover)
    admin = settings.admin_prefix
    app.router.add_get(f"{admin}/healthz", _healthz)
    app.router.add_get(f"{admin}/metrics", _metrics)
    # Every path, even one whose decoded form holds a newline (`.` would not match it: a 404 of our own).
    app.router.add_route("*", r"/{tail:[\s\S]*}", _proxy)
    return app


async def _primary_session(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    s = state.settings
    state.session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(
            total=None, connect=s.primary_connect_timeout_s, sock_read=s.primary_timeout_s
        ),
        # Bodies pass through as bytes: gzip stays gzip, and no cookie of one client reaches another.
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )
    yield
    await state.session.close()
    log.info(
        "tap stopped: %d requests, %d primary failures, %s",
        state.requests,
        state.primary_failures,
        _capture_summary(state.capture),
    )


async def _capture_writer(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    s = state.settings
    assert s.redis_url is not None
    redis = redis_client(s.redis_url)
    cipher = cipher_from(s.encryption)
    blobs = BlobStore(s.blob_path, cipher)
    writer = CaptureWriter(redis, Streams(s.stream_prefix), s.limits, blobs, state.metrics, cipher)
    task = asyncio.create_task(writer.run(), name="capture-writer")
    state.capture = writer
    yield
    # aiohttp runs this after in-flight requests finished: flush what they queued, then stop.
    await writer.close(s.shutdown_grace_s)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await redis.aclose()


async def _cutover(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    submit = state.capture.submit if state.capture is not None else None
    async with cutover_running(state.settings, state.metrics, submit) as (state.modes, state.cutover):
        yield


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    from mirror.dispatch import Dispatcher, candidate_session

    s = app[STATE].settings
    assert s.redis_url is not None
    redis = redis_client(s.redis_url)
    session = candidate_session(s)
    stop = asyncio.Event()
    dispatcher = Dispatcher(redis, s, session)
    task = asyncio.create_task(dispatcher.run(stop, grace_s=s.shutdown_grace_s), name="dispatcher")
    yield
    stop.set()
    await asyncio.gather(task, return_exceptions=True)
    await session.close()
    await redis.aclose()


def _capture_summary(writer: CaptureWriter | None) -> str:
    if writer is None:
        return "capture off"
    dropped = ", ".join(f"{k}={v}" for k, v in sorted(writer.dropped.items())) or "none"
    return f"{writer.captured} captured, dropped: {dropped}"


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    capture = state.capture
    body: dict[str, object] = {"status": "ok", "pid": os.getpid(), "requests": state.requests}
    if capture is not None:
        body["capture"] = {
            "queue": capture.depth,
            "captured": capture.captured,
            "dropped": dict(capture.dropped),
        }
    if state.modes is not None and state.cutover is not None:
        snap = state.modes.snapshot
        body["cutover"] = {
            "kill_switch": snap.killed,
            "modes_version": snap.version,
            "in_cutover": sorted(f"{t}|{r}" for t, r in snap.cutover),
            "modes_age_s": state.modes.age_s(),
            "mode_refresh_errors": state.modes.errors,
            "served_by_candidate": state.cutover.served,
            "fallbacks": dict(state.cutover.fallbacks),
        }
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    data, content_type = request.app[STATE].metrics.render()
    return web.Response(body=data, headers={"Content-Type": content_type})


def _upstream_error(status: int, cause: str) -> web.Response:
    return web.json_response(
        {"error": {"type": "shadowgate_primary_error", "code": cause, "message": _MESSAGES[cause]}},
        status=status,
    )


_MESSAGES = {
    "primary_unreachable": "the production route could not be reached",
    "primary_timeout": "the production route did not answer in time",
    "primary_disconnected": "the production route closed the connection without an answer",
}


def _classify(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return 504, "primary_timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return 502, "primary_disconnected"
    return 502, "primary_unreachable"


async def _proxy(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.requests += 1
    limits = state.settings.limits
    attribution = state.attributor.attribute(request.path, request.headers)
    capture = attribution.sampled and state.capture is not None
    entry = None
    if state.modes is not None:
        modes = state.modes.snapshot
        if modes.killed:
            capture = False  # the kill switch: the primary answers, nothing is captured or cut over
        else:
            entry = modes.cutover.get((attribution.tenant, attribution.route.kind))
    started_wall = time.time()
    started = time.perf_counter()

    request_body: bytes | None = None
    data: bytes | io.BytesIO | AsyncIterator[bytes] | None
    length = request.content_length
    if length is not None and length > limits.max_capture_body_bytes:
        # Too big to hold: relay it as it arrives (Content-Length is kept, so no re-chunking).
        data = request.content.iter_chunked(_STREAM_READ_BYTES)
        if capture:
            capture = False
            _drop(state, "too_large")
    else:
        try:
            request_body = await request.read()
        except ConnectionResetError:
            # The client left before its request was complete: nothing reached the primary, and
            # nobody is there to answer (aiohttp drops the response quietly).
            log.info("request %s: the client left mid-request", attribution.request_id)
            return web.Response(status=400)
        if len(request_body) > _STREAM_READ_BYTES:
            # aiohttp writes a BytesIO in slices instead of one write that holds the loop.
            data = io.BytesIO(request_body)
        else:
            data = request_body if request_body or request.body_exists else None

    fallback: Fallback | None = None
    if entry is not None:
        assert state.cutover is not None
        if request_body is None:
            fallback = state.cutover.not_offered(attribution)
        else:
            served = await state.cutover.serve(request, attribution, entry, request_body, capture=capture)
            if not isinstance(served, Fallback):
                return served
            fallback = served  # the candidate failed before answering: the primary answers
        # The primary's side is timed on its own; the candidate's attempt has its own record.
        started_wall, started = time.time(), time.perf_counter()

    assert state.session is not None
    url = URL(state.primary_base + request.raw_path, encoded=True)
    try:
        resp = await state.session.request(
            request.method,
            url,
            headers=upstream_request_headers(request.headers),
            data=data,
            allow_redirects=False,
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return _primary_failed(state, attribution, exc, started)

    headers_at = time.perf_counter()
    out: web.StreamResponse
    try:
        if buffered(resp):
            try:
                body = await resp.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return _primary_failed(state, attribution, exc, started)
            out = web.Response(
                status=resp.status,
                reason=resp.reason,
                headers=client_response_headers(resp.headers),
                body=body,
            )
            end = time.perf_counter()
            first_byte = end if body else None
            error = None
            aborted = False
            captured: bytes | None = body
        else:
            out, captured, first_byte, error, aborted = await relay(
                request, resp, limits.max_capture_body_bytes if capture else -1
            )
            end = time.perf_counter()
            if capture and captured is None:
                capture = False
                _drop(state, "too_large")
    finally:
        resp.release()

    state.metrics.count_request(attribution.route.kind, resp.status)
    state.observe_primary(attribution.route.kind, end - started)
    if capture and state.capture is not None:
        if request_body is not None and len(request_body) > limits.max_capture_body_bytes:
            _drop(state, "too_large")
        else:
            exchange = _exchange(
                state,
                request,
                attribution,
                request_body or b"",
                resp,
                captured or b"",
                started_wall=started_wall,
                ms=(headers_at - started, first_byte and first_byte - started, end - started),
                error=error,
                aborted=aborted,
            )
            state.capture.submit(with_fallback(exchange, fallback))
    return out


def _primary_failed(
    state: TapState, attribution: Attribution, exc: BaseException, started: float
) -> web.Response:
    status, cause = _classify(exc)
    state.primary_failures += 1
    state.metrics.primary_errors.labels(cause).inc()
    state.metrics.count_request(attribution.route.kind, status)
    log.warning(
        "request %s to primary failed after %.0f ms: %s",
        attribution.request_id,
        (time.perf_counter() - started) * 1000,
        type(exc).__name__,
    )
    return _upstream_error(status, cause)


def _drop(state: TapState, reason: str) -> None:
    if state.capture is not None:
        state.capture.drop(reason)


def _exchange(
    state: TapState,
    request: web.Request,
    attribution: Attribution,
    request_body: bytes,
    resp: aiohttp.ClientResponse,
    response_body: bytes,
    *,
    started_wall: float,
    ms: tuple[float, float | None, float],
    error: str | None,
    aborted: bool,
) -> Exchange:
    secret = state.secret_headers
    headers_s, first_s, total_s = ms
    streamed = resp.headers.get("Content-Type", "").startswith("text/event-stream")
    return Exchange(
        id=attribution.request_id,
        tenant=attribution.tenant,
        route=attribution.route.kind.value,
        route_prefix=attribution.route.prefix,
        captured_at=time.time(),
        request=RequestSide(
            method=request.method,
            path=request.rel_url.raw_path,
            query=public_query(request.rel_url.raw_query_string),
            headers=sanitize(request.headers.items(), secret),
            body=Body(size=len(request_body), data=request_body),
            stream=streamed,
        ),
        primary=ResponseSide(
            role="primary",
            status=resp.status,
            headers=sanitize(_items(resp.headers), secret),
            body=Body(size=len(response_body), data=response_body),
            started_at=started_wall,
            headers_ms=headers_s * 1000,
            ttfb_ms=None if first_s is None else first_s * 1000,
            total_ms=total_s * 1000,
            error=error,
            streamed=streamed,
            client_aborted=aborted,
        ),
    )


def _items(headers: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    return list(headers.items())
