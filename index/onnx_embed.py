"""The ONNX Runtime embedder: `tokenizers` + onnxruntime + numpy mean pooling. No torch or transformers at run time.

The ONNX file is exported from the model's own weights once (index/onnx_export.py, which needs torch) and
cached under a name keyed by the model folder and the library versions, so a search never exports again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

from index.embed import model_label, resolve_model_path
from index.errors import EmbedderUnavailable

RECIPE_VERSION = 1  # bump when the export or quantization recipe changes: old cache files are then ignored
PRECISIONS = ("int8", "fp32")
_VERSIONED = ("onnx", "onnxruntime", "sentence-transformers", "torch", "transformers")


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average each row's token vectors over its real (mask 1) tokens, as sentence-transformers' mean pooling does.

    >>> mean_pool(np.array([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]]), np.array([[1, 1, 0]]))
    array([[2., 3.]])
    """
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (an all-zero row stays zero).

    >>> normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def check_pipeline(modules: list[dict], pooling: dict) -> None:
    """Raise EmbedderUnavailable unless the model is a transformer, mean pooling and optionally Normalize.

    >>> check_pipeline([{"type": "sentence_transformers.models.Transformer"},
    ...                 {"type": "sentence_transformers.models.Pooling"}], {"pooling_mode_mean_tokens": True})
    """
    kinds = [module.get("type", "").rsplit(".", 1)[-1] for module in modules]
    modes = [key for key, on in pooling.items() if key.startswith("pooling_mode_") and on]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]) or modes != ["pooling_mode_mean_tokens"]:
        raise EmbedderUnavailable(
            f"the onnx embedding backend runs Transformer + mean Pooling (+ Normalize) models; this one is "
            f"{' + '.join(kinds)} with {', '.join(modes) or 'no pooling mode'}. Set BYLINE_EMBEDDING_BACKEND=torch"
        )


def cache_file(model: str, cache_dir: Path, precision: str, suffix: str = ".onnx") -> Path:
    """Where the exported model lives: named by model and precision, keyed by its files and library versions."""
    folder = Path(resolve_model_path(model))
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    key = {
        "recipe": RECIPE_VERSION,
        "folder": str(folder.resolve()),
        "files": [(str(path.relative_to(folder)), path.stat().st_size, int(path.stat().st_mtime)) for path in files],
        "versions": {package: _version(package) for package in _VERSIONED},
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    return Path(cache_dir) / f"{model_label(model)}-{precision}-{digest}{suffix}"


def _version(package: str) -> str:
    """A package's installed version, read without importing it (so torch is never loaded for this)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def default_threads() -> int:
    """Batches embedded at once: every core this process may use, at most 8."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(usable, 8))


class PooledEmbedder:
    """A Transformer + mean-pooling sentence model: `tokenizers` in, mean-pooled and normalized rows out.

    Each batch runs on one thread, and `threads` batches run at once: on a busy machine this beats a runtime's
    own intra-op threads, whose spinning workers wait on each other at every operator (a query took 14 ms with
    two ONNX Runtime intra-op threads against 2.6 ms with one, at load average 11 on 2 cores). A subclass
    says how a batch's token vectors are computed (`_hidden`).
    """

    def __init__(self, model: str, precision: str, threads: int | None, batch_size: int):
        from tokenizers import Tokenizer

        folder = Path(resolve_model_path(model))
        check_pipeline(_read_json(folder / "modules.json"), _read_json(_pooling_config(folder)))
        self.name, self.precision = model_label(model), precision  # the name is the model: every precision shares its space
        self.batch_size = batch_size
        self.max_length = int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length", 512))
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_length)
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id("[PAD]") or 0)
        self.threads = threads or default_threads()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="embed")

    def embed(self, texts: list[str], progress: bool | None = None, threads: int | None = None) -> np.ndarray:
        """Embed texts as normalized float32 rows, `batch_size` at a time, at most `threads` batches at once
        (None: the embedder's own count; `progress` is accepted and ignored)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = [texts[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        lanes = min(threads or self.threads, self.threads, len(batches))
        if lanes == 1:
            rows = [self._embed_batch(batch) for batch in batches]
        else:
            # Each lane takes the next batch as soon as it is free, so no lane idles while another still has work.
            # The runtimes release the GIL while they compute, so the lanes really go side by side.
            rows = [None] * len(batches)
            queue, taking = iter(enumerate(batches)), threading.Lock()
            list(self._pool.map(lambda _: self._embed_lane(queue, taking, rows), range(lanes)))
        return np.ascontiguousarray(np.vstack(rows), dtype=np.float32)

    def _embed_lane(self, queue: Iterator[tuple[int, list[str]]], taking: threading.Lock, rows: list) -> None:
        """Embed the batches `queue` hands out into their places in `rows`, until it is empty."""
        while True:
            with taking:
                taken = next(queue, None)
            if taken is None:
                return
            rows[taken[0]] = self._embed_batch(taken[1])

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        # One text (a query) skips encode_batch's hand-off to the tokenizer's thread pool: 0.12 ms against 0.23 ms.
        encodings = [self._tokenizer.encode(texts[0])] if len(texts) == 1 else self._tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return normalize(mean_pool(self._hidden(feed), feed["attention_mask"]))

    def _hidden(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The last hidden state (batch, tokens, dim) as float32 for one tokenized batch."""
        raise NotImplementedError


class OnnxEmbedder(PooledEmbedder):
    """The model run by ONNX Runtime (int8 weights by default), one intra-op thread per batch."""

    def __init__(self, onnx_file: Path, model: str, precision: str = "int8", threads: int | None = None, batch_size: int = 16):
        import onnxruntime

        super().__init__(model, precision, threads, batch_size)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._inputs = {item.name for item in self._session.get_inputs()}
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    @classmethod
    def load(cls, model: str, cache_dir: Path, precision: str = "int8", stderr=None) -> OnnxEmbedder:
        """The embedder for `model`, exporting it into `cache_dir` first (once; needs torch) if it isn't there."""
        target = cache_file(model, cache_dir, precision)
        if not target.is_file():
            from index.onnx_export import export_model

            stream = stderr or sys.stderr
            print(f"building the {precision} ONNX embedder for {model_label(model)} in {target} (once) ...", file=stream, flush=True)
            export_model(model, target, quantize=precision == "int8")
        return cls(target, model, precision)

    def _hidden(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        (hidden,) = self._session.run(None, {name: value for name, value in feed.items() if name in self._inputs})
        return hidden


def _pooling_config(folder: Path) -> Path:
    """The Pooling module's config.json, wherever modules.json puts it."""
    for module in _read_json(folder / "modules.json"):
        if module.get("type", "").endswith("Pooling"):
            return folder / module.get("path", "") / "config.json"
    return folder / "1_Pooling" / "config.json"


def _read_json(path: Path):
    """A JSON file of the model folder; a missing or broken one is an EmbedderUnavailable naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EmbedderUnavailable(f"{path}: can't read the model file ({error}). Set BYLINE_EMBEDDING_BACKEND=torch") from None
