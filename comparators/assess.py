"""From a pair to a ScoredPair: extract the sides, run the route's scorers, add semantic similarity."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from comparators.extract import side_from
from comparators.routes import score
from comparators.scoring import Comparison, Result, Side
from comparators.text import TokenCounts, chunk_for_embedding, similarity_from_chunks
from mirror.exchange import Exchange, ResponseSide
from store.records import Payload, ScoredPair, SideMeta

TEXT_ROUTES = frozenset({"chat", "reason", "vision"})


@dataclass
class Prepared:
    """A pair with its sides extracted and its pure scores done; similarity still to come."""

    key: str
    exchange: Exchange
    sides: dict[str, Side]  # "primary", "candidate", "secondary"
    results: dict[str, Result]  # by role compared with the primary


@dataclass(frozen=True)
class Bodies:
    request: bytes
    primary: bytes
    candidate: bytes
    secondary: bytes


def prepare(
    key: str, exchange: Exchange, bodies: Bodies, clean: Callable[[Side], Side] | None = None
) -> Prepared:
    """Extract the sides and run the pure scorers; `clean` (the worker's redaction) is applied to each
    side before any scorer sees it, so scores, findings and stored texts all derive from the same text."""
    route = exchange.route
    sides = {"primary": side_from(exchange.primary, bodies.primary, route, bodies.request)}
    if exchange.candidate is not None:
        sides["candidate"] = side_from(exchange.candidate, bodies.candidate, route, bodies.request)
    if exchange.secondary is not None:
        sides["secondary"] = side_from(exchange.secondary, bodies.secondary, route, bodies.request)
    if clean is not None:
        sides = {role: clean(side) for role, side in sides.items()}
    results: dict[str, Result] = {
        role: score(Comparison(route=route, primary=sides["primary"], other=sides[role], role=role))
        for role in ("candidate", "secondary")
        if role in sides
    }
    return Prepared(key, exchange, sides, results)


def texts_to_embed(prepared: Prepared) -> list[str]:
    """The texts whose similarity a text route needs: both sides answered in words, and differently
    (identical answers are similar by definition, and common when both models decode greedily)."""
    primary = prepared.sides["primary"].text
    if prepared.exchange.route not in TEXT_ROUTES or not primary:
        return []
    others = [prepared.sides[role].text for role in prepared.results]
    differing = [t for t in others if t and t != primary]
    return [primary, *differing] if differing else []


def add_similarity(
    batch: Sequence[Prepared],
    encode: Callable[[list[str]], NDArray[np.float32]],
    count_tokens: Callable[[str], int],
    window: int,
    count_many: Callable[[list[str]], list[int]] | None = None,
) -> None:
    """Semantic similarity for every text comparison in the batch, with one call to the model.
    `count_many`, where given, counts tokens for many texts in one call (same counts, fewer calls)."""
    texts = list(dict.fromkeys(t for prepared in batch for t in texts_to_embed(prepared)))
    counts = TokenCounts(count_tokens, count_many)
    counts.prefill(texts)
    chunks = {text: chunk_for_embedding(text, counts, window) for text in texts}
    flat = [c for parts in chunks.values() for c in parts]
    vectors = encode(flat) if flat else np.zeros((0, 0), dtype=np.float32)
    by_text: dict[str, NDArray[np.float32]] = {}
    row = 0
    for text, parts in chunks.items():
        by_text[text] = vectors[row : row + len(parts)]
        row += len(parts)
    for prepared in batch:
        primary = prepared.sides["primary"].text
        if prepared.exchange.route not in TEXT_ROUTES or not primary:
            continue
        for role, result in prepared.results.items():
            other = prepared.sides[role].text
            if other == primary:
                result.metrics["semantic_similarity"] = 1.0
            elif other:
                result.metrics["semantic_similarity"] = similarity_from_chunks(
                    by_text[primary], by_text[other]
                )


def scored(prepared: Prepared, bodies: Bodies, *, keep_payload: bool = True) -> ScoredPair:
    x = prepared.exchange
    return ScoredPair(
        key=prepared.key,
        exchange_id=x.id,
        tenant=x.tenant,
        route=x.route,
        replay=x.replay,
        captured_at=x.captured_at,
        paired_at=x.paired_at,
        primary=_meta(x.primary),
        candidate=_meta(x.candidate) if x.candidate is not None else None,
        secondary=_meta(x.secondary) if x.secondary is not None else None,
        scores=prepared.results,
        payload=Payload(
            request=bodies.request,
            primary=prepared.sides["primary"].text,
            candidate=prepared.sides["candidate"].text if "candidate" in prepared.sides else None,
            secondary=prepared.sides["secondary"].text if "secondary" in prepared.sides else None,
        )
        if keep_payload
        else None,
    )


def _meta(side: ResponseSide) -> SideMeta:
    return SideMeta(
        status=side.status,
        error=side.error,
        total_ms=side.total_ms,
        ttfb_ms=side.ttfb_ms,
        model=side.model,
        model_version=side.model_version,
        gpu=side.gpu,
    )
