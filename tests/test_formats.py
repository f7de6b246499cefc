"""PDF, DOCX, RSS/Atom and WARC files made by their own libraries: read, indexed, retrieved and answered from."""

from __future__ import annotations

import doctest

import pytest

from format_files import (
    ATOM_ENTRY,
    DOCX_ARTICLE,
    PDF_ARTICLE,
    RSS_ENTRIES,
    WARC_PAGES,
    rss_text,
    write_docx,
    write_newsroom,
    write_pdf,
    write_warc,
)
from index.build import build_index
from index.chunking import ChunkSettings
from index.corpus import read_corpus
from index.formats import feeds, pdf, warc, word
from index.readers import parse_html

# path, title, source, published, url, author of every article the newsroom folder holds.
EXPECTED = [
    ("barrage.pdf", PDF_ARTICLE[0], "newsroom", "2024-03-18T09:30:00+00:00", "", "Mara Quell"),
    ("quince.docx", DOCX_ARTICLE[0], "newsroom", "2024-10-02T08:00:00+00:00", "", "Ilse Varga"),
    ("alpine.rss#1", RSS_ENTRIES[0][0], "Alpine Courier", "2024-03-05T07:30:00+00:00", RSS_ENTRIES[0][1], "Petra Lindqvist"),
    ("alpine.rss#2", RSS_ENTRIES[1][0], "Alpine Courier", "2024-03-06T09:00:00+00:00", RSS_ENTRIES[1][1], "Jonas Reiter"),
    ("skies.atom#1", ATOM_ENTRY[0], "Night Skies Weekly", "2024-05-20T22:15:00+00:00", ATOM_ENTRY[1], "Amara Okafor"),
    ("crawl.warc.gz#1", WARC_PAGES[0][2], "brasknews.example.com", "2024-06-03T10:00:00+00:00", WARC_PAGES[0][0], ""),
    ("crawl.warc.gz#2", WARC_PAGES[1][2], "brasknews.example.com", "2024-06-04T11:30:00+00:00", WARC_PAGES[1][0], ""),
]


@pytest.fixture
def newsroom(tmp_path):
    return write_newsroom(tmp_path / "newsroom")


@pytest.mark.parametrize("module", [pdf, word, feeds, warc])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize("path, title, source, published, url, author", EXPECTED)
def test_each_format_reads_with_its_own_metadata(newsroom, path, title, source, published, url, author):
    articles = read_corpus(newsroom).articles
    article = {a.path: a for a in articles}[path]
    assert (article.title, article.source, article.published, article.url, article.author) == (
        title, source, published, url, author
    )
    assert not article.text.startswith(title)  # a heading repeating the title is not body text


def test_bodies_are_plain_text_from_the_format(newsroom):
    by_path = {a.path: a for a in read_corpus(newsroom)[0]}
    assert "avalanche gallery" in by_path["alpine.rss#1"].text and "<p>" not in by_path["alpine.rss#1"].text
    assert by_path["alpine.rss#1"].text.count("\n\n") == 1  # two <p> become two paragraphs
    assert "binoculars" in by_path["skies.atom#1"].text and "Short." not in by_path["skies.atom#1"].text
    assert "Home | Sport" not in by_path["crawl.warc.gz#1"].text  # trafilatura drops the page's navigation
    assert "twelve turbines" in by_path["barrage.pdf"].text
    assert "jam makers" in by_path["quince.docx"].text


def test_scanned_pdf_and_non_html_warc_record_are_skipped_with_their_reason(newsroom):
    skipped = read_corpus(newsroom).skipped
    reasons = {s.path: s.reason for s in skipped}
    assert "no text layer" in reasons["scan.pdf"] and "OCR" in reasons["scan.pdf"]
    assert reasons["crawl.warc.gz#3"] == "response for https://www.brasknews.example.com/logo.png is image/png, not HTML"
    assert not any("warcinfo" in reason for reason in reasons.values())  # archive bookkeeping isn't an article


def test_unsupported_type_is_named_in_the_build_summary(newsroom, tmp_path, fake_embedder):
    summary = build_index(newsroom, tmp_path / "index", fake_embedder, ChunkSettings(60, 10))
    reasons = {s.path: s.reason for s in summary.skipped}
    assert "unsupported type .xyz" in reasons["notes.xyz"]
    assert summary.added == len(EXPECTED)
    assert set(reasons) == {"notes.xyz", "scan.pdf", "crawl.warc.gz#3"}


def test_multi_article_files_get_stable_distinct_ids(newsroom, tmp_path, fake_embedder):
    first = {a.path: a.id for a in read_corpus(newsroom)[0]}
    (newsroom / "crawl.warc.gz").unlink()
    write_warc(newsroom / "crawl.warc.gz")
    assert {a.path: a.id for a in read_corpus(newsroom)[0]} == first
    assert len(set(first.values())) == len(first)


def test_docx_title_falls_back_to_the_first_heading(tmp_path):
    write_docx(tmp_path / "q.docx", title_in_properties=False)
    [article] = read_corpus(tmp_path / "q.docx").articles
    assert article.title == DOCX_ARTICLE[0]
    assert article.text.startswith("Quince growers")


