"""The Milvus store on a real Milvus Lite file: generations, what a build leaves visible, and bad URIs.

The behaviour both stores share (search, filters, counts, incremental builds) is in the parametrized
contract suite; these tests cover what only the Milvus backend does.
"""

from __future__ import annotations

import doctest
import itertools
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from index.chunking import ChunkSettings
from index.errors import IndexMismatch, IndexNotBuilt, StoreUnavailable
from index.stores.base import Manifest
from index.stores import milvus, milvus_schema, milvus_writer
from index.stores.milvus import MilvusBackend
from index.stores.milvus_schema import MAX_TEXT, visible
from index.types import Article, Chunk, Filters

from conftest import REPO_ROOT, FakeEmbedder
from milvus_lite_server import lite_server

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def lite_file(tmp_path_factory):
    """One Milvus Lite file per module; each test uses its own collections in it."""
    return str(tmp_path_factory.mktemp("milvus") / "byline.db")


@pytest.fixture
def backend(lite_file):
    return MilvusBackend(lite_file, f"t{next(_prefixes)}")


def ids(ranked: list[tuple[int, float]]) -> list[int]:
    return [chunk_id for chunk_id, _ in ranked]


def manifest(next_chunk_id: int, dim: int = FakeEmbedder.dim, model: str = FakeEmbedder.name) -> Manifest:
    return Manifest(2, model, dim, 200, 40, True, "2026-01-01T00:00:00+00:00", 0, 0, next_chunk_id)


def build(backend, articles: list[Article], first_id: int, *, full: bool = False, drop: tuple[str, ...] = (), dim: int | None = None) -> str:
    """One build: drop articles, add these (one chunk per sentence), commit. Returns the version."""
    chunks = []
    for article in articles:
        start = 0
        for sentence in article.text.split(". "):
            chunks.append(Chunk(first_id + len(chunks), article.id, start, start + len(sentence), sentence))
            start += len(sentence) + 2
    vectors = FakeEmbedder().embed([chunk.text for chunk in chunks])
    if dim is not None:
        vectors = np.resize(vectors, (len(chunks), dim))
    with backend.lock():
        writer = backend.begin_build(full=full)
        writer.delete(drop)
        writer.add(articles, {a.id: f"hash-{a.id}-{len(a.text)}" for a in articles}, chunks, vectors)
        return writer.commit(manifest(first_id + len(chunks), dim or FakeEmbedder.dim))


ROME = Article("rome", "Floods hit Rome on Monday. The Tiber rose two metres", "Rome floods", "Wire \"Daily\"", published="2023-10-02")
SBF = Article("sbf", "Sam Bankman-Fried went on trial in New York. Jurors heard from Caroline Ellison", "FTX trial", "O'Reilly News", published="2023-11-06")
LEEDS = Article("leeds", "Heavy rain flooded roads in Leeds. Forecasters expect drier weather", "Leeds rain", "Wire \"Daily\"")


@pytest.mark.parametrize("module", [milvus, milvus_schema, milvus_writer])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_a_build_is_invisible_until_commit_and_old_versions_keep_answering(backend):
    build(backend, [ROME, SBF], 0)
    old = backend.open()
    with backend.lock():
        writer = backend.begin_build()
        writer.delete(["sbf"])
        writer.add([LEEDS], {"leeds": "h"}, [Chunk(10, "leeds", 0, 33, "Heavy rain flooded roads in Leeds")], FakeEmbedder().embed(["Heavy rain flooded roads in Leeds"]))
        during = backend.open()
        assert during.version == old.version
        assert during.counts() == (2, 4)
        assert [i for i, _ in during.keyword("Bankman", 5)] == [2]
        assert during.keyword("Leeds", 5) == []
        version = writer.commit(manifest(11))
    new = backend.open()
    assert new.version == version != old.version
    assert new.counts() == (2, 3)
    assert new.sources() == ['Wire "Daily"']
    assert new.keyword("Bankman", 5) == [] and [i for i, _ in new.keyword("Leeds", 5)] == [10]
    assert set(new.content_hashes()) == {"rome", "leeds"}
    # The store opened before keeps its generation: the dropped article is still there for it.
    assert [c.text for c in old.chunks([2])] == ["Sam Bankman-Fried went on trial in New York"]
    assert old.article("sbf").title == "FTX trial"


