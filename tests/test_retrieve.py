"""Retriever and Searcher: dense, keyword and fused search, filters, hints, diversity, live reload."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from index.build import build_index
from index.chunking import ChunkSettings
from index.errors import ArticleNotFound, IndexNotBuilt
from index.retrieve import RetrievalSettings, Retriever, Searcher
from index.stores.local import LocalBackend
from index.types import Filters


def _retriever(corpus: Path, index_dir: Path, embedder, chunk=ChunkSettings(), settings=RetrievalSettings()) -> Retriever:
    build_index(corpus, index_dir, embedder, chunk)
    return Retriever(LocalBackend(index_dir).open(), embedder, settings)


def _write(folder: Path, name: str, title: str, source: str, published: str, body: str) -> None:
    front = f"---\ntitle: {title}\nsource: {source}\npublished: {published}\n---\n"
    (folder / name).write_text(front + body + "\n", encoding="utf-8")


def test_fused_search_ranks_the_dongfeng_article_first(three_articles, tmp_path, fake_embedder):
    retriever = _retriever(three_articles, tmp_path / "index", fake_embedder)
    hits = retriever.search("Dongfeng plant Italy", k=3)
    assert hits[0].title == "Dongfeng in talks to build cars in Italy"
    assert hits[0].source == "Byline Wire"
    assert hits[0].url == "https://example.com/dongfeng-italy"
    assert hits[0].published.startswith("2024-04-10")
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_hit_offsets_point_into_the_article(three_articles, tmp_path, fake_embedder):
    retriever = _retriever(three_articles, tmp_path / "index", fake_embedder)
    for hit in retriever.search("Stellantis Tavares", k=3):
        assert retriever.store.article(hit.article_id).text[hit.start : hit.end] == hit.text


def test_dense_and_keyword_each_find_their_match(three_articles, tmp_path, fake_embedder):
    retriever = _retriever(three_articles, tmp_path / "index", fake_embedder)
    assert retriever.keyword("flooding Leeds", k=1)[0].text.startswith("Heavy rain")
    assert retriever.dense("heavy rain flooding roads Leeds York", k=1)[0].text.startswith("Heavy rain")
    assert retriever.keyword("zzzz qqqq", k=5) == []  # no word known to BM25


def test_source_filter_is_case_insensitive_and_exclusive(three_articles, tmp_path, fake_embedder):
    retriever = _retriever(three_articles, tmp_path / "index", fake_embedder)
    for search in (retriever.search, retriever.dense, retriever.keyword):
        hits = search("Dongfeng Italy", 5, Filters(sources=("auto daily",)))
        assert hits and {hit.source for hit in hits} == {"Auto Daily"}
    assert retriever.search("Dongfeng", 5, Filters(sources=("No Such Paper",))) == []


def test_date_filter_is_inclusive(three_articles, tmp_path, fake_embedder):
    retriever = _retriever(three_articles, tmp_path / "index", fake_embedder)
    hits = retriever.search("Dongfeng Italy Stellantis", 5, Filters(after="2024-04-11", before="2024-04-12"))
    assert [hit.title for hit in hits] == ["Stellantis warns about Chinese rivals"]
    hits = retriever.search("Dongfeng Italy Stellantis", 5, Filters(before="2024-04-10"))
    assert [hit.title for hit in hits] == ["Dongfeng in talks to build cars in Italy"]  # the undated note is out
    assert len(retriever.keyword("rain", 5, Filters(after="2000-01-01"))) == 0


def test_a_named_source_is_searched_on_its_own(tmp_path, fake_embedder):
    """Without the hint, Wire's articles fill the top 2; naming Auto Daily brings its article in."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n in range(3):
        _write(corpus, f"wire{n}.md", f"Dongfeng plant Italy {n}", "Wire", "2024-04-10", f"Dongfeng plant in Italy, report {n}.")
    _write(corpus, "auto.md", "Carmakers", "Auto Daily", "2024-04-12", "Rome is talking to several carmakers.")
    question = "Which plant in Italy did Dongfeng discuss, as Auto Daily wrote?"
    plain = _retriever(corpus, tmp_path / "index", fake_embedder, settings=RetrievalSettings(per_source=False))
    assert "Auto Daily" not in {hit.source for hit in plain.search(question, k=2)}
    hinted = plain.with_settings(RetrievalSettings(per_source=True))
    assert "Auto Daily" in {hit.source for hit in hinted.search(question, k=2)}


