"""Cutover's serving path: the candidate answers the user; on an error or past the fallback timeout,
before any byte went to the user, the primary answers instead.

What counts as the candidate failing (the request then goes to the primary, counted by reason):
`connect_refused`, `connect_error`, `reset`, `timeout` (`cutover.fallback_timeout_s` passed before the
answer could be committed), `http_5xx`, `http_429` (the candidate is overloaded). Other 4xx answers
are the request's own fault and reach the user as they are.

The answer is committed — sent to the user, after which no fallback is possible — when a small answer
(known length up to 1 MiB, not SSE) has been read whole, or when a streamed answer's first body
bytes arrived. A stream that breaks after that ends the user's connection abruptly, as the tap does
for the primary, and counts as a candidate error for the rollback window.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import msgspec
from aiohttp import web
from yarl import URL

from mirror.attribution import Attribution, sampled_for
from mirror.candidate import (
    CONNECT_ERROR,
    CONNECT_REFUSED,
    HTTP_5XX,
    RESET,
    TIMEOUT,
    CallLimits,
    Target,
    shadow_headers,
)
from mirror.exchange import Body, Exchange, RequestSide, ResponseSide
from mirror.headers import client_response_headers, public_query, sanitize
from mirror.metrics import TapMetrics
from mirror.modes import ModeEntry, ModeStore, ModeWatcher
from mirror.relay import buffered, relay
from mirror.rollback import AutoRollback
from mirror.streams import redis_client
from shadowgate.settings import Settings

log = logging.getLogger("shadowgate.cutover")

HTTP_429 = "http_429"
# The request body was too large to hold, so it could not be offered to two upstreams.
UNBUFFERED = "unbuffered"
# The primary side of a capture the candidate served, until dispatch asks the primary.
PENDING = "pending"

_READ_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Fallback:
    """The candidate's attempt that did not serve: the primary answers, and this is its record."""

    side: ResponseSide | None
    reason: str


def with_fallback(exchange: Exchange, fallback: Fallback | None) -> Exchange:
    """A capture of a request the primary answered after the candidate failed it: both sides kept."""
    if fallback is None:
        return exchange
    return msgspec.structs.replace(exchange, candidate=fallback.side, fallback=fallback.reason)


def candidate_session(settings: Settings) -> aiohttp.ClientSession:
    """The serving path's own pool to the candidate (never dispatch's): the fallback timeout bounds
    the wait for an answer; after that, a gap between chunks is bounded like the primary's."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=settings.primary_timeout_s),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )


@contextlib.asynccontextmanager
async def running(
    settings: Settings, metrics: TapMetrics, submit: Callable[[Exchange], None] | None
) -> AsyncIterator[tuple[ModeWatcher, CutoverPath]]:
    """A tap process's cutover machinery: the modes it follows, the serving path, the rollback task."""
    from redis.exceptions import RedisError

    from gate.policy import load_policy

    assert settings.redis_url is not None
    policy = load_policy(settings.cutover.policy)
    redis = redis_client(settings.redis_url)
    watcher = ModeWatcher(ModeStore(redis, settings.stream_prefix), settings.cutover.modes_refresh_s)
    try:
        await asyncio.wait_for(watcher.refresh(), 1.0)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning(
            "modes: Redis unavailable at start (%s); every tenant mirrors until it answers",
            type(exc).__name__,
        )
    rollback = AutoRollback(redis, settings, watcher, policy, metrics)
    session = candidate_session(settings)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(watcher.run(stop), name="modes-watcher"),
        asyncio.create_task(rollback.run(stop), name="auto-rollback"),
    ]
    try:
        yield watcher, CutoverPath(settings, session, metrics, rollback, submit)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await rollback.close(settings.shutdown_grace_s)
        await session.close()
        await redis.aclose()