def test_abort_leaves_the_live_version_whole_and_the_next_build_clean(backend):
    build(backend, [ROME, SBF], 0)
    with backend.lock():
        writer = backend.begin_build()
        writer.delete(["rome"])
        writer.add([LEEDS], {"leeds": "h"}, [Chunk(4, "leeds", 0, 5, "Heavy")], FakeEmbedder().embed(["Heavy"]))
        writer.abort()
    store = backend.open()
    assert store.counts() == (2, 4) and store.version == "v000001"
    assert store.article("rome").text == ROME.text
    build(backend, [LEEDS], 4)
    assert backend.open().counts() == (3, 6)


def test_sources_with_quotes_filter_and_dates_filter(backend):
    build(backend, [ROME, SBF, LEEDS], 0)
    store = backend.open()
    vector = FakeEmbedder().embed(["floods"])[0]
    by_source = store.dense(vector, 10, Filters(sources=("O'Reilly News",)))
    assert {store.refs([i])[i].article_id for i, _ in by_source} == {"sbf"}
    quoted = store.keyword("rain floods", 10, Filters(sources=('Wire "Daily"',)))
    assert {store.refs([i])[i].article_id for i, _ in quoted} == {"rome", "leeds"}
    dated = store.keyword("floods rain", 10, Filters(before="2023-10-31"))  # the undated Leeds article is left out
    assert {store.refs([i])[i].article_id for i, _ in dated} == {"rome"}
    assert store.dense(vector, 10, Filters(after="2024-01-01")) == []


def test_an_article_over_64_kb_is_stored_in_parts_and_whole_again(backend):
    words = " ".join(f"word{n}" for n in range(20_000))  # about 130 KB
    long = Article("long", words + ". Final sentence about Rome", "A very long one", "Archive")
    chunk_start = len(words) + 2
    chunks = [Chunk(0, "long", 0, len(words), words), Chunk(1, "long", chunk_start, len(long.text), long.text[chunk_start:])]
    with backend.lock():
        writer = backend.begin_build()
        writer.add([long], {"long": "h"}, chunks, FakeEmbedder().embed([c.text for c in chunks]))
        writer.commit(manifest(2))
    store = backend.open()
    assert len(long.text.encode()) > 2 * MAX_TEXT
    assert store.article("long").text == long.text
    assert [c.text for c in store.chunks([1, 0])] == [long.text[chunk_start:], words]  # the first one's text didn't fit a row
    assert [i for i, _ in store.keyword("Final sentence", 5)] == [1]


def test_mentions_looks_for_the_phrase_in_titles_texts_and_sources(backend):
    build(backend, [ROME, SBF], 0)
    store = backend.open()
    assert store.mentions("Bankman-Fried") and store.mentions("caroline ELLISON")
    assert store.mentions("Rome floods") and store.mentions("O'Reilly News")
    assert not store.mentions("Fried Bankman") and not store.mentions("Elon Musk")


def test_a_full_build_with_another_dimension_replaces_the_collection(backend):
    build(backend, [ROME], 0)
    build(backend, [SBF], 2, full=True, dim=8)
    store = backend.open()
    assert store.manifest.dim == 8 and store.counts() == (1, 2)
    assert store.collection.endswith("_chunks_d8")
    assert store.dense(np.ones(8, dtype=np.float32) / np.sqrt(8), 5)
    build(backend, [LEEDS], 4, drop=("sbf",), dim=8)
    collections = backend.client.list_collections()
    assert f"{backend.prefix}_chunks_d{FakeEmbedder.dim}" not in collections  # two builds later it is gone


def test_manifest_mismatch_and_missing_index_say_how_to_rebuild(backend):
    with pytest.raises(IndexNotBuilt, match="byline index"):
        backend.open()
    build(backend, [ROME], 0)
    with pytest.raises(IndexMismatch, match="BYLINE_STORE=milvus .* byline index --full"):
        backend.open(embedding_model="other-model")
    with pytest.raises(IndexMismatch, match="chunks of 200 words"):
        backend.open(chunk=ChunkSettings(100, 20, True))


@pytest.mark.parametrize("uri", ["/tmp/byline.sqlite", "/tmp/a-name-far-too-long-for-milvus-lite-to-take.db", "ftp://host/x"])
def test_a_uri_milvus_cant_use_is_a_clear_error(uri):
    with pytest.raises(StoreUnavailable, match="BYLINE_MILVUS_URI"):
        MilvusBackend(uri)


