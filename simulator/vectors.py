"""Deterministic stand-ins for an embedding model and a reranker: hashed bag of words, word overlap."""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import re
import struct

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def embed(text: str, dim: int) -> list[float]:
    """A unit vector in which texts sharing words point the same way (the signed hashing trick)."""
    vector = [0.0] * dim
    tokens = words(text)
    # Word pairs as well as words, so word order moves the vector a little, as it does in a model.
    features = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    for feature in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        weight = 1.0 if " " not in feature else 0.5
        vector[value % dim] += weight if value >> 63 else -weight
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        # An empty text still needs a unit vector; any fixed one will do.
        vector[0] = 1.0
        return vector
    return [x / norm for x in vector]


def to_base64(vector: list[float]) -> str:
    """The encoding the OpenAI SDK asks for by default: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def from_base64(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def relevance(query: str, document: str) -> float:
    """Cosine of the two word sets, in [0, 1]: 1 when they share every word, 0 when none."""
    q, d = set(words(query)), set(words(document))
    if not q or not d:
        return 0.0
    return len(q & d) / math.sqrt(len(q) * len(d))


def rank(query: str, documents: list[str]) -> list[tuple[int, float]]:
    """(index, score), best first; ties keep the documents' order so the ranking is stable."""
    scored = [(index, relevance(query, doc)) for index, doc in enumerate(documents)]
    return sorted(scored, key=lambda item: (-item[1], item[0]))
