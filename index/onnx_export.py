"""Export a sentence-transformers model's transformer to ONNX, fuse it, and quantize its weights to int8.

Runs once per model and library versions (index/onnx_embed.py caches the result); it is the only part of
the ONNX backend that needs torch. Everything is local: the weights come from the model folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from index.embed import load_sentence_transformer, resolve_model_path
from index.errors import EmbedderUnavailable

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_model(model: str, target: Path, quantize: bool = True) -> None:
    """Write `model` as an ONNX file at `target` (int8 weights if `quantize`), atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=target.parent) as work:
        work = Path(work)
        _export_fp32(model, work / "fp32.onnx")
        fused = _fuse(work / "fp32.onnx", work / "fused.onnx", Path(resolve_model_path(model)) / "config.json")
        if quantize:
            _quantize(fused, work / "final.onnx")
        else:
            shutil.copyfile(fused, work / "final.onnx")
        os.replace(work / "final.onnx", target)


def _export_fp32(model: str, path: Path) -> None:
    """Trace the transformer (eager attention: an additive mask that ONNX Runtime fuses) with torch.onnx."""
    import torch

    transformer = load_sentence_transformer(model, model_kwargs={"attn_implementation": "eager"})[0].auto_model.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    example = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            # dynamo=False: the TorchScript exporter, which needs no onnxscript.
            torch.onnx.export(
                LastHiddenState().eval(),
                (example, torch.ones_like(example), torch.zeros_like(example)),
                str(path),
                dynamo=False,
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
            )
        except Exception as error:  # the exporter raises many types; the message names the model
            raise EmbedderUnavailable(
                f"can't export {model} to ONNX ({type(error).__name__}: {error}). Set BYLINE_EMBEDDING_BACKEND=torch"
            ) from error


def _fuse(source: Path, target: Path, config_file: Path) -> Path:
    """ONNX Runtime's transformer fusions (attention, skip layer-norm, bias GELU), when it knows the model type."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("model_type") not in MODEL_TYPES:
        return source
    optimized = optimize_model(
        str(source),
        model_type=config["model_type"],
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        opt_level=1,
    )
    optimized.save_model_to_file(str(target))
    return target


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: weights per output channel (per-tensor loses too much here), activations per batch."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # Fused nodes come from the com.microsoft domain, where shape inference can't type every tensor.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
