"""Read a corpus folder (or one file) into Articles; every file that can't be read becomes a Skipped with a reason."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import replace
from collections.abc import Callable, Iterator
from pathlib import Path

from index.errors import CorpusFileError
from index.formats.feeds import parse_feed
from index.formats.pdf import parse_pdf
from index.formats.warc import parse_warc
from index.formats.word import parse_docx
from index.readers import (
    Record,
    decode_bytes,
    fallback_source,
    normalized_for_duplicates,
    parse_html,
    parse_json_records,
    parse_markdown,
)
from index.types import Article, Skipped

# Binary formats read from bytes: one article per file, or one per record (feed entry, WARC response).
BINARY_READERS = {".pdf": parse_pdf, ".docx": parse_docx}
MULTI_RECORD_READERS = {".rss": parse_feed, ".atom": parse_feed, ".xml": parse_feed, ".warc": parse_warc,
                        ".warc.gz": parse_warc}
SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".json", ".jsonl", *BINARY_READERS,
                      *MULTI_RECORD_READERS)


def file_suffix(name: str) -> str:
    """The lower-case suffix that picks a reader; two parts for a compressed archive.

    >>> file_suffix("crawl.WARC.gz"), file_suffix("notes.tar.gz"), file_suffix("story.md")
    ('.warc.gz', '.gz', '.md')
    """
    lowered = name.lower()
    return ".warc.gz" if lowered.endswith(".warc.gz") else os.path.splitext(lowered)[1]


def article_id(path: str, key: str = "") -> str:
    """A stable article id: 16 hex digits of the SHA-1 of the corpus-relative path (plus a record key).

    >>> article_id("dongfeng.md")
    '01fa69ec9f9cd5cb'
    >>> article_id("news.json", "https://example.com/a") != article_id("news.json", "https://example.com/b")
    True
    """
    return hashlib.sha1(f"{path}#{key}".encode("utf-8") if key else path.encode("utf-8")).hexdigest()[:16]


def content_hash(article: Article) -> str:
    """Hash of an article's text and metadata; a changed hash means the article must be re-embedded.

    >>> content_hash(Article(id="a", text="x")) == content_hash(Article(id="a", text="x", title="T"))
    False
    """
    fields = [article.text, article.title, article.source, article.url, article.author, article.published]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


def read_corpus(
    root: Path,
    *,
    max_file_bytes: int = 20_000_000,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Article], list[Skipped]]:
    """Read every supported file under `root` (recursively, in sorted order) or `root` itself if it is a file.

    Never raises for a bad file: it comes back as Skipped(path, reason). Raises CorpusFileError only when
    `root` doesn't exist or can't be read. `progress(done, total)` is called after each file.
    """
    root = Path(root)
    if not root.exists():
        raise CorpusFileError(f"{root}: no such file or folder")
    skipped: list[Skipped] = []
    if root.is_file():
        if file_suffix(root.name) not in SUPPORTED_SUFFIXES:
            reason = f"unsupported file type {root.suffix or '(none)'}; Byline reads {', '.join(SUPPORTED_SUFFIXES)}"
            return [], [Skipped(root.name, reason)]
        files = [(root.name, root)]
    elif root.is_dir():
        if not os.access(root, os.R_OK | os.X_OK):
            raise CorpusFileError(f"{root}: permission denied, can't list the folder")
        files = sorted(_walk(root, skipped))
    else:
        raise CorpusFileError(f"{root}: not a file or folder")

    articles: list[Article] = []
    seen_ids: set[str] = set()
    seen_texts: dict[str, str] = {}
    for done, (rel, path) in enumerate(files, start=1):
        for item in _read_file(path, rel, max_file_bytes):
            if isinstance(item, Skipped):
                skipped.append(item)
                continue
            key = normalized_for_duplicates(item.text)
            if key in seen_texts:
                skipped.append(Skipped(item.path, f"duplicate of {seen_texts[key]}"))
                continue
            if not item.source:
                item = replace(item, source=fallback_source(item.url, _folder_name(root, rel)))
            if item.id in seen_ids:  # two records of one JSON file share a url: fall back to the record number
                item = replace(item, id=article_id(rel, "#" + item.path.rpartition("#")[2]))
            seen_texts[key] = item.path
            seen_ids.add(item.id)
            articles.append(item)
        if progress:
            progress(done, len(files))
    return articles, skipped


def _walk(root: Path, skipped: list[Skipped]) -> Iterator[tuple[str, Path]]:
    """Yield (corpus-relative posix path, path) for each supported file; loops and unreadable folders go to skipped."""
    top = os.path.realpath(root)
    visited = {top}

    def unreadable(error: OSError) -> None:
        skipped.append(Skipped(_relative(root, error.filename), f"can't list folder: {error.strerror or error}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        here = os.path.realpath(dirpath)
        for name in sorted(dirnames):
            dirnames.remove(name)
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            real = os.path.realpath(full)
            encloses_corpus = top.startswith(real + os.sep)  # a link up to a parent would walk it all, then loop
            if real in visited or encloses_corpus:
                is_loop = encloses_corpus or here == real or here.startswith(real + os.sep)
                what = "symlink loop: points back to" if is_loop else "symlink to a folder already read:"
                skipped.append(Skipped(_relative(root, full), f"{what} {_relative(root, real) or '.'}"))
                continue
            visited.add(real)
            dirnames.append(name)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            if file_suffix(name) in SUPPORTED_SUFFIXES or _is_symlink_loop(full):
                yield _relative(root, full), Path(full)


def _folder_name(root: Path, rel: str) -> str:
    """The name of the folder a corpus file sits in (the corpus folder itself for a top-level file)."""
    parent = Path(rel).parent.name
    return parent or (root.parent.name if root.is_file() else root.resolve().name)


def _relative(root: Path, path: str | os.PathLike) -> str:
    """The corpus-relative posix path of `path` (absolute paths outside the corpus stay as they are)."""
    try:
        relative = Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return str(path)
    return str(path) if relative == ".." or relative.startswith("../") else relative


def _is_symlink_loop(path: str) -> bool:
    """Whether `path` is a symlink that can't be resolved because it loops."""
    if not os.path.islink(path):
        return False
    try:
        os.stat(path)
    except OSError as error:
        return error.errno == errno.ELOOP
    return False