class CutoverPath:
    """Serves requests of the tenant x routes in cutover from the candidate."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        metrics: TapMetrics,
        rollback: AutoRollback,
        submit: Callable[[Exchange], None] | None,
    ) -> None:
        self._session = session
        self._metrics = metrics
        self._rollback = rollback
        self._submit = submit
        self._base = str(settings.candidate_url).rstrip("/")
        self._target = Target("candidate", self._base, settings.candidate_api_key)
        self._limits = CallLimits(
            timeout_s=settings.cutover.fallback_timeout_s,
            max_body_bytes=settings.limits.max_capture_body_bytes,
            shadow_header=settings.shadow_header,
            model_version_header=settings.model_version_header,
            gpu_header=settings.gpu_header,
        )
        self._secret = frozenset(h.lower() for h in settings.secret_headers)
        self.served = 0
        self.fallbacks: collections.Counter[str] = collections.Counter()

    def not_offered(self, attribution: Attribution) -> Fallback:
        """A request whose body was too large to hold goes to the primary, counted."""
        self._count_fallback(attribution, UNBUFFERED)
        return Fallback(None, UNBUFFERED)

    async def serve(
        self,
        request: web.Request,
        attribution: Attribution,
        entry: ModeEntry,
        body: bytes,
        *,
        capture: bool,
    ) -> web.StreamResponse | Fallback:
        """The candidate's answer, sent; or a Fallback when the primary must answer instead."""
        request_side = RequestSide(
            method=request.method,
            path=request.rel_url.raw_path,
            query=public_query(request.rel_url.raw_query_string),
            headers=sanitize(request.headers.items(), self._secret),
            body=Body(size=len(body), data=body),
        )
        # The captured headers minus secrets, plus the candidate's own key: the client's credentials
        # never reach the candidate (the same rule as a shadow call). It is real traffic: no shadow mark.
        headers = shadow_headers(request_side, self._target, self._limits)
        headers.popall(self._limits.shadow_header, None)
        query = request_side.query
        url = URL(self._base + request.rel_url.raw_path + (f"?{query}" if query else ""), encoded=True)
        started_wall = time.time()
        started = time.perf_counter()
        resp: aiohttp.ClientResponse | None = None
        whole: bytes | None = None
        first = b""
        headers_at: float | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._limits.timeout_s):
                resp = await self._session.request(
                    request.method, url, headers=headers, data=body or None, allow_redirects=False
                )
                headers_at = time.perf_counter()
                if resp.status >= 500:
                    error = HTTP_5XX
                elif resp.status == 429:
                    error = HTTP_429
                elif buffered(resp):
                    whole = await resp.read()
                else:
                    first = await resp.content.readany()
        except TimeoutError:
            error = TIMEOUT
        except aiohttp.ClientConnectorError as exc:
            refused = (
                isinstance(exc.os_error, ConnectionRefusedError) or exc.os_error.errno == errno.ECONNREFUSED
            )
            error = CONNECT_REFUSED if refused else CONNECT_ERROR
        except (aiohttp.ClientError, OSError):
            error = RESET
        if error is not None:
            if resp is not None:
                resp.close()  # never reuse a connection an answer was abandoned on
            return self._fall_back(attribution, entry, resp, started_wall, started, headers_at, error)

        assert resp is not None
        assert headers_at is not None
        first_at = time.perf_counter() if (whole or first) else None
        try:
            if whole is not None:
                out: web.StreamResponse = web.Response(
                    status=resp.status,
                    reason=resp.reason,
                    headers=client_response_headers(resp.headers),
                    body=whole,
                )
                kept: bytes | None = whole
                broke = False
            else:
                keep = self._limits.max_body_bytes if capture else -1
                relayed = await relay(request, resp, keep, first)
                out, broke = relayed.response, relayed.error is not None
                # A broken stream or a user who left: no copy worth comparing.
                kept = None if broke or relayed.client_left else relayed.copy
        finally:
            resp.release()
        total_s = time.perf_counter() - started
        self.served += 1
        route = attribution.route.kind.value
        self._metrics.cutover_served.labels(route, "candidate").inc()
        self._metrics.count_request(route, resp.status)
        self._metrics.candidate_seconds.labels(route).observe(total_s)
        self._rollback.record(entry, ok=not broke, ms=total_s * 1000)
        shadowed = sampled_for(f"{attribution.request_id}:primary", entry.shadow_rate or 0.0)
        if capture and shadowed and kept is not None and self._submit is not None:
            side = ResponseSide(
                role="candidate",
                status=resp.status,
                headers=sanitize(resp.headers.items(), self._secret),
                body=Body(size=len(kept), data=kept),
                started_at=started_wall,
                headers_ms=(headers_at - started) * 1000,
                ttfb_ms=None if first_at is None else (first_at - started) * 1000,
                total_ms=total_s * 1000,
                error=RESET if broke else None,
                streamed=resp.headers.get("Content-Type", "").startswith("text/event-stream"),
            )
            self._submit(_served_exchange(attribution, request_side, side, started_wall))
        return out

    def _fall_back(
        self,
        attribution: Attribution,
        entry: ModeEntry,
        resp: aiohttp.ClientResponse | None,
        started_wall: float,
        started: float,
        headers_at: float | None,
        error: str,
    ) -> Fallback:
        total_ms = (time.perf_counter() - started) * 1000
        self._rollback.record(entry, ok=False, ms=total_ms)
        self._count_fallback(attribution, error)
        side = ResponseSide(
            role="candidate",
            status=None if resp is None else resp.status,
            headers=[] if resp is None else sanitize(resp.headers.items(), self._secret),
            body=Body(size=0),
            started_at=started_wall,
            headers_ms=None if headers_at is None else (headers_at - started) * 1000,
            ttfb_ms=None,
            total_ms=total_ms,
            error=error,
        )
        return Fallback(side, error)

    def _count_fallback(self, attribution: Attribution, reason: str) -> None:
        self.fallbacks[reason] += 1
        route = attribution.route.kind.value
        self._metrics.fallbacks.labels(route, reason).inc()
        self._metrics.cutover_served.labels(route, "primary").inc()


def _served_exchange(
    attribution: Attribution, request: RequestSide, candidate: ResponseSide, started_wall: float
) -> Exchange:
    return Exchange(
        id=attribution.request_id,
        tenant=attribution.tenant,
        route=attribution.route.kind.value,
        route_prefix=attribution.route.prefix,
        captured_at=time.time(),
        request=msgspec.structs.replace(request, stream=candidate.streamed),
        primary=ResponseSide(
            role="primary",
            status=None,
            headers=[],
            body=Body(size=0),
            started_at=started_wall,
            headers_ms=None,
            ttfb_ms=None,
            total_ms=0.0,
            error=PENDING,
        ),
        candidate=candidate,
        served_by="candidate",
    )
