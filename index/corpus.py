"""Read a corpus folder (or one file) into Articles; every file that can't be read becomes a Skipped with a reason."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from index.chunking import ChunkSettings, chunk_count_bounds, chunk_spans
from index.errors import CorpusFileError
from index.formats.feeds import parse_feed
from index.formats.pdf import parse_pdf
from index.formats.warc import parse_warc
from index.formats.word import parse_docx
from index.readers import (
    Record,
    fallback_source,
    normalized_for_duplicates,
    read_html,
    read_json,
    read_jsonl,
    read_markdown,
    without_surrogates,
)
from index.types import Article, CorpusLimits, FileWarning, Refused, Skipped
from index.walk import kind_of, open_regular_file, shown_path, walk_corpus

# A reader turns a file's bytes into one Record, or into (number, Record or reason) per record for a format
# that holds many. Problems raise CorpusFileError(reason). A new format is one more entry here.
Reader = Callable[[bytes], "Record | list[tuple[int, Record | str]]"]


def numbered(reader: Callable[[bytes], list]) -> Reader:
    """A reader of a list of records (feed entries, WARC responses) as a Reader, its records numbered from 1.

    >>> numbered(lambda data: ["a reason", "another"])(b"")
    [(1, 'a reason'), (2, 'another')]
    """

    def read(data: bytes) -> list[tuple[int, Record | str]]:
        return list(enumerate(reader(data), start=1))

    read.__doc__ = reader.__doc__
    return read


READERS: dict[str, Reader] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".json": read_json,
    ".jsonl": read_jsonl,
    ".pdf": parse_pdf,
    ".docx": parse_docx,
    ".rss": numbered(parse_feed),
    ".atom": numbered(parse_feed),
    ".xml": numbered(parse_feed),
    ".warc": numbered(parse_warc),
    ".warc.gz": numbered(parse_warc),
}
_METADATA_FIELDS = ("title", "source", "url", "author", "published")


class CorpusRead(NamedTuple):
    """What reading a corpus gave: the articles, the files (or records) skipped, and what was left out of some."""

    articles: list[Article]
    skipped: list[Skipped]
    warnings: list[FileWarning]


def article_id(path: str, key: str = "") -> str:
    """A stable article id: 16 hex digits of the SHA-1 of the corpus-relative path (plus a record key).

    File names that aren't UTF-8 (surrogates from os.fsdecode) hash as their raw bytes, so ids stay distinct.

    >>> article_id("dongfeng.md")
    '01fa69ec9f9cd5cb'
    >>> article_id("news.json", "https://example.com/a") != article_id("news.json", "https://example.com/b")
    True
    >>> article_id(os.fsdecode(b"bad_\\xff.md")) != article_id(os.fsdecode(b"bad_\\xfe.md"))
    True
    """
    return hashlib.sha1((f"{path}#{key}" if key else path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def content_hash(article: Article) -> str:
    """Hash of an article's text and metadata; a changed hash means the article must be re-embedded.

    >>> content_hash(Article(id="a", text="x")) == content_hash(Article(id="a", text="x", title="T"))
    False
    """
    fields = [article.text, article.title, article.source, article.url, article.author, article.published]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


def file_suffix(name: str) -> str:
    """The lower-case suffix that picks a reader; two parts for a compressed archive.

    >>> file_suffix("crawl.WARC.gz"), file_suffix("notes.tar.gz"), file_suffix("story.md")
    ('.warc.gz', '.gz', '.md')
    """
    lowered = name.lower()
    return ".warc.gz" if lowered.endswith(".warc.gz") else os.path.splitext(lowered)[1]


def unsupported(name: str) -> str | None:
    """Why Byline can't read a file of this name, or None when a reader takes its suffix.

    >>> unsupported("a.MD"), unsupported("a.xyz"), unsupported("README")
    (None, 'unsupported type .xyz', 'unsupported type (no extension)')
    """
    suffix = file_suffix(name)
    return None if suffix in READERS else f"unsupported type {shown_path(suffix) or '(no extension)'}"


def read_corpus(
    root: Path,
    *,
    limits: CorpusLimits = CorpusLimits(),
    chunk: ChunkSettings = ChunkSettings(),
    progress: Callable[[int, int], None] | None = None,
) -> CorpusRead:
    """Read every supported file under `root` (recursively, in sorted order) or `root` itself if it is a file.

    Never raises for a bad file: it comes back as Skipped(path, reason), and every other entry of the folder
    too, so each one is accounted for. Raises CorpusFileError only when `root` doesn't exist or can't be
    listed. `chunk` sets how articles are counted against the chunk limit. `progress(done, total)` is called
    after each file.
    """
    stream = CorpusStream(root, limits=limits, chunk=chunk, progress=progress)
    articles = list(stream)
    return CorpusRead(articles, stream.skipped, stream.warnings)


class CorpusStream:
    """The articles of a corpus, yielded file by file as they are read, so a build can embed while it reads.

    The folder is listed when the stream is made (CorpusFileError if `root` doesn't exist or can't be
    listed). `skipped` and `warnings` are complete once the iteration ends.
    """

    def __init__(
        self,
        root: Path,
        *,
        limits: CorpusLimits = CorpusLimits(),
        chunk: ChunkSettings = ChunkSettings(),
        progress: Callable[[int, int], None] | None = None,
    ):
        self.root, self.limits, self.chunk, self.progress = os.fspath(root), limits, chunk, progress
        if not os.path.exists(self.root):
            raise CorpusFileError(f"{shown_path(self.root)}: no such file or folder")
        self.skipped: list[Skipped] = []
        self.warnings: list[FileWarning] = []
        if os.path.isdir(self.root):
            if not os.access(self.root, os.R_OK | os.X_OK):
                raise CorpusFileError(f"{shown_path(self.root)}: permission denied, can't list the folder")
            self.files = sorted(walk_corpus(self.root, unsupported, self.skipped))
        else:
            self.files = _single_file(self.root, self.skipped)
        self.files_read = 0

    def __iter__(self) -> Iterator[Article]:
        seen_ids: set[str] = set()
        seen_texts: dict[str, str] = {}
        for done, (rel, path) in enumerate(self.files, start=1):
            for item in _read_file(path, rel, self.limits, self.chunk):
                if isinstance(item, (Skipped, FileWarning)):
                    (self.skipped if isinstance(item, Skipped) else self.warnings).append(item)
                    continue
                key = normalized_for_duplicates(item.text)
                if key in seen_texts:
                    self.skipped.append(Refused(item.path, f"duplicate of {seen_texts[key]}"))
                    continue
                if not item.source:
                    item = replace(item, source=fallback_source(item.url, _folder_name(self.root, rel)))
                if item.id in seen_ids:  # two records of one JSON file share a url: fall back to the record number
                    item = replace(item, id=article_id(rel, "#" + item.path.rpartition("#")[2]))
                seen_texts[key] = item.path
                seen_ids.add(item.id)
                yield item
            self.files_read = done
            if self.progress:
                self.progress(done, len(self.files))
        duplicates = {s.path for s in self.skipped if s.reason.startswith("duplicate of")}
        self.skipped.sort(key=lambda item: item.path.partition("#")[0])  # by file; a file's records stay in their order
        self.warnings = [w for w in self.warnings if w.path not in duplicates]


def _single_file(path: str, skipped: list[Skipped]) -> list[tuple[str, str]]:
    """[(name, path)] for a corpus that is one file, or [] with the reason it can't be read in `skipped`."""
    name = os.path.basename(path)
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        skipped.append(Refused(shown_path(name), f"{kind_of(mode)}, not a regular file"))
    elif unsupported(name):
        skipped.append(Skipped(shown_path(name), unsupported(name)))
    else:
        return [(name, path)]
    return []


