"""Reading a corpus: every format, stable ids, and every kind of bad input skipped with its reason."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

from conftest import refuse_reading

from index.chunking import chunk_spans
from index.corpus import content_hash, read_corpus
from index.errors import CorpusFileError
from index.types import Article, CorpusLimits, Skipped


REPO_ROOT = Path(__file__).resolve().parent.parent
MULTIHOP_CORPUS = REPO_ROOT.parent / "shared" / "bench" / "multihop-rag" / "corpus.json"

PARAGRAPH = (
    "The harbour authority said on Monday that the new ferry terminal would open in June, two months later "
    "than planned, because of delays in delivering the steel frame. Passengers will be able to buy tickets "
    "online and board through a covered walkway. Local shops hope the terminal will bring more visitors."
)

HTML_PAGE = f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>Ferry terminal opening delayed | Coast Courier</title>
<meta property="og:site_name" content="Coast Courier">
<meta name="author" content="Ann Lee">
<meta property="article:published_time" content="2024-03-02T10:00:00+00:00">
<link rel="canonical" href="https://coast.example.com/ferry">
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/sport">Sport</a></li><li><a href="/subscribe">Subscribe today</a></li></ul></nav>
<div class="cookie-banner">We use cookies. Accept all cookies.</div>
<main><article><h1>Ferry terminal opening delayed</h1>
<p>{PARAGRAPH}</p><p>{PARAGRAPH.replace("June", "July")}</p><p>Work on the car park will finish first.</p>
</article></main>
<footer><p>Copyright 2024 Coast Courier. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
</body></html>"""


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def by_path(articles: list[Article]) -> dict[str, Article]:
    return {article.path: article for article in articles}


def reasons(skipped) -> dict[str, str]:
    return {item.path: item.reason for item in skipped}


# --- formats -------------------------------------------------------------------------------------


def test_markdown_front_matter_fields(tmp_path):
    write(tmp_path, "a.md", "---\ntitle: Rome offers sites\nsource: Wire\nurl: https://example.com/a\n"
          "author: Ann Lee\npublished: 2024-04-10\n---\nRome will offer sites within weeks.\n")
    write(tmp_path, "b.md", "---\ntitle: B\ndate: April 12, 2024\n---\nBody of b.\n")
    write(tmp_path, "c.md", "---\ntitle: C\npublished_at: 2024-04-13T08:00:00Z\n---\nBody of c.\n")
    articles, skipped, _ = read_corpus(tmp_path)
    assert skipped == []
    a, b, c = (by_path(articles)[name] for name in ("a.md", "b.md", "c.md"))
    assert (a.title, a.source, a.url, a.author, a.published) == (
        "Rome offers sites", "Wire", "https://example.com/a", "Ann Lee", "2024-04-10")
    assert a.text == "Rome will offer sites within weeks."
    assert b.published == "2024-04-12"
    assert c.published == "2024-04-13T08:00:00+00:00"


def test_markdown_heading_becomes_title_only_when_it_is_one(tmp_path):
    write(tmp_path, "heading.md", "# Rome courts Dongfeng\n\nTalks began in Milan.\n")
    write(tmp_path, "setext.txt", "Library hours restored\n======================\nThe council agreed a deal.\n")
    write(tmp_path, "plain.txt", "Heavy rain hit the north.\nRoads flooded.\n")
    articles = by_path(read_corpus(tmp_path)[0])
    assert (articles["heading.md"].title, articles["heading.md"].text) == ("Rome courts Dongfeng", "Talks began in Milan.")
    assert (articles["setext.txt"].title, articles["setext.txt"].text) == ("Library hours restored", "The council agreed a deal.")
    assert (articles["plain.txt"].title, articles["plain.txt"].text) == ("", "Heavy rain hit the north.\nRoads flooded.")


def test_html_main_text_kept_and_boilerplate_dropped(tmp_path):
    write(tmp_path, "ferry.html", HTML_PAGE)
    articles, skipped, _ = read_corpus(tmp_path)
    assert skipped == []
    (article,) = articles
    assert article.title == "Ferry terminal opening delayed"
    assert article.published == "2024-03-02"
    assert (article.source, article.url, article.author) == ("Coast Courier", "https://coast.example.com/ferry", "Ann Lee")
    assert article.text.startswith("The harbour authority said on Monday")
    assert "covered walkway" in article.text
    for boilerplate in ("Subscribe", "cookies", "Copyright", "Privacy policy", "Home"):
        assert boilerplate not in article.text


