"""Fuzzing the tap: generated requests over raw sockets, a primary that records the raw bytes it gets and
answers as each case asks, and the checks every case must pass. Shared by tests/fuzz and bench/fuzz_tap.py.

The tap and the primary run on an event loop of their own in a background thread, so that hypothesis
can drive cases from the test's own (synchronous) thread, byte by byte, with real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import http.client
import linecache
import logging
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import redis
from aiohttp import web
from hypothesis import strategies as st

from mirror.exchange import Exchange, decode_entry
from mirror.headers import HOP_BY_HOP, REDACTED
from mirror.serve import runner_for
from mirror.streams import Streams
from mirror.tap import STATE, TapState, build_app
from shadowgate.settings import Limits, Route, RouteKind, Settings

Headers = list[tuple[bytes, bytes]]
Framing = Literal["length", "chunked", "none", "short", "long"]
Client = Literal["complete", "leave_mid_request", "leave_mid_response"]
RespFraming = Literal["length", "chunked", "close"]

# Headers whose framing or routing role the cases control themselves, never generated at random.
_CONTROLLED = {b"content-length", b"transfer-encoding", b"host", b"x-request-id", b"connection", b"expect"}
SECRETS = {h.lower().encode() for h in Settings().secret_headers}


# --- cases ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the primary answers to one case."""

    status: int
    reason: bytes
    headers: Headers
    body: bytes
    framing: RespFraming
    pieces: int = 1  # the body goes out in this many writes


@dataclass(frozen=True)
class Case:
    method: bytes
    target: bytes  # raw request-target: path and query as sent
    headers: Headers
    body: bytes
    framing: Framing
    client: Client
    reply: Reply

    @property
    def no_body_reply(self) -> bool:
        return self.method == b"HEAD" or self.reply.status in (204, 304)


