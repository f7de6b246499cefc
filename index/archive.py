"""The corpus folder as the admin page manages it: list what is indexed, save an upload safely, delete a file.

Uploaded names never leave the corpus folder: a name with a path in it is refused, odd characters are
replaced, and the file is checked by the same readers and limits as a build before it lands (written to a
hidden folder first, which builds and the watcher ignore, then linked into place without clobbering).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from index.corpus import read_corpus, unsupported
from index.errors import ArticleNotFound, IndexNotBuilt, UploadExists, UploadRefused, UploadTooLarge
from index.types import Article, CorpusLimits, Skipped

MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w.() -]+")


@dataclass(frozen=True)
class ArticlePage:
    """One page of the indexed articles, and how many match in all."""

    articles: list[Article]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class SavedUpload:
    """An upload now in the corpus folder: its name there, its size, how many articles it holds, what was left out."""

    name: str
    size: int
    articles: int
    skipped: tuple[Skipped, ...] = ()
    replaced: bool = False


def list_articles(searcher, offset: int = 0, limit: int = 50, query: str = "") -> ArticlePage:
    """A page of the articles the searcher's live Store holds (ordered by title, then path; `query` matches either)."""
    try:
        articles, total = searcher.store.list_articles(offset, limit, query)
    except IndexNotBuilt:
        return ArticlePage([], 0, offset, limit)
    return ArticlePage(list(articles), total, offset, limit)


def safe_upload_name(name: str) -> str:
    """The name an upload is saved under; refuses names that hold a path or hide, replaces odd characters.

    >>> safe_upload_name("Budget report (final).PDF"), safe_upload_name("café\\u0000 notes?.md")
    ('Budget report (final).PDF', 'café_ notes_.md')
    >>> safe_upload_name("../../etc/passwd")
    Traceback (most recent call last):
    index.errors.UploadRefused: file name '../../etc/passwd' holds a path: send a plain file name
    """
    shown = name[:80]
    if "/" in name or "\\" in name or name.strip() in ("", ".", ".."):
        raise UploadRefused(f"file name {shown!r} holds a path: send a plain file name")
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", name)).strip(" ")
    if cleaned.startswith("."):
        raise UploadRefused(f"file name {shown!r} starts with a dot: hidden files are not read as articles")
    if len(cleaned) > MAX_NAME_CHARS:
        raise UploadRefused(f"file name is {len(cleaned)} characters; the limit is {MAX_NAME_CHARS}")
    reason = unsupported(cleaned)
    if reason:
        raise UploadRefused(f"{cleaned}: {reason}")
    return cleaned


def save_upload(
    corpus: Path, name: str, data: bytes, *, limits: CorpusLimits = CorpusLimits(), replace: bool = False
) -> SavedUpload:
    """Check an upload as a build would read it, then put it in the corpus folder under its safe name.

    Raises UploadRefused (bad name or type, nothing readable in it: the reasons named), UploadTooLarge,
    or UploadExists when the name is taken and `replace` is false. Nothing in the folder changes then.
    """
    safe = safe_upload_name(name)
    if len(data) > limits.max_file_bytes:
        raise UploadTooLarge(f"{safe} is {len(data):,} bytes, over the {limits.max_file_bytes:,}-byte limit")
    corpus = Path(corpus)
    target = corpus / safe
    if target.exists() and not replace:
        raise UploadExists(f"{safe} is already in the corpus folder; ask to replace it, or rename the file")
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=corpus))
    try:
        staged = staging / safe
        staged.write_bytes(data)
        articles, skipped, _warnings = read_corpus(staged, limits=limits)
        if not articles:
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped) or "no articles"
            raise UploadRefused(f"nothing in {safe} can be indexed: {reasons}")
        existed = target.exists()
        if replace:
            os.replace(staged, target)
        else:
            try:
                os.link(staged, target)  # fails if the name was taken meanwhile: never clobbers
            except FileExistsError:
                raise UploadExists(f"{safe} is already in the corpus folder; ask to replace it") from None
        return SavedUpload(safe, len(data), len(articles), tuple(skipped), replaced=existed and replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def delete_article_file(corpus: Path, article: Article) -> str:
    """Delete the file an article came from (all its records, for a feed, WARC or JSON file); its corpus path.

    Raises ArticleNotFound when the file is already gone, or lies outside the corpus folder (a link out of it).
    """
    corpus = Path(corpus).resolve()
    relative = article.path.split("#", 1)[0]
    path = corpus / relative
    if not relative or corpus not in path.resolve().parents:
        raise ArticleNotFound(f"{relative or article.id}: not a file inside the corpus folder")
    try:
        path.unlink()
    except FileNotFoundError:
        raise ArticleNotFound(f"{relative} is no longer in the corpus folder") from None
    except IsADirectoryError:
        raise ArticleNotFound(f"{relative} is a folder, not an article file") from None
    return relative