def test_json_list_object_and_jsonl(tmp_path):
    records = [
        {"title": "One", "body": "First text.", "url": "https://example.com/1", "source": "S", "author": None,
         "published_at": "2024-01-02T03:04:05+00:00", "category": "x"},
        {"title": "Two", "text": "Second text.", "date": "2024-01-03"},
        {"title": "Three", "content": "Third text.", "published": "3 January 2024"},
    ]
    write(tmp_path, "list.json", json.dumps(records))
    write(tmp_path, "object.json", json.dumps({"title": "Solo", "body": "A single record object."}))
    write(tmp_path, "lines.jsonl", "\n".join(json.dumps({"title": f"L{i}", "body": f"Line {i} text."}) for i in (1, 2)))
    articles, skipped, _ = read_corpus(tmp_path)
    assert skipped == []
    found = by_path(articles)
    assert set(found) == {"list.json#1", "list.json#2", "list.json#3", "object.json#1", "lines.jsonl#1", "lines.jsonl#2"}
    first = found["list.json#1"]
    assert (first.title, first.text, first.url, first.source, first.author, first.published) == (
        "One", "First text.", "https://example.com/1", "S", "", "2024-01-02T03:04:05+00:00")
    assert (found["list.json#2"].text, found["list.json#2"].published) == ("Second text.", "2024-01-03")
    assert (found["list.json#3"].text, found["list.json#3"].published) == ("Third text.", "2024-01-03")
    assert found["object.json#1"].title == "Solo"
    assert found["lines.jsonl#2"].text == "Line 2 text."
    assert len({article.id for article in articles}) == len(articles)


def test_single_file_root_and_missing_root(tmp_path):
    path = write(tmp_path, "only.md", "# Only\n\nJust this one.\n")
    articles, skipped, _ = read_corpus(path)
    assert [(a.path, a.title) for a in articles] == [("only.md", "Only")] and skipped == []
    odd = write(tmp_path, "report.xyz", b"%XYZ-1.4")
    assert read_corpus(odd).skipped == [Skipped("report.xyz", "unsupported type .xyz")]
    with pytest.raises(CorpusFileError, match="no such file or folder"):
        read_corpus(tmp_path / "nowhere")


def test_ids_stable_across_reads_and_locations(three_articles, tmp_path):
    first = read_corpus(three_articles).articles
    second = read_corpus(three_articles).articles
    # Same folder name elsewhere: a source-less article's fallback source is that name, so its hash stays too.
    moved = shutil.copytree(three_articles, tmp_path / "elsewhere" / three_articles.name)
    third = read_corpus(moved).articles
    assert [a.id for a in first] == [a.id for a in second] == [a.id for a in third]
    assert [content_hash(a) for a in first] == [content_hash(a) for a in third]
    assert len({a.id for a in first}) == 3


def test_content_hash_tracks_text_and_metadata(three_articles):
    articles = read_corpus(three_articles).articles
    before = {a.path: content_hash(a) for a in articles}
    path = three_articles / "stellantis.md"
    path.write_text(path.read_text().replace("Auto Daily", "Auto Weekly"))
    (three_articles / "weather.txt").write_text("Heavy rain hit the north of England on Wednesday.\n")
    after = {a.path: content_hash(a) for a in read_corpus(three_articles)[0]}
    assert after["dongfeng.md"] == before["dongfeng.md"]
    assert after["stellantis.md"] != before["stellantis.md"]
    assert after["weather.txt"] != before["weather.txt"]


def test_text_is_ready_for_offsets(tmp_path):
    write(tmp_path, "crlf.md", b"---\r\ntitle: T\r\n---\r\n\r\nFirst sentence here.  \r\nSecond one.\r\n\r\n\r\n\r\nThird.\r\n")
    (article,) = read_corpus(tmp_path)[0]
    assert article.text == "First sentence here.\nSecond one.\n\nThird."
    spans = chunk_spans(article.text, words=4, overlap_words=0)
    assert "".join(article.text[s:e] for s, e in spans).replace("\n", "") == article.text.replace("\n", "")