@cache
def gzip_bomb() -> bytes:
    """256 MiB of zeros as gzip (about 250 KiB): what a tap that inflated bodies would choke on."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([*(packer.compress(zeros) for _ in range(256)), packer.flush()])


_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_UNRESERVED = "-._~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

tokens = st.text(alphabet=_TCHAR, min_size=1, max_size=20)
# The tap's parser (llhttp's) knows a fixed list of methods and refuses the rest with 400.
KNOWN_METHODS = [b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"HEAD", b"TRACE", b"PROPFIND"]
KNOWN_METHODS += [b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"SEARCH", b"REPORT", b"PURGE", b"LINK", b"QUERY"]


@st.composite
def methods(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 7:
        return draw(tokens).encode()
    return draw(st.sampled_from(KNOWN_METHODS))


@st.composite
def targets(draw: st.DrawFn) -> bytes:
    # Raw non-ASCII is not allowed in a request-target (RFC 9112): now and then, to see it refused.
    raw = draw(st.integers(0, 19)) == 7

    def segment() -> st.SearchStrategy[bytes]:
        return st.one_of(
            st.text(alphabet=_UNRESERVED, max_size=12).map(str.encode),
            st.binary(max_size=8).map(lambda b: "".join(f"%{x:02X}" for x in b).encode()),  # percent-encoded
            *(
                [st.text(min_size=1, max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass"))]
                if raw
                else []
            ),
        )

    parts = draw(st.lists(segment(), min_size=1, max_size=5))
    path = b"/" + b"/".join(parts)
    if path.startswith(b"/_shadowgate"):
        path = b"/x" + path
    if draw(st.booleans()):
        query = draw(st.lists(st.tuples(segment(), segment()), max_size=4))
        path += b"?" + b"&".join(k + b"=" + v for k, v in query)
    return path


header_names = st.one_of(
    st.sampled_from(
        [
            b"X-Dup",
            b"Accept",
            b"Authorization",
            b"Cookie",
            b"X-Tenant-ID",
            b"Api-Key",
        ]
    ),
    tokens.map(str.encode),
).filter(lambda n: n.lower() not in _CONTROLLED and n.lower().decode() not in HOP_BY_HOP)

ascii_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.encode
)
header_values = st.one_of(
    ascii_values,
    ascii_values,
    st.text(alphabet=st.characters(min_codepoint=0xA0, blacklist_categories=("Cs",)), max_size=20).map(
        lambda t: t.encode("utf-8")
    ),  # non-ASCII, as UTF-8
    st.binary(max_size=20).map(
        lambda b: bytes(x if x >= 0x20 and x != 0x7F else 0x41 for x in b)
    ),  # obs-text
)
huge_values = st.integers(4000, 12000).map(lambda n: b"v" * n)  # the tap's parser takes up to 8190


@st.composite
def request_headers(draw: st.DrawFn) -> Headers:
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=12))
    if draw(st.integers(0, 9)) == 7:
        headers.insert(draw(st.integers(0, len(headers))), (draw(header_names), draw(huge_values)))
    if draw(st.booleans()):  # an API key, as clients send it (tenants are found by its hash)
        headers.append((b"Authorization", b"Bearer " + draw(header_values)))
    if draw(st.booleans()):  # a header repeated, in order
        name, value = draw(header_names), draw(header_values)
        headers += [(name, value), (b"X-Between", b"1"), (name, value + b"-2")]
    return headers


def multipart(draw: st.DrawFn) -> tuple[Headers, bytes]:
    boundary = b"sgfuzz" + draw(st.binary(min_size=4, max_size=8)).hex().encode()
    part = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + draw(st.binary(max_size=2000))
    )
    full = part + b"\r\n--" + boundary + b"--\r\n"
    cut = draw(st.integers(0, len(full)))
    return [(b"Content-Type", b"multipart/form-data; boundary=" + boundary)], full[:cut]


@st.composite
def bodies(draw: st.DrawFn) -> tuple[Headers, bytes]:
    kind = draw(
        st.sampled_from(["empty", "binary", "bad-json", "bad-utf8", "multipart", "gzip", "bomb", "large"])
    )
    if kind == "empty":
        return [], b""
    if kind == "binary":
        return [], draw(st.binary(max_size=4096))
    if kind == "bad-json":
        text = draw(
            st.sampled_from(['{"model": "gpt-4o-mini", "messages": [', "{'a': 1}", "[1, 2,", "nul", "{}}"])
        )
        return [(b"Content-Type", b"application/json")], text.encode() + draw(st.binary(max_size=32))
    if kind == "bad-utf8":
        return [(b"Content-Type", b"application/json; charset=utf-8")], b'{"content": "\xff\xfe\xc3(\xa0"}'
    if kind == "multipart":
        return multipart(draw)
    if kind == "gzip":
        return [(b"Content-Encoding", b"gzip")], gzip.compress(draw(st.binary(max_size=2000)))
    if kind == "bomb":
        return [(b"Content-Encoding", b"gzip"), (b"Content-Type", b"application/json")], gzip_bomb()
    return [], draw(st.binary(min_size=1, max_size=64)) * draw(st.integers(2_000, 5_000))  # past inline


@st.composite
def replies(draw: st.DrawFn, head: bool = False) -> Reply:
    status = draw(
        st.one_of(
            st.sampled_from([200, 201, 204, 301, 304, 400, 401, 404, 413, 429, 500, 502, 503]),
            st.integers(200, 599),
        )
    )
    reason = draw(st.text(alphabet=_TCHAR + " ", max_size=20)).encode().strip() or b"X"
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=8))
    kind = draw(st.sampled_from(["json", "sse", "binary", "gzip", "bomb", "empty"]))
    if kind == "json":
        headers.append((b"Content-Type", b"application/json"))
        body = draw(st.sampled_from([b'{"id": "x", "choices": []}', b'{"bad": ', b"[]"]))
    elif kind == "sse":
        headers.append((b"Content-Type", b"text/event-stream"))
        events = draw(st.lists(st.binary(max_size=40), max_size=6))
        body = b"".join(b"data: " + e.replace(b"\n", b" ") + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    elif kind == "gzip":
        headers.append((b"Content-Encoding", b"gzip"))
        body = gzip.compress(draw(st.binary(max_size=2000)))
    elif kind == "bomb":
        headers += [(b"Content-Encoding", b"gzip"), (b"Content-Type", b"application/json")]
        body = gzip_bomb()
    elif kind == "binary":
        body = draw(st.binary(max_size=3000))
    else:
        body = b""
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    return Reply(status, reason, headers, body, framing, draw(st.integers(1, 4)))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    method = draw(methods())
    headers = draw(request_headers())
    extra, body = draw(bodies())
    framing: Framing = draw(st.sampled_from(["length", "length", "chunked", "none", "short", "long"]))
    if framing == "none":
        body = b""
    if framing == "short" and not body:
        framing = "length"
    client: Client = draw(
        st.sampled_from(["complete", "complete", "complete", "leave_mid_request", "leave_mid_response"])
    )
    return Case(method, draw(targets()), headers + extra, body, framing, client, draw(replies()))


# --- the primary ---------------------------------------------------------------------------------


@dataclass
class Received:
    method: bytes
    target: bytes
    headers: Headers
    body: bytes
    complete: bool = True


class RawPrimary:
    """An HTTP/1.1 server that keeps the raw request it got for each request id and answers as told."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.received: dict[str, Received] = {}
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", 0, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                got = await self._read(reader)
                if got is None:
                    return
                rid = _header(got.headers, b"x-request-id").decode("latin-1")
                if rid in self.replies:  # a case still running (one that arrives late is dropped)
                    self.received[rid] = got
                reply = self.replies.get(rid) or Reply(200, b"OK", [], b"no case", "length")
                if not await self._answer(writer, got, reply):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> Received | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head[:-4].split(b"\r\n")
        method, target, _ = lines[0].split(b" ", 2)
        headers = [tuple(line.split(b":", 1)) for line in lines[1:]]
        headers = [(k, v.strip(b" \t")) for k, v in headers]  # type: ignore[misc]
        got = Received(method, target, headers, b"")  # type: ignore[arg-type]
        try:
            if b"chunked" in _header(got.headers, b"transfer-encoding").lower():
                got.body = await _read_chunked(reader)
            else:
                length = int(_header(got.headers, b"content-length") or 0)
                got.body = await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            got.body, got.complete = exc.partial, False
        return got

    async def _answer(self, writer: asyncio.StreamWriter, got: Received, reply: Reply) -> bool:
        no_body = got.method == b"HEAD" or reply.status in (204, 304)
        body = b"" if reply.status in (204, 304) else reply.body
        head = [b"HTTP/1.1 %d %s" % (reply.status, reply.reason), *(k + b": " + v for k, v in reply.headers)]
        framing = reply.framing if not no_body else "length"
        if framing == "length":
            head.append(b"Content-Length: %d" % len(body))
        elif framing == "chunked":
            head.append(b"Transfer-Encoding: chunked")
        else:
            head.append(b"Connection: close")
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        if not no_body:
            step = max(1, -(-len(body) // reply.pieces))
            for i in range(0, len(body), step):
                piece = body[i : i + step]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece)
                await writer.drain()
                await asyncio.sleep(0.001)
            if framing == "chunked":
                writer.write(b"0\r\n\r\n")
        await writer.drain()
        return framing != "close" and got.complete


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)


