"""The bulk embedder: the model's transformer traced to TorchScript in bf16, frozen, and cached.

On a CPU with bf16 matrix units (Intel AMX) this embeds a 256-token chunk in about 11.5 ms of one core,
against 13.2 ms for the same model through sentence-transformers in bf16 and 29 ms for int8 ONNX Runtime.
Once exported it needs only torch and `tokenizers`: not transformers or sentence-transformers, whose
imports take 3 s. The export runs once per model and library versions, like the ONNX one.

torch marks TorchScript deprecated in favour of torch.export, which has no frozen CPU runtime without a
compile step. Should a torch release drop it, loading fails with EmbedderUnavailable and builds stay on ONNX.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from index.embed import load_sentence_transformer, model_label, torch_threads
from index.errors import EmbedderUnavailable
from index.onnx_embed import PooledEmbedder, cache_file

PRECISION = "bf16"


def export_torchscript(model: str, target: Path) -> None:
    """Trace `model`'s transformer in bf16, freeze it and save it at `target`, atomically."""
    import torch

    transformer = load_sentence_transformer(model)[0].auto_model.eval().to(torch.bfloat16)

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask):
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # Two rows of different lengths: the trace records the padded (masked) path, which holds for any batch.
    ids = torch.tensor([[101, 2023, 2003, 1037, 2936, 6251, 102], [101, 2460, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks, which hold for every batch here
            frozen = torch.jit.freeze(torch.jit.trace(LastHiddenState().eval(), (ids, mask)))
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".export-", suffix=".pt", delete=False) as file:
                torch.jit.save(frozen, file.name)
        os.replace(file.name, target)
    except Exception as error:  # tracing raises many types; the message names the model
        raise EmbedderUnavailable(
            f"can't trace {model} to TorchScript ({type(error).__name__}: {error}). Set BYLINE_EMBEDDING_BACKEND=onnx"
        ) from error


class TorchScriptEmbedder(PooledEmbedder):
    """The frozen bf16 TorchScript transformer, one torch thread per batch, batches of 8 (4 to 16 run alike)."""

    def __init__(self, file: Path, model: str, threads: int | None = None, batch_size: int = 8):
        import torch

        super().__init__(model, PRECISION, threads, batch_size)
        self._torch = torch
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self._module = torch.jit.load(str(file))
            with torch.inference_mode():
                self.dim = int(self._module(torch.tensor([[101, 102]]), torch.tensor([[1, 1]])).shape[-1])
        except Exception as error:  # a torch without TorchScript, or a file it can't read
            raise EmbedderUnavailable(f"can't load the TorchScript embedder {file} ({type(error).__name__}: {error})") from error

    @classmethod
    def load(cls, model: str, cache_dir: Path, threads: int | None = None, stderr=None) -> TorchScriptEmbedder:
        """The embedder for `model`, tracing it into `cache_dir` first (once) if it isn't there."""
        target = cache_file(model, cache_dir, PRECISION, suffix=".pt")
        if not target.is_file():
            stream = stderr or sys.stderr
            print(f"building the {PRECISION} TorchScript embedder for {model_label(model)} in {target} (once) ...", file=stream, flush=True)
            export_torchscript(model, target)
        return cls(target, model, threads)

    def embed(self, texts: list[str], progress: bool | None = None, threads: int | None = None) -> np.ndarray:
        """As PooledEmbedder.embed, with torch held to one thread per lane (the lanes are the parallelism)."""
        with torch_threads(1):
            return super().embed(texts, threads=threads)

    def _hidden(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            hidden = self._module(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"]))
            return hidden.float().numpy()
