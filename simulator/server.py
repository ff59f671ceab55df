"""The simulator's aiohttp app: OpenAI-compatible chat, transcription, embedding, rerank and model routes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from random import Random
from typing import Any

from aiohttp import BodyPartReader, web

from simulator import payloads, text, vectors
from simulator.drift import apply_drift
from simulator.profile import RouteName, SimulatorProfile, TenantProfile

PROFILE = web.AppKey("profile", SimulatorProfile)
# Errors and GPU labels come from one generator per server, not from the request: the same
# request retried can succeed, and primary and candidate fail independently.
OPS_RNG = web.AppKey("ops_rng", Random)

_ROUTE_OF_PATH: dict[str, RouteName] = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/audio/transcriptions": "audio",
    "/v1/embeddings": "embed",
    "/v1/rerank": "rerank",
    "/rerank": "rerank",
}
# Bytes per second of 16 kHz 16-bit mono audio, to guess a recording's length from its size.
_AUDIO_BYTES_PER_S = 32_000
_WORDS_PER_S = 2.2
_MAX_TRANSCRIPT_WORDS = 6_000


@dataclass(frozen=True)
class Call:
    """One request as the simulator sees it: who asked, on which route, and its content hash."""

    profile: SimulatorProfile
    tenant: TenantProfile
    route: RouteName
    digest: bytes

    def rng(self, purpose: str) -> Random:
        # One generator per purpose, all from the content hash: the answer does not depend on
        # whether latency or drift drew first.
        seed = hashlib.sha256(self.digest + purpose.encode()).digest()
        return Random(int.from_bytes(seed[:8], "big"))

    @property
    def ident(self) -> str:
        return self.digest.hex()[:24]

    @property
    def model(self) -> str:
        return self.profile.model_for(self.route)

    def drift(self, content: str, rng: Random) -> str:
        rates = self.tenant.drift_for(self.route)
        if rates.is_zero:
            return content
        return apply_drift(content, rng, **rates.model_dump())


def request_digest(seed: int, route: str, content: bytes) -> bytes:
    """What makes an answer: the seed, the route and the request's content, nothing else
    (the model name is left out, so a mirrored request renamed for the candidate still matches)."""
    return hashlib.sha256(f"{seed}\0{route}\0".encode() + content).digest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _call(request: web.Request, route: RouteName, content: bytes) -> Call:
    profile = request.app[PROFILE]
    tenant = profile.for_tenant(request.headers.get(profile.tenant_header))
    return Call(profile, tenant, route, request_digest(profile.seed, route, content))


def _error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> web.Response:
    return web.json_response(payloads.error(message, kind=kind, code=code, param=param), status=status)


async def _wait_or_fail(
    request: web.Request, call: Call, *, size_bytes: int = 0, extra_ms: float = 0.0
) -> web.Response | None:
    """Sleep as long as the profile says this request takes; then perhaps fail it."""
    latency_ms = call.tenant.latency.sample_ms(call.rng("latency"), call.route, size_bytes)
    await asyncio.sleep((latency_ms + extra_ms) / 1000)
    ops = request.app[OPS_RNG]
    if ops.random() >= call.tenant.error_rate:
        return None
    if ops.random() < 0.5:
        return _error(
            500,
            "The server had an error while processing your request.",
            kind="server_error",
            code="internal_error",
        )
    return _error(
        503, "The server is overloaded or not ready yet.", kind="server_error", code="service_unavailable"
    )


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object.")
    return body


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "'messages' must be a non-empty list.", param="messages")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return _error(400, "'max_tokens' must be a positive integer.", param="max_tokens")

    call = _call(request, "chat", _canonical(messages))
    prompt = "\n".join(_message_text(m) for m in messages)
    answer = call.drift(text.answer_for_prompt(call.rng("content"), prompt), call.rng("drift"))
    answer, finish_reason = payloads.truncate(answer, max_tokens)
    pieces = payloads.stream_pieces(answer, call.rng("pieces"))
    chunk_ms = call.tenant.latency.chunk_delay_ms()
    prompt_tokens = payloads.count_tokens(prompt)
    completion_id = f"chatcmpl-{call.ident}"
    created = int(time.time())

    if not body.get("stream"):
        # Without streaming the client waits for the whole generation, not only the first token.
        failed = await _wait_or_fail(request, call, extra_ms=chunk_ms * len(pieces))
        if failed is not None:
            return failed
        return web.json_response(
            payloads.chat_completion(
                completion_id=completion_id,
                created=created,
                model=call.model,
                content=answer,
                finish_reason=finish_reason,
                prompt_tokens=prompt_tokens,
            )
        )

    failed = await _wait_or_fail(request, call)
    if failed is not None:
        return failed
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    ids: dict[str, Any] = {"completion_id": completion_id, "created": created, "model": call.model}
    try:
        await response.write(
            payloads.sse(payloads.chat_chunk(**ids, delta={"role": "assistant", "content": ""}))
        )
        for piece in pieces:
            await asyncio.sleep(chunk_ms / 1000)
            await response.write(payloads.sse(payloads.chat_chunk(**ids, delta={"content": piece})))
        await response.write(payloads.sse(payloads.chat_chunk(**ids, delta={}, finish_reason=finish_reason)))
        if include_usage:
            await response.write(
                payloads.sse(
                    payloads.usage_chunk(
                        **ids, prompt_tokens=prompt_tokens, completion_tokens=payloads.count_tokens(answer)
                    )
                )
            )
        await response.write(payloads.sse("[DONE]"))
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away mid-stream, as clients do; nothing is left to send
    return response


async def transcriptions(request: web.Request) -> web.Response:
    if request.content_type != "multipart/form-data":
        return _error(400, "Send the audio as multipart/form-data.")
    profile = request.app[PROFILE]
    limit = profile.max_upload_mb * 1024 * 1024
    fields: dict[str, str] = {}
    audio_hash = hashlib.sha256()
    size = 0
    has_file = False
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            has_file = True
            # Hashed as it arrives: a long recording is never held in memory whole.
            while chunk := await part.read_chunk(1 << 20):
                size += len(chunk)
                if size > limit:
                    return _error(413, f"The file is larger than {profile.max_upload_mb} MB.", param="file")
                audio_hash.update(chunk)
        elif part.name:
            fields[part.name] = await part.text()
    if not has_file:
        return _error(400, "A 'file' field is required.", param="file")
    response_format = fields.get("response_format", "json")
    if response_format not in ("json", "text", "verbose_json"):
        return _error(400, f"response_format {response_format!r} is not supported.", param="response_format")

    call = _call(request, "audio", audio_hash.digest())
    content_rng = call.rng("content")
    # Drawn whether or not a language was given, so a hint never changes the rest of the text.
    guessed: text.Lang = "ms" if content_rng.random() < 0.6 else "en"
    hint = fields.get("language", "")
    language: text.Lang = "ms" if hint == "ms" else "en" if hint == "en" else guessed
    duration = size / _AUDIO_BYTES_PER_S
    min_words = min(int(duration * _WORDS_PER_S), _MAX_TRANSCRIPT_WORDS)
    drift_rng = call.rng("drift")
    segments = [call.drift(turn, drift_rng) for turn in text.consultation(content_rng, language, min_words)]
    segments = [s for s in segments if s]
    transcript = " ".join(segments)

    failed = await _wait_or_fail(request, call, size_bytes=size)
    if failed is not None:
        return failed
    if response_format == "text":
        return web.Response(text=transcript, content_type="text/plain")
    return web.json_response(
        payloads.transcription(
            transcript,
            segments,
            language="malay" if language == "ms" else "english",
            duration=max(duration, len(transcript.split()) / _WORDS_PER_S),
            verbose=response_format == "verbose_json",
        )
    )


async def embeddings(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        return _error(400, "'input' must be a string or a non-empty list of strings.", param="input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return _error(400, "'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    profile = request.app[PROFILE]
    dim = body.get("dimensions") or profile.embedding_dim
    if not isinstance(dim, int) or not 1 <= dim <= 8192:
        return _error(400, "'dimensions' must be an integer from 1 to 8192.", param="dimensions")

    call = _call(request, "embed", _canonical(inputs))
    drift_rng = call.rng("drift")
    # A different embedding model reads the same words a little differently.
    vecs = [vectors.embed(call.drift(item, drift_rng), dim) for item in inputs]
    failed = await _wait_or_fail(request, call)
    if failed is not None:
        return failed
    tokens = sum(payloads.count_tokens(item) for item in inputs)
    return web.json_response(
        payloads.embedding_list(call.model, vecs, base64=encoding == "base64", tokens=tokens)
    )


async def rerank(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    query = body.get("query")
    raw_docs = body.get("documents")
    if not isinstance(query, str) or not isinstance(raw_docs, list):
        return _error(400, "'query' (string) and 'documents' (list) are required.")
    documents = [d.get("text", "") if isinstance(d, dict) else str(d) for d in raw_docs]
    top_n = body.get("top_n") or len(documents)
    if not isinstance(top_n, int) or top_n < 1:
        return _error(400, "'top_n' must be a positive integer.", param="top_n")

    call = _call(request, "rerank", _canonical({"query": query, "documents": documents}))
    drift_rng = call.rng("drift")
    ranked = vectors.rank(query, [call.drift(doc, drift_rng) for doc in documents])[:top_n]
    failed = await _wait_or_fail(request, call)
    if failed is not None:
        return failed
    tokens = payloads.count_tokens(query) + sum(payloads.count_tokens(d) for d in documents)
    return web.json_response(
        payloads.rerank(
            rerank_id=call.ident,
            model=call.model,
            ranked=ranked,
            documents=documents,
            return_documents=bool(body.get("return_documents", False)),
            tokens=tokens,
        )
    )


async def models(request: web.Request) -> web.Response:
    profile = request.app[PROFILE]
    owner = "openai" if profile.role == "primary" else "hi-end"
    return web.json_response(
        payloads.model_list(sorted(set(profile.models.values())), owner=owner, created=1_700_000_000)
    )


async def _label(request: web.Request, response: web.StreamResponse) -> None:
    """Headers on every answer for the audit log: which model and version, and on the
    candidate which GPU served it."""
    profile = request.app[PROFILE]
    route = _ROUTE_OF_PATH.get(request.path, "chat")
    response.headers["x-model-version"] = f"{profile.model_for(route)}@{profile.version}"
    if profile.role == "candidate" and profile.gpu_ids:
        response.headers["x-gpu-id"] = request.app[OPS_RNG].choice(profile.gpu_ids)
    request_id = request.headers.get("x-request-id")
    if request_id:
        response.headers["x-request-id"] = request_id


def build_app(profile: SimulatorProfile) -> web.Application:
    # Consultation recordings run to tens of megabytes.
    app = web.Application(client_max_size=profile.max_upload_mb * 1024 * 1024)
    app[PROFILE] = profile
    app[OPS_RNG] = Random(f"{profile.seed}:{profile.role}")
    app.on_response_prepare.append(_label)
    handlers = {"chat": chat_completions, "audio": transcriptions, "embed": embeddings, "rerank": rerank}
    for path, route in _ROUTE_OF_PATH.items():
        app.router.add_post(path, handlers[route])
    app.router.add_get("/v1/models", models)
    return app


def run(host: str, port: int, profile: SimulatorProfile) -> None:
    """Serve until interrupted. Access logging stays off: a benchmark's load would drown in it."""

    def announce(*_: object) -> None:
        print(f"simulator ({profile.role}) listening on http://{host}:{port}", flush=True)

    web.run_app(build_app(profile), host=host, port=port, print=announce, access_log=None)