def test_a_lite_file_open_in_another_process_is_a_clear_error(tmp_path):
    path = tmp_path / "busy.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from index.stores.milvus import MilvusBackend
            MilvusBackend({str(path)!r}).version()
            print("open", flush=True)
            sys.stdin.read()
        """)],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreUnavailable, match="one process"):
            MilvusBackend(str(path)).version()
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_a_server_uri_runs_the_same_code_as_a_lite_file(tmp_path):
    with lite_server(tmp_path / "served.db") as uri:
        backend = MilvusBackend(uri, "served", lock_dir=tmp_path / "lock")
        build(backend, [ROME, SBF], 0)
        build(backend, [LEEDS], 4, drop=("rome",))
        store = backend.open(embedding_model=FakeEmbedder.name, dim=FakeEmbedder.dim)
        assert store.manifest.vector_index == "autoindex"
        assert store.counts() == (2, 4) and store.version == "v000002"
        assert [store.refs([i])[i].article_id for i, _ in store.keyword("rain Leeds", 3)][:1] == ["leeds"]
        assert (tmp_path / "lock" / ".lock").exists()


def test_kill_9_between_adds_of_a_build_into_a_lite_file_keeps_the_previous_state(three_articles, tmp_path, monkeypatch):
    from test_build import Helper, generated_corpus

    from index.build import build_index

    monkeypatch.setenv("BYLINE_STORE", "milvus")
    monkeypatch.setenv("BYLINE_MILVUS_URI", str(tmp_path / "killed.db"))
    backend = MilvusBackend(str(tmp_path / "killed.db"))
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, FakeEmbedder(), backend=backend)
    before = backend.open()
    answers = (before.counts(), ids(before.keyword("flooding Leeds", 3)), before.sources())
    generated_corpus(three_articles, 300)
    (three_articles / "weather.txt").unlink()  # the build also drops an article: it is listed, its rows stay
    backend.close()
    # Groups of 50 chunks: the helper has added 100 new articles, and dropped one, when it stops.
    helper = Helper(three_articles, index_dir, "--pause-at", "embedding:150", "--checkpoint-chunks", "50")
    try:
        helper.wait_for("PAUSED")
    finally:
        helper.kill()
    after = backend.open()
    assert after.version == before.version
    # The same chunks; BM25 scores move a little, since Milvus counts every row in its statistics.
    assert (after.counts(), ids(after.keyword("flooding Leeds", 3)), after.sources()) == answers
    assert not after.mentions("Gen News") and after.keyword("Residents district", 5) == []
    live = backend.live()
    left_by_the_kill = backend.count(backend.articles, f"born > {live.generation}")
    assert left_by_the_kill >= 100  # the build really was half-way
    summary = build_index(three_articles, index_dir, FakeEmbedder(), backend=backend)
    assert (summary.added, summary.removed) == (300, 1)
    store = backend.open()
    assert store.counts() == (302, 302) and "Gen News" in store.sources()
    live = backend.live()
    now = visible(live.generation, live.floor, backend.dropped(after=live.floor, upto=live.generation))
    assert backend.count(backend.articles, "part >= 0") == backend.count(backend.articles, now) + 1  # + weather, kept for the previous version


def test_the_server_rebuild_runs_beside_its_searcher_on_one_lite_file(three_articles, tmp_path, fake_embedder):
    from index.build import build_from_settings
    from index.retrieve import Searcher
    from index.stores.base import store_backend
    from server.api.rebuild import Rebuilder
    from server.settings import Settings

    settings = Settings(store="milvus", milvus_uri=str(tmp_path / "served.db"), index_dir=tmp_path / "ix", corpus_dir=three_articles)
    build_from_settings(settings, fake_embedder)
    searcher = Searcher(store_backend(settings), fake_embedder, settings.chunk_settings())
    before = searcher.store.version
    (three_articles / "snow.md").write_text("---\ntitle: Snow in Aberdeen\n---\nSnow closed every school in Aberdeen.\n")
    rebuilder = Rebuilder(settings, fake_embedder, searcher)
    rebuilder.start()
    status = rebuilder.wait(120)
    assert status.last_error is None and status.last_summary["added"] == 1
    assert searcher.store.version == status.generation != before
    assert searcher.search("snow Aberdeen schools", k=1)[0].title == "Snow in Aberdeen"


def test_a_failing_milvus_call_is_store_unavailable_naming_where():
    from pymilvus.exceptions import MilvusException

    class Refusing:
        def search(self, *args, **kwargs):
            raise MilvusException(message="failed to connect to all addresses")

    calls = milvus.MilvusCalls(Refusing(), "http://milvus:19530 (collection byline)")
    with pytest.raises(StoreUnavailable, match=r"Milvus at http://milvus:19530 \(collection byline\) failed in search: failed to connect"):
        calls.search("byline_chunks_d384", data=["floods"])
