"""The real all-MiniLM-L6-v2, loaded offline from its PyPI package: what its similarity can and cannot see."""

from __future__ import annotations

import numpy as np
import pytest

from comparators.embedder import Embedder, cpu_has_bf16, default_model_path


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # any attempt to reach a hub would fail loudly
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        return Embedder(precision="fp32")
    finally:
        mp.undo()


def cos(e: Embedder, a: str, b: str) -> float:
    va, vb = e.encode([a, b])
    return float(va @ vb)


def test_loads_the_packaged_model(embedder: Embedder) -> None:
    assert embedder.model_path == default_model_path()
    assert embedder.dimension == 384
    assert embedder.window == 254
    vectors = embedder.encode(["demam", "fever", "BP 130/85 mmHg"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.count_tokens("Paracetamol 500 mg") > 3


def test_similarity_orders_paraphrase_above_unrelated(embedder: Embedder) -> None:
    same = "The patient has a fever and a dry cough for three days."
    paraphrase = "For three days the patient has had a fever with a dry cough."
    unrelated = "Schedule the knee X-ray for next Tuesday morning."
    assert cos(embedder, same, same) == pytest.approx(1.0, abs=1e-5)
    assert cos(embedder, same, paraphrase) > 0.8
    assert cos(embedder, same, unrelated) < 0.3


def test_embeddings_are_blind_to_a_tenfold_dose_change(embedder: Embedder) -> None:
    # Why comparators/clinical.py exists: the model calls these nearly the same.
    assert cos(embedder, "Paracetamol 500 mg three times a day", "Paracetamol 50 mg three times a day") > 0.9


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")
def test_bf16_autocast_keeps_the_vectors(embedder: Embedder) -> None:
    fast = Embedder(precision="bf16")
    texts = ["S: demam 3 hari. O: Suhu 38.5 °C. A: jangkitan virus. P: paracetamol 1 g."] * 4
    assert float(np.min(np.sum(fast.encode(texts) * embedder.encode(texts), axis=1))) > 0.999


def test_a_missing_model_directory_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="no sentence-transformers model directory"):
        Embedder("/nonexistent/model")
