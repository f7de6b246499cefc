"""index/archive.py without HTTP: listing, safe upload names, saving uploads, deleting an article's file."""

from __future__ import annotations

import doctest
from types import SimpleNamespace

import pytest

import index.archive as archive
from format_files import write_scanned_pdf
from index.archive import delete_article_file, list_articles, safe_upload_name, save_upload
from index.errors import ArticleNotFound, UploadExists, UploadRefused, UploadTooLarge
from index.types import Article, CorpusLimits

NOTE = b"# Harrow bridge toll\n\nThe toll on the Harrow bridge will be seventeen euros for cars from June.\n"


def test_doctests():
    assert doctest.testmod(archive).failed == 0


@pytest.mark.parametrize(
    "name, reason",
    [("../escape.md", "holds a path"), ("sub/dir.md", "holds a path"), ("..\\win.md", "holds a path"),
     ("..", "holds a path"), ("", "holds a path"), (".hidden.md", "starts with a dot"),
     ("notes.xyz", "unsupported type .xyz"), ("x" * 200 + ".md", "the limit is 120")],
)
def test_unsafe_names_are_refused(name, reason):
    with pytest.raises(UploadRefused, match=reason):
        safe_upload_name(name)


def test_odd_characters_are_replaced():
    assert safe_upload_name("Q3 <report>|final;.md") == "Q3 _report_final_.md"
    assert safe_upload_name("e\u0301te\u0301.txt") == "\u00e9t\u00e9.txt"  # NFC: one name, however it was typed


def leftovers(corpus):
    """Every entry of the corpus folder (a refused upload must leave nothing behind, staging folders included)."""
    return sorted(p.name for p in corpus.iterdir())


def test_upload_is_saved_checked_and_never_clobbers(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    saved = save_upload(corpus, "harrow.md", NOTE)
    assert (saved.name, saved.articles, saved.replaced) == ("harrow.md", 1, False)
    assert (corpus / "harrow.md").read_bytes() == NOTE
    with pytest.raises(UploadExists, match="already in the corpus folder"):
        save_upload(corpus, "harrow.md", b"# Other\n\nSomething else entirely.\n")
    assert (corpus / "harrow.md").read_bytes() == NOTE
    replaced = save_upload(corpus, "harrow.md", NOTE.replace(b"seventeen", b"nine"), replace=True)
    assert replaced.replaced and b"nine" in (corpus / "harrow.md").read_bytes()
    assert leftovers(corpus) == ["harrow.md"]


def test_upload_over_the_limit_or_unreadable_is_refused_with_its_reason(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with pytest.raises(UploadTooLarge, match="over the 50-byte limit"):
        save_upload(corpus, "big.md", NOTE, limits=CorpusLimits(max_file_bytes=50))
    with pytest.raises(UploadRefused, match="nothing in bad.json can be indexed: bad.json: malformed JSON at line 1"):
        save_upload(corpus, "bad.json", b"{oops")
    write_scanned_pdf(tmp_path / "scan.pdf")
    with pytest.raises(UploadRefused, match="no text layer"):
        save_upload(corpus, "scan.pdf", (tmp_path / "scan.pdf").read_bytes())
    with pytest.raises(UploadRefused, match="empty file"):
        save_upload(corpus, "empty.md", b"  \n")
    assert leftovers(corpus) == []


def test_replacing_a_symlink_replaces_the_link_not_its_target(tmp_path):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside.md"
    corpus.mkdir()
    outside.write_bytes(b"# Outside\n\nNot part of the corpus.\n")
    (corpus / "link.md").symlink_to(outside)
    save_upload(corpus, "link.md", NOTE, replace=True)
    assert outside.read_bytes() == b"# Outside\n\nNot part of the corpus.\n"
    assert not (corpus / "link.md").is_symlink() and (corpus / "link.md").read_bytes() == NOTE


def test_delete_removes_the_articles_file_only_inside_the_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "feeds").mkdir(parents=True)
    (corpus / "feeds" / "alpine.rss").write_text("<rss/>")
    (tmp_path / "keep.md").write_text("outside")
    assert delete_article_file(corpus, Article("a", "t", path="feeds/alpine.rss#2")) == "feeds/alpine.rss"
    assert not (corpus / "feeds" / "alpine.rss").exists()
    with pytest.raises(ArticleNotFound, match="no longer in the corpus folder"):
        delete_article_file(corpus, Article("a", "t", path="feeds/alpine.rss#2"))
    with pytest.raises(ArticleNotFound, match="not a file inside the corpus folder"):
        delete_article_file(corpus, Article("b", "t", path="../keep.md"))
    assert (tmp_path / "keep.md").exists()


ARTICLES = {f"id{n}": Article(f"id{n}", "text", title=f"Story {n:02d}", path=f"s{n}.md") for n in range(30)}


def test_listing_asks_the_live_store():
    calls = []
    store = SimpleNamespace(list_articles=lambda *args: calls.append(args) or ([ARTICLES["id3"]], 1))
    page = list_articles(SimpleNamespace(store=store), 0, 5, "Story 03")
    assert calls == [(0, 5, "Story 03")] and page.articles == [ARTICLES["id3"]] and page.total == 1


def test_listing_pages_and_searches_a_built_index(three_articles, tmp_path, fake_embedder):
    from index.build import build_index
    from index.retrieve import Searcher

    build_index(three_articles, tmp_path / "index", fake_embedder)
    searcher = Searcher(tmp_path / "index", fake_embedder)
    everything = list_articles(searcher, 0, 2)
    # by title: the untitled weather note first
    assert everything.total == 3 and [a.path for a in everything.articles] == ["weather.txt", "dongfeng.md"]
    assert [a.path for a in list_articles(searcher, 2, 2).articles] == ["stellantis.md"]
    assert [a.title for a in list_articles(searcher, query="STELLANTIS").articles] == ["Stellantis warns about Chinese rivals"]
    assert [a.path for a in list_articles(searcher, query="weather.txt").articles] == ["weather.txt"]


def test_listing_before_any_index_is_empty(tmp_path, fake_embedder):
    from index.retrieve import Searcher

    assert list_articles(Searcher(tmp_path / "no-index", fake_embedder)).total == 0
