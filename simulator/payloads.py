"""Pure builders of the OpenAI-shaped (and Cohere-shaped rerank) JSON bodies the simulator returns."""

from __future__ import annotations

import json
import math
import re
from random import Random
from typing import Any

from simulator import vectors

JSON = dict[str, Any]
_PIECE = re.compile(r"\S+\s*")


def count_tokens(text: str) -> int:
    # About four tokens for every three words is what OpenAI's tokenisers give for prose.
    return math.ceil(len(text.split()) * 4 / 3)


def truncate(text: str, max_tokens: int | None) -> tuple[str, str]:
    """The answer cut to `max_tokens`, and the finish_reason that says whether it was."""
    if max_tokens is None or count_tokens(text) <= max_tokens:
        return text, "stop"
    pieces = _PIECE.findall(text)
    return "".join(pieces[: max(1, max_tokens * 3 // 4)]).rstrip(), "length"


def stream_pieces(text: str, rng: Random) -> list[str]:
    """The text cut into deltas of a few words each; joined, they give back the text exactly."""
    words = _PIECE.findall(text)
    lead = text[: len(text) - len("".join(words))]  # whitespace before the first word
    pieces: list[str] = []
    index = 0
    while index < len(words):
        size = rng.randint(2, 5)
        pieces.append("".join(words[index : index + size]))
        index += size
    if lead:
        pieces.insert(0, lead)
    return pieces or [text]


def usage(prompt_tokens: int, completion_tokens: int) -> JSON:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_completion(
    *, completion_id: str, created: int, model: str, content: str, finish_reason: str, prompt_tokens: int
) -> JSON:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage(prompt_tokens, count_tokens(content)),
    }


def chat_chunk(
    *, completion_id: str, created: int, model: str, delta: JSON, finish_reason: str | None = None
) -> JSON:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def usage_chunk(
    *, completion_id: str, created: int, model: str, prompt_tokens: int, completion_tokens: int
) -> JSON:
    """The last chunk when the client asked for stream_options.include_usage: no choices."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def sse(data: JSON | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def error(message: str, *, kind: str, code: str | None = None, param: str | None = None) -> JSON:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def transcription(text: str, segments: list[str], *, language: str, duration: float, verbose: bool) -> JSON:
    if not verbose:
        return {"text": text}
    total_words = max(1, sum(len(s.split()) for s in segments))
    start = 0.0
    items: list[JSON] = []
    for index, segment in enumerate(segments):
        end = start + duration * len(segment.split()) / total_words
        items.append(
            {
                "id": index,
                "seek": 0,
                "start": round(start, 2),
                "end": round(end, 2),
                "text": " " + segment,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": -0.25,
                "compression_ratio": 1.4,
                "no_speech_prob": 0.01,
            }
        )
        start = end
    return {
        "task": "transcribe",
        "language": language,
        "duration": round(duration, 2),
        "text": text,
        "segments": items,
    }


def embedding_list(model: str, vecs: list[list[float]], *, base64: bool, tokens: int) -> JSON:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vectors.to_base64(vec) if base64 else vec}
            for index, vec in enumerate(vecs)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def rerank(
    *,
    rerank_id: str,
    model: str,
    ranked: list[tuple[int, float]],
    documents: list[str],
    return_documents: bool,
    tokens: int,
) -> JSON:
    results: list[JSON] = []
    for index, score in ranked:
        item: JSON = {"index": index, "relevance_score": round(score, 6)}
        if return_documents:
            item["document"] = {"text": documents[index]}
        results.append(item)
    return {
        "id": rerank_id,
        "model": model,
        "results": results,
        "meta": {"billed_units": {"search_units": 1}},
        "usage": {"total_tokens": tokens},
    }


def model_list(models: list[str], *, owner: str, created: int) -> JSON:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": created, "owned_by": owner} for m in models],
    }
