"""The real all-MiniLM-L6-v2, loaded offline from its PyPI package: what its similarity can and cannot see."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


CORPUS = [
    "demam",
    "Paracetamol 500 mg three times a day for fever.",
    "S: Pesakit mengadu demam dan batuk selama 3 hari. O: Suhu 38.5 °C, BP 130/85 mmHg. "
    "A: Jangkitan saluran pernafasan atas. P: Paracetamol 1 g, rehat, air secukupnya.",
    " ".join(["The patient denies chest pain and reports a mild headache since yesterday."] * 12),
    "BP 120/80",
    "Tiada alahan ubat yang diketahui.",
    "No known drug allergies.",
]


def test_rows_come_back_in_the_order_given(embedder: Embedder) -> None:
    # encode() regroups the texts by length in tokens: each row must still be its own text's vector.
    texts = [*CORPUS, *reversed(CORPUS)]
    together = embedder.encode(texts)
    alone = np.vstack([embedder.encode([t]) for t in texts])
    assert together.shape == (len(texts), 384)
    assert float(np.min(np.sum(together * alone, axis=1))) > 0.99999
    assert embedder.encode([]).shape == (0, 384)


def test_bulk_token_counts_equal_single_counts(embedder: Embedder) -> None:
    texts = [*CORPUS, "", " ", "naïve café", "😀 ok", "a\u0301b", "[CLS] x [SEP]"]
    assert embedder.count_tokens_many(texts) == [embedder.count_tokens(t) for t in texts]


@pytest.mark.skipif(
    shutil.which(os.environ.get("CXX") or "g++") is None, reason="no C++ compiler for torch's inductor"
)
def test_a_compiled_model_keeps_the_vectors(embedder: Embedder) -> None:
    compiled = Embedder(compile="on")  # bf16 where the CPU has it, as the worker runs
    assert compiled.compiled
    for texts in (CORPUS, CORPUS[:1], CORPUS[4:6], CORPUS * 5):  # one text, a pair, several groups
        fast = compiled.encode(texts)
        assert float(np.min(np.sum(fast * embedder.encode(texts), axis=1))) > 0.9999


def test_auto_does_not_compile_without_a_cpp_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert not Embedder(precision="bf16", compile="auto").compiled
    assert not Embedder(precision="fp32", compile="auto").compiled  # fp32 was not measured to gain


def test_a_failed_compilation_falls_back_to_the_uncompiled_model(tmp_path: Path) -> None:
    # In a child process: the compiler torch's inductor looks for is read when torch is imported, and
    # an empty kernel cache makes it really try to build.
    script = (
        "import logging, numpy as np\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from comparators.embedder import Embedder\n"
        "e = Embedder(compile='on')\n"
        "v = e.encode(['demam', 'Paracetamol 500 mg'])\n"
        "print('compiled', e.compiled, 'norms', np.round(np.linalg.norm(v, axis=1), 4).tolist())\n"
    )
    env = {
        **os.environ,
        "CXX": "/nonexistent/c++",
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compiled False norms [1.0, 1.0]" in done.stdout
    assert "could not compile the embedding model, running it uncompiled" in done.stderr