def _folder_name(root: str, rel: str) -> str:
    """The name of the folder a corpus file sits in (the corpus folder itself for a top-level file)."""
    parent = os.path.basename(os.path.dirname(rel))
    folder = os.path.dirname(os.path.abspath(root)) if os.path.isfile(root) else os.path.realpath(root)
    return shown_path(parent or os.path.basename(folder))


def _read_bytes(path: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; CorpusFileError for anything else."""
    with os.fdopen(open_regular_file(path), "rb") as file:
        size = os.fstat(file.fileno()).st_size
        data = file.read(max_bytes + 1) if size <= max_bytes else b""
    if size > max_bytes or len(data) > max_bytes:
        raise CorpusFileError(f"file is {max(size, len(data)):,} bytes, over the {max_bytes:,}-byte limit")
    return data


def _read_file(path: str, rel: str, limits: CorpusLimits, chunk: ChunkSettings) -> list[Article | Skipped | FileWarning]:
    """The articles of one file and what was left out of them, or the reasons it (or some records) can't be used."""
    shown = shown_path(rel)
    try:
        data = _read_bytes(path, limits.max_file_bytes)
    except CorpusFileError as error:
        return [Skipped(shown, str(error))]
    except PermissionError:
        return [Skipped(shown, "permission denied: the file is unreadable")]
    except OSError as error:
        what = "symlink loop: the link never reaches a file" if error.errno == errno.ELOOP else None
        return [Skipped(shown, what or f"can't read: {error.strerror or error}")]
    if not data.strip():
        return [Skipped(shown, "empty file")]
    suffix = file_suffix(rel)
    try:
        result = READERS[suffix](data)
    except CorpusFileError as error:
        return [Skipped(shown, str(error))]
    except Exception as error:  # a parser library failing on odd input still must not stop the build
        return [Skipped(shown, f"can't parse this {suffix} file: {type(error).__name__}: {error}")]
    if isinstance(result, Record):
        return _article(article_id(rel), shown, result, limits, chunk)
    if len(result) > limits.max_records_per_file:
        return [Skipped(shown, f"holds {len(result):,} records, over the {limits.max_records_per_file:,}-record limit per file")]
    items: list[Article | Skipped | FileWarning] = []
    for number, record in result:
        if isinstance(record, str):
            items.append(Skipped(f"{shown}#{number}", record))
        else:
            items += _article(article_id(rel, record.url or f"#{number}"), f"{shown}#{number}", record, limits, chunk)
    return items


def _article(id_: str, path: str, record: Record, limits: CorpusLimits, chunk: ChunkSettings) -> list[Article | Skipped | FileWarning]:
    """A Record as an Article with its id and corpus path, and its warnings; or Skipped when it is too long."""
    record = without_surrogates(record)
    count = _chunks_past(limits.max_chunks_per_article, record.text, chunk)
    if count:
        reason = f"too long: at least {count:,} chunks, over the {limits.max_chunks_per_article:,}-chunk limit per article"
        return [Skipped(path, reason)]
    too_long = [name for name in _METADATA_FIELDS if len(getattr(record, name)) > limits.max_metadata_chars]
    warnings = list(record.warnings) + [
        f"{name} is {len(getattr(record, name)):,} characters, over the {limits.max_metadata_chars:,}-character limit: left out"
        for name in too_long
    ]
    record = replace(record, **{name: "" for name in too_long})
    article = Article(id=id_, text=record.text, title=record.title, source=record.source, url=record.url,
                      author=record.author, published=record.published, path=path)
    return [article, *(FileWarning(path, message) for message in warnings)]


def _chunks_past(limit: int, text: str, chunk: ChunkSettings) -> int | None:
    """How many chunks `text` makes at least, when that is over `limit`; else None. Cheap bounds settle most
    texts; only one they leave open is chunked.

    >>> _chunks_past(5, "a\\n" * 1000, ChunkSettings(10, 0)), _chunks_past(5, "One. Two.", ChunkSettings(10, 0))
    (100, None)
    """
    lower, upper = chunk_count_bounds(text, chunk.words)
    if lower > limit or upper <= limit:
        return lower if lower > limit else None
    count = len(chunk_spans(text, chunk.words, chunk.overlap_words))
    return count if count > limit else None
