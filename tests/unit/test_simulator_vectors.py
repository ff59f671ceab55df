"""The simulator's embeddings and rerank scores: deterministic, normalised, sensible."""

import math

from simulator import vectors


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embedding_is_deterministic_and_unit_length() -> None:
    first = vectors.embed("Paracetamol 500 mg for fever", 384)
    assert first == vectors.embed("Paracetamol 500 mg for fever", 384)
    assert len(first) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in first)), 1.0)


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    base = vectors.embed("management of dengue fever in adults", 384)
    near = vectors.embed("dengue fever management for adults", 384)
    far = vectors.embed("salt intake and blood pressure targets", 384)
    assert _cosine(base, near) > 0.5
    assert _cosine(base, near) > _cosine(base, far) + 0.3


def test_empty_text_still_gets_a_unit_vector() -> None:
    assert vectors.embed("", 8) == [1.0] + [0.0] * 7


def test_base64_round_trips_as_float32() -> None:
    vec = vectors.embed("asma akut", 16)
    decoded = vectors.from_base64(vectors.to_base64(vec))
    assert len(decoded) == 16
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(vec, decoded, strict=True))


def test_rank_puts_the_overlapping_document_first() -> None:
    docs = ["Salt intake and hypertension", "Dengue warning signs: abdominal pain", "Dengue"]
    ranked = vectors.rank("dengue warning signs", docs)
    assert [index for index, _ in ranked] == [1, 2, 0]
    assert ranked[-1][1] == 0.0
    assert all(0.0 <= score <= 1.0 for _, score in ranked)