def _read_file(path: Path, rel: str, max_file_bytes: int) -> list[Article | Skipped]:
    """The articles of one file, or the reasons it (or some of its records) can't be used."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            return [Skipped(rel, "is a folder, not a file")]
        if size > max_file_bytes:
            return [Skipped(rel, f"file is {size:,} bytes, over the {max_file_bytes:,}-byte limit")]
        data = path.read_bytes()
    except PermissionError:
        return [Skipped(rel, "permission denied: the file is unreadable")]
    except OSError as error:
        if error.errno == errno.ELOOP:
            return [Skipped(rel, "symlink loop: the link never reaches a file")]
        if error.errno == errno.ENOENT and os.path.islink(path):
            return [Skipped(rel, f"broken symlink to {os.readlink(path)}")]
        return [Skipped(rel, f"can't read: {error.strerror or error}")]
    if not data.strip():
        return [Skipped(rel, "empty file")]
    suffix = file_suffix(path.name)
    try:
        if suffix in MULTI_RECORD_READERS:
            return [_json_article(rel, number, record) for number, record in
                    enumerate(MULTI_RECORD_READERS[suffix](data), start=1)]
        if suffix in BINARY_READERS:
            return [_article(article_id(rel), rel, BINARY_READERS[suffix](data))]
        text = decode_bytes(data)
        if not text.strip():
            return [Skipped(rel, "empty file")]
        if suffix in (".json", ".jsonl"):
            return [_json_article(rel, number, record) for number, record in
                    parse_json_records(text, lines=suffix == ".jsonl")]
        record = parse_html(text) if suffix in (".html", ".htm") else parse_markdown(text)
    except CorpusFileError as error:
        return [Skipped(rel, str(error))]
    except Exception as error:  # a parser library failing on odd input still must not stop the build
        return [Skipped(rel, f"can't parse this {suffix} file: {type(error).__name__}: {error}")]
    return [_article(article_id(rel), rel, record)]


def _json_article(rel: str, number: int, record: Record | str) -> Article | Skipped:
    """One record of a multi-record file (JSON, JSONL, feed, WARC) as an Article at `rel#number`, or its Skipped."""
    path = f"{rel}#{number}"
    if isinstance(record, str):
        return Skipped(path, record)
    return _article(article_id(rel, record.url or f"#{number}"), path, record)


def _article(id_: str, path: str, record: Record) -> Article:
    """Give a Record its id and corpus path."""
    return Article(id=id_, text=record.text, title=record.title, source=record.source, url=record.url,
                   author=record.author, published=record.published, path=path)


