"""The local store's own promises: memory-mapped generations, the flat/IVF choice, saved BM25, manifest checks,
the atomic pointer and garbage collection."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.errors import IndexMismatch, IndexNotBuilt
from index.stores.base import FORMAT_VERSION
from index.stores.generations import collect_garbage, current_generation, publish
from index.stores.keyword import KeywordIndex, build_keyword_index
from index.stores.local import MANIFEST, LocalBackend
from test_build import generated_corpus, vector_of


@pytest.fixture
def built(three_articles, tmp_path, fake_embedder) -> Path:
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, fake_embedder)
    return index_dir


def test_opening_maps_the_files_instead_of_reading_them(built):
    store = LocalBackend(built).open()
    assert store.manifest.vector_index == "flat"
    for array in (store.chunk_ids, store.chunk_sources, store.chunk_dates):
        assert isinstance(array.base, np.memmap) and not array.flags.owndata
    assert isinstance(store.keywords._bm25.scores["data"], np.memmap)
    generation = store.path.name
    assert sorted(p.name for p in store.path.iterdir()) == [
        "bm25", "chunk_dates.npy", "chunk_ids.npy", "chunk_sources.npy", "manifest.json", "meta.sqlite", "sources.json", "vectors.faiss"
    ]
    assert generation == current_generation(built) == "gen-000001"


def test_above_the_flat_limit_an_ivf_index_is_chosen_and_recorded(tmp_path, fake_embedder, monkeypatch):
    monkeypatch.setattr("index.stores.local_writer.FLAT_MAX", 30)
    corpus = tmp_path / "corpus"
    generated_corpus(corpus, 100)
    index_dir = tmp_path / "ix"
    build_index(corpus, index_dir, fake_embedder)
    store = LocalBackend(index_dir).open()
    assert store.manifest.vector_index == "ivf10" and store.counts() == (100, 100)
    chunk_id = store.dense(fake_embedder.embed(["Report 42 on the election"])[0], 1)[0][0]
    assert store.chunks([chunk_id])[0].text.startswith("Article 42 reports on the election")
    # An incremental build reads the kept vectors back out of the IVF index unchanged.
    (corpus / "gen0007.md").write_text("---\ntitle: Changed\nsource: Gen News\n---\nA new text about the bakery.\n")
    kept = int(store.chunk_ids[0])
    build_index(corpus, index_dir, fake_embedder)
    after = LocalBackend(index_dir).open()
    assert np.array_equal(vector_of(after, kept), vector_of(store, kept))
    assert after.manifest.vector_index == "ivf10"


def test_keyword_scores_equal_bm25s_on_the_same_tokens(tmp_path):
    import bm25s
    import Stemmer

    texts = ["Heavy rain flooded roads in Leeds.", "Rain and more rain in York", "Dongfeng talks with Italy", ""]
    build_keyword_index(texts, tmp_path / "bm25")
    index = KeywordIndex(tmp_path / "bm25")
    reference = bm25s.BM25()
    stemmer = Stemmer.Stemmer("english")
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(["rain in Leeds"], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)[0]
    assert np.allclose(index.scores("rain in Leeds"), reference.get_scores(tokens), atol=1e-5)
    assert index.scores("zzz") is None and index.count == 4


def test_an_index_of_the_old_format_says_how_to_rebuild(built):
    manifest_path = built / current_generation(built) / MANIFEST
    data = json.loads(manifest_path.read_text())
    assert data["format"] == "byline-index" and data["format_version"] == FORMAT_VERSION
    data["format_version"] = 1
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(IndexMismatch, match=rf"format version 1; this Byline reads version {FORMAT_VERSION}.*byline index --full --index-dir"):
        LocalBackend(built).open()


def test_a_manifest_that_is_not_json_is_refused(built):
    (built / current_generation(built) / MANIFEST).write_text("{half")
    with pytest.raises(IndexMismatch, match="not valid JSON.*Rebuild it"):
        LocalBackend(built).open()


def test_a_pointer_to_a_missing_generation_is_reported(built):
    publish(built, "gen-000099")
    with pytest.raises(IndexNotBuilt, match="gen-000099, which is missing.*byline index --full"):
        LocalBackend(built).open()


def test_old_generations_are_collected_and_an_open_one_keeps_answering(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "ix"
    first = None
    for round_ in range(4):
        (three_articles / f"extra{round_}.md").write_text(f"Extra article number {round_} about trains.\n")
        build_index(three_articles, index_dir, fake_embedder)
        first = first or LocalBackend(index_dir).open()
    assert sorted(p.name for p in index_dir.iterdir() if p.name.startswith("gen-")) == ["gen-000003", "gen-000004"]
    assert not first.path.exists()  # removed while open: its mapped files and database stay readable
    chunk_id = first.keyword("Leeds flooding", 1)[0][0]
    assert first.chunks([chunk_id])[0].text.startswith("Heavy rain")


def test_collect_garbage_without_keep_removes_only_unfinished_folders(built):
    (built / ".tmp-gen-000002").mkdir()
    (built / ".tmp-CURRENT").write_text("gen-000002")
    (built / "gen-000000").mkdir()
    assert collect_garbage(built) == [".tmp-CURRENT", ".tmp-gen-000002"]
    assert collect_garbage(built, keep=["gen-000001"]) == ["gen-000000"]


def test_readers_opening_during_builds_always_get_a_whole_generation(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, fake_embedder)
    stop, seen, errors = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            try:
                store = LocalBackend(index_dir).open()
                assert store.vectors.ntotal == len(store.chunk_ids) == store.manifest.chunk_count
                assert store.list_articles(0, 100)[1] == store.manifest.article_count
            except Exception as error:  # any failure, in opening or in what was opened, is what this test looks for
                errors.append(error)
                return
            seen.add((store.version, store.manifest.article_count))
            time.sleep(0.001)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for round_ in range(5):
        (three_articles / f"extra{round_}.md").write_text(f"Extra article {round_} about the harbour.\n")
        build_index(three_articles, index_dir, fake_embedder)
    stop.set()
    for reader in readers:
        reader.join(10)
    assert errors == []
    assert all(count == int(generation.split("-")[1]) + 2 for generation, count in seen) and len(seen) > 1
