"""The Store contract: the same tests over every backend (`store_kind`), through the real build.

The `milvus` backend joins by adding its kind to STORE_KINDS and its settings to `store_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from index.build import build_index
from index.errors import ArticleNotFound, IndexMismatch, IndexNotBuilt
from index.stores.base import store_backend
from index.types import Article, Chunk, Filters
from server.settings import Settings

STORE_KINDS = ["local", "milvus"]


@pytest.fixture(params=STORE_KINDS)
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store_settings(store_kind, tmp_path, monkeypatch) -> Settings:
    """Settings pointing at a fresh index of `store_kind`; also exported as BYLINE_* for subprocesses."""
    monkeypatch.setenv("BYLINE_STORE", store_kind)
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(tmp_path / "ix"))
    monkeypatch.setenv("BYLINE_MILVUS_URI", str(tmp_path / "milvus.db"))
    return Settings()


@pytest.fixture
def backend(store_settings):
    return store_backend(store_settings)


def build(corpus: Path, backend, embedder, **options):
    return build_index(corpus, Path(os.environ["BYLINE_INDEX_DIR"]), embedder, backend=backend, **options)


def release(backend) -> None:
    """Let another process open the index: Milvus Lite lets one process open a file at a time."""
    if hasattr(backend, "close"):
        backend.close()


def by_path(store) -> dict[str, Article]:
    """Every article of a store version, by corpus path."""
    articles, _ = store.list_articles(0, 1000)
    return {article.path: article for article in articles}


def all_chunks(store) -> list[Chunk]:
    return store.chunks(range(store.manifest.next_chunk_id))


def test_a_build_gives_counts_sources_articles_and_chunks(three_articles, backend, fake_embedder):
    assert backend.version() is None
    with pytest.raises(IndexNotBuilt, match="byline index"):
        backend.open()
    build(three_articles, backend, fake_embedder)
    store = backend.open(embedding_model=fake_embedder.name, dim=fake_embedder.dim)
    assert store.version == backend.version()
    assert store.counts() == (3, 3) and store.manifest.article_count == 3
    articles = by_path(store)
    assert store.sources() == sorted({"Auto Daily", "Byline Wire", articles["weather.txt"].source} - {""})
    dongfeng = articles["dongfeng.md"]
    assert (dongfeng.title, dongfeng.source, dongfeng.published) == ("Dongfeng in talks to build cars in Italy", "Byline Wire", "2024-04-10")
    assert store.article(dongfeng.id) == dongfeng
    assert set(store.articles([dongfeng.id, "nope"])) == {dongfeng.id}
    with pytest.raises(ArticleNotFound, match="nope"):
        store.article("nope")
    chunks = all_chunks(store)
    assert len(chunks) == 3
    for chunk in chunks:
        assert store.article(chunk.article_id).text[chunk.start : chunk.end] == chunk.text
    ids = [chunk.id for chunk in chunks]
    assert [c.id for c in store.chunks([ids[2], 999, ids[0]])] == [ids[2], ids[0]]
    refs = store.refs(ids)
    assert refs[chunks[0].id].article_id == chunks[0].article_id
    assert {ref.source for ref in refs.values()} == {a.source for a in articles.values()}
    assert set(store.content_hashes()) == {a.id for a in articles.values()}


def test_list_articles_pages_and_filters_by_title(three_articles, backend, fake_embedder):
    build(three_articles, backend, fake_embedder)
    store = backend.open()
    first, total = store.list_articles(0, 2)
    second, _ = store.list_articles(2, 2)
    assert total == 3 and len(first) == 2 and len(second) == 1
    assert [(a.title.lower(), a.path) for a in first + second] == sorted((a.title.lower(), a.path) for a in first + second)
    found, count = store.list_articles(0, 10, "CHINESE")
    assert count == 1 and found[0].title == "Stellantis warns about Chinese rivals"
    assert [a.path for a in store.list_articles(0, 10, "WEATHER.t")[0]] == ["weather.txt"]


def test_dense_and_keyword_search_rank_the_matching_chunk_first(three_articles, backend, fake_embedder):
    build(three_articles, backend, fake_embedder)
    store = backend.open()
    weather = by_path(store)["weather.txt"].id
    dense = store.dense(fake_embedder.embed(["heavy rain flooding roads Leeds York"])[0], 2)
    assert store.refs([dense[0][0]])[dense[0][0]].article_id == weather
    assert dense[0][1] >= dense[1][1]
    keyword = store.keyword("flooding Leeds", 3)
    assert len(keyword) == 1 and store.refs([keyword[0][0]])[keyword[0][0]].article_id == weather
    assert store.keyword("zzzz qqqq", 5) == []


def test_filters_by_source_and_date_range(three_articles, backend, fake_embedder):
    build(three_articles, backend, fake_embedder)
    store = backend.open()
    vector = fake_embedder.embed(["Dongfeng Italy Stellantis"])[0]

    def sources(ranked):
        return {ref.source for ref in store.refs([chunk_id for chunk_id, _ in ranked]).values()}

    auto = Filters(sources=("Auto Daily",))
    assert sources(store.dense(vector, 5, auto)) == {"Auto Daily"}
    assert sources(store.keyword("Dongfeng Italy", 5, auto)) == {"Auto Daily"}
    assert store.dense(vector, 5, Filters(sources=("No Such Paper",))) == []
    # Inclusive range; an undated article never passes a date filter.
    assert sources(store.dense(vector, 5, Filters(after="2024-04-11", before="2024-04-12"))) == {"Auto Daily"}
    assert sources(store.dense(vector, 5, Filters(before="2024-04-10"))) == {"Byline Wire"}
    assert sources(store.dense(vector, 5, Filters(after="2024-04-10"))) == {"Byline Wire", "Auto Daily"}
    assert store.keyword("rain", 5, Filters(after="2000-01-01")) == []


def test_mentions_finds_names_as_phrases_in_any_case(three_articles, backend, fake_embedder):
    build(three_articles, backend, fake_embedder)
    store = backend.open()
    assert store.mentions("carlos tavares") and store.mentions("Dongfeng Motor")
    assert store.mentions("Auto Daily")  # the source counts
    assert not store.mentions("Tavares Carlos") and not store.mentions("Zorblax Industries")
    assert "carmaker" in store.common_words() and "Dongfeng" not in store.common_words() and "dongfeng" not in store.common_words()


def test_incremental_rebuild_replaces_changed_and_drops_deleted_articles(three_articles, backend, fake_embedder):
    build(three_articles, backend, fake_embedder)
    before = backend.open()
    paths = by_path(before)
    kept = [c for c in all_chunks(before) if c.article_id == paths["dongfeng.md"].id]
    (three_articles / "weather.txt").write_text("Snow closed schools across Aberdeen on Friday morning.\n")
    (three_articles / "stellantis.md").unlink()
    fake_embedder.embedded.clear()
    summary = build(three_articles, backend, fake_embedder)
    assert (summary.changed, summary.removed, summary.unchanged) == (1, 1, 1)
    assert len(fake_embedder.embedded) == 1 and "Snow closed schools" in fake_embedder.embedded[0]
    after = backend.open()
    assert after.version != before.version and after.counts() == (2, 2)
    assert set(by_path(after)) == {"dongfeng.md", "weather.txt"}
    with pytest.raises(ArticleNotFound):
        after.article(paths["stellantis.md"].id)
    assert [c for c in all_chunks(after) if c.article_id == paths["dongfeng.md"].id] == kept  # same ids, same text
    assert "Auto Daily" not in after.sources() and "Byline Wire" in after.sources()
    snow = after.dense(fake_embedder.embed(["snow schools Aberdeen"])[0], 1)[0][0]
    assert after.chunks([snow])[0].text.startswith("Snow closed")
    assert not after.mentions("Tavares") and after.mentions("Aberdeen")


def test_writer_delete_and_add_then_commit(three_articles, backend, fake_embedder):
    build(three_articles, backend, fake_embedder)
    store = backend.open()
    paths = by_path(store)
    writer = backend.begin_build()
    writer.delete([paths["weather.txt"].id, "unknown-id"])
    note = Article("note1", "A ferry strike closed the harbour.", title="Ferry strike", source="Coast Post", published="2024-05-01")
    first = store.manifest.next_chunk_id
    writer.add([note], {"note1": "hash1"}, [Chunk(first, "note1", 0, 34, note.text)], fake_embedder.embed([note.text]))
    writer.commit(store.manifest)
    after = backend.open()
    assert after.counts() == (3, 3) and "Coast Post" in after.sources()
    assert after.content_hashes()["note1"] == "hash1"
    assert after.chunks([first])[0].text == note.text
    assert after.keyword("ferry harbour", 1)[0][0] == first
    with pytest.raises(ArticleNotFound):
        after.article(paths["weather.txt"].id)


def test_an_aborted_writer_leaves_the_previous_version(three_articles, backend, fake_embedder):
    build(three_articles, backend, fake_embedder)
    version = backend.version()
    writer = backend.begin_build(full=True)
    writer.delete([a for a in backend.open().content_hashes()])
    writer.abort()
    store = backend.open()
    assert backend.version() == version and store.counts() == (3, 3)


def test_other_model_is_refused_with_how_to_rebuild(three_articles, backend, fake_embedder):
    build(three_articles, backend, fake_embedder)
    with pytest.raises(IndexMismatch, match="built with model fake-embedder.*Rebuild it"):
        backend.open(embedding_model="other-model", dim=384)


def test_kill_9_mid_build_leaves_the_previous_version_answering(three_articles, backend, fake_embedder, tmp_path):
    from test_build import Helper, generated_corpus

    build(three_articles, backend, fake_embedder)
    version = backend.version()
    generated_corpus(three_articles, 300)
    release(backend)
    helper = Helper(three_articles, Path(os.environ["BYLINE_INDEX_DIR"]), "--pause-at", "writing:1")
    try:
        helper.wait_for("PAUSED")
    finally:
        helper.kill()
    store = backend.open()
    assert backend.version() == version and store.counts() == (3, 3)
    assert store.keyword("flooding Leeds", 1)
    summary = build(three_articles, backend, fake_embedder)
    assert summary.added == 300 and backend.open().counts()[0] == 303