def test_diversity_cap_keeps_one_article_from_filling_the_top(tmp_path, fake_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    long_body = " ".join(f"Dongfeng plant Italy sentence number {n}." for n in range(60))
    _write(corpus, "long.md", "Dongfeng plant diary", "Wire", "2024-04-10", long_body)
    _write(corpus, "other.md", "Dongfeng plans", "Desk", "2024-04-11", "Dongfeng may build a plant in Italy. It is early.")
    _write(corpus, "third.md", "Italy courts carmakers", "Desk", "2024-04-12", "Italy wants a second carmaker plant.")
    chunk = ChunkSettings(words=20, overlap_words=0)
    capped = _retriever(corpus, tmp_path / "index", fake_embedder, chunk, RetrievalSettings(per_article=2))
    hits = capped.search("Dongfeng plant Italy", k=4)
    titles = [hit.title for hit in hits]
    assert len(hits) == 4 and titles.count("Dongfeng plant diary") == 2
    assert {"Dongfeng plans", "Italy courts carmakers"} <= set(titles)
    uncapped = capped.with_settings(RetrievalSettings(per_article=0))
    assert [hit.title for hit in uncapped.search("Dongfeng plant Italy sentence number", k=4)].count("Dongfeng plant diary") == 4


def test_rrf_method_also_works(three_articles, tmp_path, fake_embedder):
    retriever = _retriever(three_articles, tmp_path / "index", fake_embedder, settings=RetrievalSettings(method="rrf"))
    assert retriever.search("Dongfeng plant Italy", k=3)[0].title == "Dongfeng in talks to build cars in Italy"
    with pytest.raises(ValueError, match="unknown fusion method"):
        retriever.with_settings(replace(retriever.settings, method="max")).search("Dongfeng", 3)


def test_searcher_without_an_index_says_how_to_build_one(tmp_path, fake_embedder):
    searcher = Searcher(tmp_path / "empty", fake_embedder)
    with pytest.raises(IndexNotBuilt, match="byline index"):
        searcher.search("anything")
    assert searcher.reload() is False


def test_searcher_reload_swaps_atomically_while_readers_search(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "index"
    build_index(three_articles, index_dir, fake_embedder)
    searcher = Searcher(index_dir, fake_embedder)
    first = searcher.store.version
    assert searcher.reload() is False  # nothing new yet
    errors: list[BaseException] = []
    results: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                hits = searcher.search("Dongfeng plant Italy", k=3)
                assert hits and hits[0].text
                results.append(len(hits))
            except BaseException as error:  # noqa: BLE001 - collected and re-raised by the test
                errors.append(error)
                return

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    _write(three_articles, "wind.md", "Offshore wind farm approved", "Coast Post", "2024-05-01", "A wind farm off Hull was approved.")
    build_index(three_articles, index_dir, fake_embedder)
    assert searcher.reload() is True
    stop.set()
    for reader in readers:
        reader.join()
    assert not errors and results
    assert searcher.store.version != first
    assert searcher.search("wind farm Hull", k=1)[0].title == "Offshore wind farm approved"
    article_id = searcher.search("wind farm Hull", k=1)[0].article_id
    assert searcher.article(article_id).source == "Coast Post"
    with pytest.raises(ArticleNotFound):
        searcher.article("no-such-id")


@pytest.mark.real
def test_real_model_on_the_sample_corpus(tmp_path, real_embedder):
    corpus = REPO_ROOT / "corpus"
    build_index(corpus, tmp_path / "index", real_embedder)
    searcher = Searcher(tmp_path / "index", real_embedder)
    hits = searcher.search("Dongfeng plant Italy", k=5)
    assert "dongfeng" in (hits[0].title + hits[0].text).lower()
    dense = searcher.retriever.dense("Dongfeng plant Italy", 1)[0]
    assert dense.article_id == hits[0].article_id or "dongfeng" in (dense.title + dense.text).lower()
    per_article = {}
    for hit in searcher.search("Dongfeng Stellantis Italy carmaker", k=6):
        per_article[hit.article_id] = per_article.get(hit.article_id, 0) + 1
    assert max(per_article.values()) <= searcher.retriever.settings.per_article
    source = hits[0].source
    assert source and all(hit.source == source for hit in searcher.search("Italy", 5, Filters(sources=(source.upper(),))))
    day = hits[0].published[:10]
    dated = searcher.search("Italy cars", 5, Filters(after=day, before=day))
    assert dated and all(hit.published.startswith(day) for hit in dated)
