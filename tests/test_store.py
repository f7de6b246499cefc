"""The index on disk: manifest checks, generations, the atomic pointer, garbage collection, loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from index.build import build_index
from index.chunking import ChunkSettings
from index.errors import ArticleNotFound, IndexMismatch, IndexNotBuilt
from index.store import (
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    collect_garbage,
    current_generation,
    load_index,
    publish,
)


@pytest.fixture
def built(three_articles, tmp_path, fake_embedder) -> Path:
    """An index of the three-article corpus built with the fake embedder."""
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, fake_embedder)
    return index_dir


def test_load_gives_every_article_and_chunk_with_offsets(built, fake_embedder):
    snapshot = load_index(built, embedding_model=fake_embedder.name, dim=fake_embedder.dim, chunk=ChunkSettings())
    assert snapshot.generation == current_generation(built) == "gen-000001"
    assert len(snapshot.articles) == 3 and snapshot.manifest.article_count == 3
    assert [c.id for c in snapshot.chunks] == sorted(c.id for c in snapshot.chunks)
    assert snapshot.vectors.ntotal == len(snapshot.chunks) == snapshot.manifest.chunk_count
    for chunk in snapshot.chunks:
        article = snapshot.article(chunk.article_id)
        assert article.text[chunk.start : chunk.end] == chunk.text
        assert snapshot.chunk(chunk.id) == chunk
        assert chunk in snapshot.chunks_of(article.id)
    dongfeng = next(a for a in snapshot.articles.values() if a.path == "dongfeng.md")
    assert dongfeng.title == "Dongfeng in talks to build cars in Italy" and dongfeng.source == "Byline Wire"
    assert set(snapshot.content_hashes) == set(snapshot.articles)


def test_vectors_are_the_chunks_embeddings_under_their_ids(built, fake_embedder):
    snapshot = load_index(built)
    query = fake_embedder.embed(["Heavy rain flooding roads in Leeds"])
    scores, ids = snapshot.vectors.search(query, 1)
    assert snapshot.article(snapshot.chunk(int(ids[0][0])).article_id).path == "weather.txt"
    assert scores[0][0] > 0.3


def test_unknown_article_and_chunk_are_clear_errors(built):
    snapshot = load_index(built)
    with pytest.raises(ArticleNotFound, match="nope"):
        snapshot.article("nope")
    with pytest.raises(KeyError, match="no chunk 999"):
        snapshot.chunk(999)
    assert snapshot.chunks_of("nope") == []


def test_no_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotBuilt, match=r"byline index CORPUS_DIR --index-dir .*empty"):
        load_index(tmp_path / "empty")
    assert current_generation(tmp_path / "empty") is None


@pytest.mark.parametrize(
    "checks, words",
    [
        ({"embedding_model": "other-model", "dim": 64}, "built with model fake-embedder (dim 64); this run uses other-model"),
        ({"embedding_model": "fake-embedder", "dim": 384}, "(dim 64); this run uses fake-embedder (dim 384)"),
        ({"chunk": ChunkSettings(words=120)}, "chunks of 200 words, 40 overlap, metadata embedded; this run uses 120 words"),
        ({"chunk": ChunkSettings(embed_metadata=False)}, "this run uses 200 words, 40 overlap, no metadata embedded"),
    ],
)
def test_manifest_mismatch_is_refused_with_the_rebuild_command(built, checks, words):
    with pytest.raises(IndexMismatch) as error:
        load_index(built, **checks)
    message = str(error.value)
    assert words in message
    assert f"Rebuild it: byline index --full --index-dir {built}" in message


def test_other_format_version_is_refused(built):
    manifest_path = built / current_generation(built) / MANIFEST
    data = json.loads(manifest_path.read_text())
    assert data["format"] == "byline-index" and data["format_version"] == FORMAT_VERSION
    data["format_version"] = FORMAT_VERSION + 1
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(IndexMismatch, match=f"format version {FORMAT_VERSION + 1}.*byline index --full"):
        load_index(built)


def test_manifest_that_is_not_json_is_refused(built):
    (built / current_generation(built) / MANIFEST).write_text("{half")
    with pytest.raises(IndexMismatch, match="not valid JSON.*Rebuild it"):
        load_index(built)


def test_manifest_round_trips():
    manifest = Manifest(FORMAT_VERSION, "m", 8, 150, 30, False, "2024-01-01T00:00:00+00:00", 2, 5, 9, "/c")
    assert Manifest.from_json(manifest.to_json(), Path("ix/gen-000001/manifest.json")) == manifest
    assert manifest.chunk == ChunkSettings(150, 30, False)


def test_pointer_to_a_missing_generation_is_reported(built):
    publish(built, "gen-000099")
    with pytest.raises(IndexNotBuilt, match="gen-000099, which is missing.*byline index --full"):
        load_index(built)


def test_pointer_swap_leaves_no_temporary_file(built):
    publish(built, "gen-000001")
    assert sorted(p.name for p in built.iterdir()) == [".lock", "CURRENT", "gen-000001"]
    assert (built / "CURRENT").read_text() == "gen-000001\n"


def test_old_generations_are_collected_keeping_current_and_previous(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "ix"
    first = None
    for round_ in range(4):
        (three_articles / f"extra{round_}.md").write_text(f"Extra article number {round_} about trains.\n")
        build_index(three_articles, index_dir, fake_embedder)
        first = first or load_index(index_dir)
    generations = sorted(p.name for p in index_dir.iterdir() if p.name.startswith("gen-"))
    assert generations == ["gen-000003", "gen-000004"]
    assert current_generation(index_dir) == "gen-000004"
    # A snapshot loaded long ago lives in memory: removing its folder doesn't break it.
    assert not first.path.exists()
    scores, ids = first.vectors.search(fake_embedder.embed(["rain in Leeds"]), 2)
    assert all(first.chunk(int(i)) for i in ids[0])


def test_collect_garbage_without_keep_removes_only_unfinished_folders(built):
    (built / ".tmp-gen-000002").mkdir()
    (built / ".tmp-gen-000002" / "vectors.faiss").write_bytes(b"half")
    (built / ".tmp-CURRENT").write_text("gen-000002")
    (built / "gen-000000").mkdir()
    removed = collect_garbage(built)
    assert removed == [".tmp-CURRENT", ".tmp-gen-000002"]
    assert (built / "gen-000000").exists() and (built / "gen-000001").exists()
    assert collect_garbage(built, keep=["gen-000001"]) == ["gen-000000"]


def test_loaded_snapshot_holds_no_open_files(built):
    snapshot = load_index(built)
    fd_dir = Path("/proc/self/fd")
    open_paths = {os.path.realpath(fd_dir / fd) for fd in os.listdir(fd_dir) if (fd_dir / fd).exists()}
    assert not any(path.startswith(str(snapshot.path.resolve())) for path in open_paths)
    assert snapshot.vectors.ntotal == len(snapshot.chunks)


def test_readers_loading_during_builds_always_get_a_whole_generation(three_articles, tmp_path, fake_embedder):
    import threading
    import time

    from index.build import build_index as build

    index_dir = tmp_path / "ix"
    build(three_articles, index_dir, fake_embedder)
    stop, seen, errors = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            try:
                snapshot = load_index(index_dir)
                assert snapshot.vectors.ntotal == len(snapshot.chunks) == snapshot.manifest.chunk_count
                assert len(snapshot.articles) == snapshot.manifest.article_count
            except Exception as error:  # any failure, in loading or in what was loaded, is what this test looks for
                errors.append(error)
                return
            seen.add((snapshot.generation, len(snapshot.articles)))
            time.sleep(0.001)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for round_ in range(6):
        (three_articles / f"extra{round_}.md").write_text(f"Extra article {round_} about the harbour.\n")
        build(three_articles, index_dir, fake_embedder)
    stop.set()
    for reader in readers:
        reader.join(10)
    assert errors == []
    # Every generation a reader saw held exactly the articles its build wrote: gen-N has N + 2 articles.
    assert all(count == int(generation.split("-")[1]) + 2 for generation, count in seen)
    assert len(seen) > 1