def test_pdf_without_a_title_takes_its_first_line(tmp_path):
    from fpdf import FPDF

    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=12)
    document.multi_cell(0, 8, "Harbour dredging starts in May\n\nThe dredgers arrive from Rotterdam next week.")
    document.output(str(tmp_path / "dredging.pdf"))
    [article] = read_corpus(tmp_path / "dredging.pdf").articles
    assert article.title == "Harbour dredging starts in May"
    assert article.text == "The dredgers arrive from Rotterdam next week."


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "not a readable PDF"),
        ("fake.docx", b"this is not a zip archive", "not a readable DOCX"),
        ("noise.rss", b"<html><body>a web page, not a feed</body></html>", "no feed entries found"),
        ("noise.warc", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "not a readable WARC archive"),
    ],
)
def test_broken_files_are_skipped_and_the_rest_still_indexes(tmp_path, fake_embedder, name, data, reason):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / name).write_bytes(data)
    write_pdf(corpus / "barrage.pdf")
    summary = build_index(corpus, tmp_path / "index", fake_embedder, ChunkSettings(60, 10))
    assert summary.added == 1
    [skipped] = summary.skipped
    assert skipped.path == name and reason in skipped.reason


def test_feed_entry_without_text_is_skipped_alone(tmp_path):
    feed = rss_text().replace("<item>", "<item><title>Empty</title><link>https://alpine.example.org/e</link></item><item>", 1)
    (tmp_path / "alpine.rss").write_text(feed, encoding="utf-8")
    articles, skipped, _ = read_corpus(tmp_path / "alpine.rss")
    assert [a.title for a in articles] == [RSS_ENTRIES[0][0], RSS_ENTRIES[1][0]]
    assert [(s.path, s.reason) for s in skipped] == [("alpine.rss#1", "feed entry has no content or summary text")]


def test_html_takes_trafilatura_metadata():
    page = (
        '<html><head><title>Dam opens | River Post</title><link rel="canonical" href="https://riverpost.example/dam">'
        '<meta property="og:site_name" content="River Post"><meta name="author" content="Tomas Brenn">'
        '<meta property="article:published_time" content="2024-02-01T06:00:00Z"></head><body><article>'
        "<h1>Dam opens</h1><p>The new dam on the Lusk river opened on Thursday after six years of work, "
        "and the valley's towns will get their water from it from the spring.</p></article></body></html>"
    )
    record = parse_html(page)
    assert (record.source, record.author, record.url) == ("River Post", "Tomas Brenn", "https://riverpost.example/dam")
    assert record.published.startswith("2024-02-01")


def test_missing_source_falls_back_to_the_url_domain_then_the_folder(tmp_path):
    wire = tmp_path / "corpus" / "wire"
    wire.mkdir(parents=True)
    page = "<html><head><link rel='canonical' href='https://www.lusk-valley.example/dam'></head><body><article><p>{}</p></article></body></html>"
    (wire / "dam.html").write_text(page.format("The Lusk dam opened on Thursday after six years of building work by the valley."))
    (wire / "note.md").write_text("# Reservoir level\n\nThe reservoir behind the Lusk dam is already a third full.\n")
    (tmp_path / "corpus" / "top.md").write_text("# Top\n\nA note at the top of the corpus folder, not in any subfolder.\n")
    sources = {a.path: a.source for a in read_corpus(tmp_path / "corpus")[0]}
    assert sources == {"wire/dam.html": "lusk-valley.example", "wire/note.md": "wire", "top.md": "corpus"}


# --- the real embedder and LLM: a question about each file's content is answered from it ---

QUESTIONS = [
    ("barrage.pdf", "How many homes will the Lumbridge tidal barrage power?"),
    ("quince.docx", "How many tonnes of quince did Valdoria growers pick?"),
    ("alpine.rss#1", "When did the Sorn glacier rail tunnel reopen after the avalanche?"),
    ("skies.atom#1", "Where did the Quillon observatory astronomers find the new comet?"),
    ("crawl.warc.gz#1", "Until what time will the Brask library stay open?"),
    ("crawl.warc.gz#2", "How much will Orlen island ferry fares rise?"),
]


@pytest.fixture(scope="module")
def real_newsroom(tmp_path_factory):
    """The newsroom folder indexed with the bundled embedder, and an Answerer over it with the bundled LLM."""
    from server.answering.ask import load_answerer
    from server.settings import Settings

    root = tmp_path_factory.mktemp("real-newsroom")
    corpus = write_newsroom(root / "newsroom")
    return load_answerer(Settings(index_dir=root / "index", corpus_dir=corpus))


@pytest.mark.real
@pytest.mark.parametrize("path, question", QUESTIONS)
def test_question_retrieves_its_file_first(real_newsroom, path, question):
    searcher = real_newsroom.searcher
    [top, *_] = searcher.search(question, 5, None)
    assert searcher.article(top.article_id).path == path


@pytest.mark.real
@pytest.mark.parametrize("path, question", QUESTIONS)
def test_answer_cites_the_file(real_newsroom, path, question):
    result = real_newsroom.answer(question)
    assert not result.abstained, result.message
    cited = {real_newsroom.searcher.article(c.article_id).path for c in result.citations}
    assert path in cited, (result.answer, cited)