def test_hidden_and_unsupported_files_are_accounted_for(tmp_path):
    write(tmp_path, "good.md", "Good text.\n")
    write(tmp_path, "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    write(tmp_path, "notes/README", "No extension.\n")
    write(tmp_path, ".hidden.md", "Hidden text.\n")
    write(tmp_path, ".git/notes.md", "Hidden folder.\n")
    articles, skipped, _ = read_corpus(tmp_path)
    assert [a.path for a in articles] == ["good.md"]
    assert reasons(skipped) == {
        ".git": "hidden folder: Byline doesn't read hidden entries",
        ".hidden.md": "hidden file: Byline doesn't read hidden entries",
        "notes/README": "unsupported type (no extension)",
        "photo.png": "unsupported type .png",
    }


# --- bad input -----------------------------------------------------------------------------------


def test_binary_file_skipped(tmp_path):
    write(tmp_path, "image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    assert reasons(read_corpus(tmp_path)[1]) == {"image.md": "binary file (contains NUL bytes), not text"}


def test_undecodable_bytes_skipped(tmp_path):
    rng = random.Random(0)
    noise = bytes(rng.randrange(128, 256) for _ in range(400))
    write(tmp_path, "garbled.txt", noise)
    reason = reasons(read_corpus(tmp_path)[1])["garbled.txt"]
    assert reason.startswith("invalid UTF-8 at byte 0") and "no declared or detected encoding" in reason


def test_declared_and_detected_encodings_are_used(tmp_path):
    page = HTML_PAGE.replace('charset="utf-8"', 'charset="iso-8859-1"').replace("Local shops", "Local cafés")
    write(tmp_path, "latin.html", page.encode("latin-1"))
    text = "Le café du marché est fermé à Noël, a déclaré le maire vendredi. Les habitants sont déçus."
    write(tmp_path, "legacy.txt", text.encode("cp1252"))
    articles, skipped, _ = read_corpus(tmp_path)
    assert skipped == []
    found = by_path(articles)
    assert "Local cafés" in found["latin.html"].text
    assert found["legacy.txt"].text == text


def test_empty_files_skipped(tmp_path):
    write(tmp_path, "empty.md", "")
    write(tmp_path, "blank.txt", "  \n\n\t \n")
    write(tmp_path, "only-front-matter.md", "---\ntitle: Nothing here\n---\n\n")
    write(tmp_path, "empty.json", "[]")
    assert reasons(read_corpus(tmp_path)[1]) == {
        "blank.txt": "empty file",
        "empty.json": "JSON list holds no records",
        "empty.md": "empty file",
        "only-front-matter.md": "no article text after the front matter",
    }


def test_malformed_json_skipped_with_line_and_column(tmp_path):
    write(tmp_path, "broken.json", '[\n  {"title": "A", "body": "x"},\n  {"title": "B" "body": "y"}\n]')
    write(tmp_path, "mixed.jsonl", '{"body": "Good line."}\n{"body": oops}\n{"body": "Another good line."}\n')
    write(tmp_path, "scalar.json", '"just a string"')
    articles, skipped, _ = read_corpus(tmp_path)
    found = reasons(skipped)
    assert found["broken.json"] == "malformed JSON at line 3, column 17: Expecting ',' delimiter"
    assert found["mixed.jsonl#2"].startswith("malformed JSON at line 2, column 10")
    assert found["scalar.json"] == "JSON must be a list of records or one record object, not a str"
    assert [a.path for a in articles] == ["mixed.jsonl#1", "mixed.jsonl#3"]


def test_bad_yaml_front_matter_skipped(tmp_path):
    write(tmp_path, "bad.md", "---\ntitle: Fine\nsource: a: b\n---\nText.\n")
    assert reasons(read_corpus(tmp_path).skipped) == {"bad.md": "invalid YAML front matter at line 3, column 10"}


def test_records_without_text_skipped(tmp_path):
    records = [{"title": "Kept", "body": "Real text."}, {"title": "No body"}, {"title": "Blank", "body": "   "}, 42]
    write(tmp_path, "news.json", json.dumps(records))
    articles, skipped, _ = read_corpus(tmp_path)
    assert [a.path for a in articles] == ["news.json#1"]
    assert reasons(skipped) == {
        "news.json#2": "record has no text (no body, text or content field)",
        "news.json#3": "record has no text (no body, text or content field)",
        "news.json#4": "record is a JSON int, not an object",
    }


def test_oversize_file_skipped(tmp_path):
    write(tmp_path, "small.md", "Short.\n")
    write(tmp_path, "big.md", "word " * 300)
    articles, skipped, _ = read_corpus(tmp_path, limits=CorpusLimits(max_file_bytes=1000))
    assert [a.path for a in articles] == ["small.md"]
    assert reasons(skipped) == {"big.md": "file is 1,500 bytes, over the 1,000-byte limit"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode; see the simulated test below")
def test_unreadable_file_skipped(tmp_path):
    path = write(tmp_path, "secret.md", "Text.\n")
    path.chmod(0)
    try:
        assert reasons(read_corpus(tmp_path)[1]) == {"secret.md": "permission denied: the file is unreadable"}
    finally:
        path.chmod(0o644)


def test_unreadable_file_skipped_simulated(tmp_path, monkeypatch):
    """Runs even as root: the OS refusal is simulated at the one call that reads a file."""
    write(tmp_path, "secret.md", "Text.\n")
    write(tmp_path, "open.md", "Open text.\n")
    refuse_reading(monkeypatch, "secret.md")
    articles, skipped, _ = read_corpus(tmp_path)
    assert [a.path for a in articles] == ["open.md"]
    assert reasons(skipped) == {"secret.md": "permission denied: the file is unreadable"}


def test_unreadable_folder_skipped_simulated(tmp_path, monkeypatch):
    """A folder the OS refuses to list is reported; the rest of the corpus is still read."""
    write(tmp_path, "locked/inside.md", "Hidden from us.\n")
    write(tmp_path, "open.md", "Open text.\n")
    real_scandir = os.scandir

    def refuse(path="."):
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    articles, skipped, _ = read_corpus(tmp_path)
    assert [a.path for a in articles] == ["open.md"]
    assert reasons(skipped) == {"locked": "can't list folder: Permission denied"}


def test_symlink_loops_reported_and_not_followed(tmp_path):
    write(tmp_path, "news/story.md", "A story.\n")
    (tmp_path / "news" / "again").symlink_to(tmp_path / "news", target_is_directory=True)
    (tmp_path / "news" / "root").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "news" / "up").symlink_to(tmp_path.parent, target_is_directory=True)
    (tmp_path / "a.md").symlink_to(tmp_path / "b.md")
    (tmp_path / "b.md").symlink_to(tmp_path / "a.md")
    articles, skipped, _ = read_corpus(tmp_path)
    assert [a.path for a in articles] == ["news/story.md"]
    assert reasons(skipped) == {
        "a.md": "symlink loop: the link never reaches a file",
        "b.md": "symlink loop: the link never reaches a file",
        "news/again": "symlink loop: points back to news",
        "news/root": "symlink loop: points back to .",
        "news/up": "symlink points outside the corpus",
    }


def test_duplicates_skipped_first_in_sorted_order_wins(tmp_path):
    write(tmp_path, "b/copy.md", "---\ntitle: Copy\n---\nRome will offer   sites\nwithin weeks.\n")
    write(tmp_path, "a.md", "# Original\n\nRome will offer sites within weeks.\n")
    write(tmp_path, "feed.json", json.dumps([{"body": "rome will offer sites within weeks."}, {"body": "Other."}]))
    articles, skipped, _ = read_corpus(tmp_path)
    assert [a.path for a in articles] == ["a.md", "feed.json#2"]
    assert reasons(skipped) == {"b/copy.md": "duplicate of a.md", "feed.json#1": "duplicate of a.md"}


# --- the shipped corpora -------------------------------------------------------------------------


def test_sample_corpus_reads_cleanly():
    articles, skipped, _ = read_corpus(REPO_ROOT / "corpus")
    assert skipped == []
    assert 15 <= len(articles) <= 30
    assert sum(a.path.endswith(".html") for a in articles) >= 3
    assert 2 <= sum(".json#" in a.path for a in articles) <= 4
    assert all(a.title and a.published.startswith("2024") for a in articles if not a.path.endswith(".txt"))
    dongfeng = " ".join(a.text for a in articles if "Dongfeng" in a.text)
    for fact in ("100,000 vehicles", "Qian Xie", "Milan", "within weeks", "unpopular decisions", "2.83 million",
                 "1.72 million", "38 percent", "Peugeot and Citroën", "Honda and Nissan", "AlixPartners",
                 "about 4 percent", "almost 15 percent", "one of Europe's biggest car markets", "whole region"):
        assert fact in dongfeng, fact
    assert sum("Dongfeng" in a.text for a in articles) >= 3
    assert not any("tour de france" in (a.text + a.title).lower() for a in articles)


@pytest.mark.skipif(not MULTIHOP_CORPUS.exists(), reason="the MultiHop-RAG benchmark corpus is not on this machine")
def test_multihop_corpus_loads_as_is():
    articles, skipped, _ = read_corpus(MULTIHOP_CORPUS)
    assert skipped == [] and len(articles) == 609
    raw = json.loads(MULTIHOP_CORPUS.read_text(encoding="utf-8"))
    first = articles[0]
    assert (first.title, first.url, first.source, first.path) == (raw[0]["title"], raw[0]["url"], raw[0]["source"], "corpus.json#1")
    assert first.published == raw[0]["published_at"]
    assert all(a.text == a.text.strip() and a.text for a in articles)
    assert len({a.id for a in articles}) == 609