def _header(headers: Headers, name: bytes) -> bytes:
    return next((v for k, v in headers if k.lower() == name), b"")


# --- the tap, in a thread of its own ---------------------------------------------------------------


class TapUnderFuzz:
    """The tap (capturing everything, every path a chat route) and the raw primary on a background loop."""

    def __init__(self, redis_url: str, prefix: str, data_dir: Path) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.data_dir = data_dir
        self.primary = RawPrimary()
        self.port = 0
        self.state: TapState | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tap-under-fuzz", daemon=True)
        self._runner: web.AppRunner | None = None
        self.redis = redis.Redis.from_url(redis_url)
        self.n = 0

    def __enter__(self) -> TapUnderFuzz:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._call(self._stop(), timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        keys = list(self.redis.scan_iter(match=f"{self.prefix}:*"))
        if keys:
            self.redis.delete(*keys)
        self.redis.close()

    def _call(self, coro: object, timeout: float = 30) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    async def _start(self) -> None:
        await self.primary.start()
        settings = Settings(
            primary_url=f"http://127.0.0.1:{self.primary.port}",  # type: ignore[arg-type]
            redis_url=self.redis_url,
            stream_prefix=self.prefix,
            data_dir=self.data_dir,
            routes=(Route(prefix="/", kind=RouteKind.CHAT),),
            primary_timeout_s=5,
            shutdown_grace_s=2,
            limits=Limits(capture_linger_ms=0),
        )
        app = build_app(settings)
        self._runner = runner_for(app, 2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = next(a[1] for a in self._runner.addresses if isinstance(a, tuple))
        self.state = app[STATE]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.primary.stop()

    # --- one case ---

    def run(self, case: Case) -> str:
        """Send the case through the tap and check everything it must satisfy (AssertionError if not);
        returns what became of it."""
        self.n += 1
        rid = f"fz-{self.n}-{time.monotonic_ns()}"
        self.primary.replies[rid] = case.reply
        got = send(self.port, case, rid)
        try:
            outcome = self._check(case, rid, got)
        finally:
            self.primary.replies.pop(rid, None)
            self.primary.received.pop(rid, None)
        assert healthy(self.port), "the tap stopped answering its health check"
        return outcome

    def _check(self, case: Case, rid: str, got: Answer) -> str:
        sent_body = expected_body(case)
        received = self._wait_received(
            rid, expect=got.status not in (None, 400) and case.client == "complete"
        )
        if truncated(case):
            # The request never arrived whole: the primary must not have been given it as complete.
            assert received is None or not received.complete, "a truncated request was forwarded as complete"
            return "client left mid-request"
        if got.status == 400 and received is None:
            return "refused by the tap's HTTP parser (400)"  # never forwarded: as any server would
        if received is None and case.client == "leave_mid_request":
            return "client left mid-request"  # complete, but it hung up at once: forwarding is optional
        assert received is not None, f"the primary never got it (client saw {got.status} {got.error})"
        assert received.method == case.method
        assert received.target == as_forwarded(case.target), (received.target, case.target)
        sent_headers = [(b"X-Request-ID", rid.encode()), *case.headers]
        assert end_to_end(received.headers) == end_to_end(sent_headers), (
            "headers changed on the way to the primary"
        )
        assert received.body == sent_body, "body changed on the way to the primary"
        if case.client != "complete":
            return "client left mid-response"
        reply = case.reply
        assert got.error is None, got.error
        assert got.status == reply.status
        want = b"" if case.no_body_reply else reply.body
        assert got.body == want, f"body changed on the way back ({len(got.body)} vs {len(want)} bytes)"
        assert response_headers(got.headers, reply.headers) == end_to_end(reply.headers), (
            "response headers changed"
        )
        self._check_capture(case, rid, sent_body, want)
        return "forwarded, answered and captured"

    def _wait_received(self, rid: str, expect: bool) -> Received | None:
        deadline = time.monotonic() + (5 if expect else 0.1)
        while time.monotonic() < deadline:
            if rid in self.primary.received:
                return self.primary.received.pop(rid)
            time.sleep(0.005)
        return self.primary.received.pop(rid, None)

    def _check_capture(self, case: Case, rid: str, sent_body: bytes, answer: bytes) -> None:
        exchange = self.capture_of(rid)
        assert exchange is not None, "a complete exchange was not captured"
        assert exchange.request.method == case.method.decode("latin-1")
        assert exchange.request.body.size == len(sent_body)
        assert exchange.primary.status == case.reply.status
        assert exchange.primary.body.size == len(answer)
        if exchange.request.body.data is not None:
            assert exchange.request.body.data == sent_body
        if exchange.primary.body.data is not None:
            assert exchange.primary.body.data == answer
        captured = [(k.encode(), v.encode()) for k, v in exchange.request.headers]
        for name, value in captured:
            if name.lower() in SECRETS:
                assert value == REDACTED.encode()
        sent = [
            (k, v) for k, v in [(b"X-Request-ID", rid.encode()), *case.headers] if k.lower() not in SECRETS
        ]
        assert [h for h in end_to_end(captured) if h[0] not in SECRETS] == end_to_end(sent)

    def capture_of(self, rid: str, timeout: float = 5) -> Exchange | None:
        """The capture of a request id, decoded (every entry read on the way is decoded too)."""
        deadline = time.monotonic() + timeout
        stream = Streams(self.prefix).captures
        while time.monotonic() < deadline:
            for _, fields in self.redis.xrevrange(stream, count=20):
                exchange = decode_entry(fields)
                if exchange.id == rid:
                    return exchange
            time.sleep(0.01)
        return None

    def settle(self, timeout: float = 5.0) -> None:
        """Until the tap is idle: no request in its hands, its capture queue written out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            capture = self.state.capture if self.state is not None else None
            idle = self._call(self._idle())
            if idle and (capture is None or capture.depth == 0):
                return
            time.sleep(0.02)

    async def _idle(self) -> bool:
        me = asyncio.current_task()
        # The writer task and the server's own tasks always exist; handlers are the ones that come and go.
        return not [t for t in asyncio.all_tasks() if t is not me and "_handle_request" in repr(t.get_coro())]

    def all_entries_decode(self) -> int:
        entries = self.redis.xrange(Streams(self.prefix).captures)
        for _, fields in entries:
            decode_entry(fields)
        return len(entries)


# --- the client ------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None = None
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    error: str | None = None


def expected_body(case: Case) -> bytes:
    """What a correct proxy gives the primary as the body."""
    if case.framing == "short":
        return case.body[: len(case.body) // 2]
    return case.body


def truncated(case: Case) -> bool:
    """The client leaves (or stops sending) before its request is complete."""
    return case.framing == "long" or (case.client == "leave_mid_request" and needed(case) > 0)


def needed(case: Case) -> int:
    """How many body bytes, as framed, make the request complete."""
    _, body = raw_request(case, "x")
    if case.framing in ("length", "long"):
        return len(case.body)
    if case.framing == "short":
        return len(case.body) // 2
    return len(body)


def raw_request(case: Case, rid: str) -> tuple[bytes, bytes]:
    """The bytes of the head, and of the body as framed."""
    head = [
        case.method + b" " + case.target + b" HTTP/1.1",
        b"Host: tap.test",
        b"X-Request-ID: " + rid.encode(),
    ]
    head += [k + b": " + v for k, v in case.headers]
    body = case.body
    if case.framing == "length":
        head.append(b"Content-Length: %d" % len(body))
    elif case.framing == "short":
        head.append(b"Content-Length: %d" % (len(body) // 2))
    elif case.framing == "long":
        head.append(b"Content-Length: %d" % (len(body) + 100))
    elif case.framing == "chunked":
        head.append(b"Transfer-Encoding: chunked")
        half = len(body) // 2
        pieces = [p for p in (body[:half], body[half:]) if p]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return b"\r\n".join(head) + b"\r\n\r\n", body


def send(port: int, case: Case, rid: str, timeout: float = 10) -> Answer:
    head, body = raw_request(case, rid)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            if case.client == "leave_mid_request":
                sock.sendall(head + body[: needed(case) // 2])
                time.sleep(0.01)
                return Answer(error="left")
            sock.sendall(head + body)
            if case.framing == "long":
                time.sleep(0.05)  # the tap waits for 100 bytes that never come; the client gives up
                return Answer(error="left")
            resp = http.client.HTTPResponse(sock, method=case.method.decode("latin-1"))
            resp.begin()
            answer = Answer(
                status=resp.status,
                headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.getheaders()],
            )
            if case.client == "leave_mid_response":
                with contextlib.suppress(Exception):
                    resp.read(10)
                return answer
            answer.body = resp.read()
            return answer
        except (OSError, http.client.HTTPException) as exc:
            return Answer(error=type(exc).__name__)


def healthy(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /_shadowgate/healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status == 200 and b'"ok"' in resp.read()


# --- comparing headers ----------------------------------------------------------------------------

# What a proxy may add or set itself on the way to the primary, and back to the client.
_PROXY_SET = {b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive"}
_SERVER_DEFAULTS = {b"date", b"server"}  # aiohttp adds these to a response that lacks them


def wire(value: bytes) -> bytes:
    """A header value as aiohttp can forward it: bytes that are not UTF-8 (obs-text) are dropped by its
    writer, the one change the tap makes to what it relays (docs/RELIABILITY.md)."""
    return value.decode("utf-8", "ignore").encode()


def end_to_end(headers: Headers) -> list[tuple[bytes, bytes]]:
    """The end-to-end headers, names lowercased, values as forwarded, in order, repeats kept."""
    listed = {t.strip().lower() for k, v in headers if k.lower() == b"connection" for t in v.split(b",")}
    return [
        (k.lower(), wire(v).strip(b" \t"))
        for k, v in headers
        if k.lower() not in _PROXY_SET
        and k.lower().decode("latin-1") not in HOP_BY_HOP
        and k.lower() not in listed
    ]


def response_headers(got: Headers, sent: Headers) -> list[tuple[bytes, bytes]]:
    """What the client got, less what aiohttp adds to any response that lacks it: Date, Server, and
    (RFC 9110 8.3) `Content-Type: application/octet-stream` where a body may follow and none is named."""
    theirs = {k.lower() for k, _ in sent}
    added = {k for k in _SERVER_DEFAULTS if k not in theirs}
    return [
        (k, v)
        for k, v in end_to_end(got)
        if k not in added
        and not (k == b"content-type" and v == b"application/octet-stream" and k not in theirs)
    ]


_NOT_THE_TAP = (
    "*/hypothesis/*",  # it keeps every case of a run until the run ends
    "*/tests/fuzz/*",  # so do the cases' own values
    tracemalloc.__file__,
    linecache.__file__,
    logging.__file__,  # pytest's log capture keeps every record (and what its traceback holds) to the end
)


def start_tracing() -> None:
    tracemalloc.start(1)


def traced() -> tracemalloc.Snapshot:
    """Python memory held now by everything but hypothesis and the cases: the tap, aiohttp, redis-py,
    the primary. A leak in the tap shows here as growth from case to case (settle() the tap first)."""
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, pattern) for pattern in _NOT_THE_TAP]
    )


def traced_mb(snapshot: tracemalloc.Snapshot | None = None) -> float:
    return sum(stat.size for stat in (snapshot or traced()).statistics("filename")) / 2**20


def grown(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int = 5) -> str:
    """Where memory grew most between two snapshots, for a failure message."""
    return "; ".join(str(stat) for stat in after.compare_to(before, "lineno")[:top])


def rss_mb() -> float:
    gc.collect()
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def fuzzing(redis_url: str, prefix: str, data_dir: Path) -> Iterator[TapUnderFuzz]:
    with TapUnderFuzz(redis_url, prefix, data_dir) as tap:
        yield tap


def as_forwarded(target: bytes) -> bytes:
    """yarl drops an empty query (`/a?` becomes `/a`): the only change to the request-target."""
    return target[:-1] if target.endswith(b"?") else target
