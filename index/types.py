"""The nouns of indexing and retrieval: small frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Article:
    """One news article. `id` is stable across rebuilds; `text` is what chunk offsets point into."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    url: str = ""
    author: str = ""
    published: str = ""  # ISO 8601 date or datetime, "" when unknown
    path: str = ""  # corpus-relative file path, with "#N" for the Nth record of a JSON file


@dataclass(frozen=True)
class Chunk:
    """A passage of an article: `article.text[start:end] == text`."""

    id: int
    article_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its score and the metadata of its article."""

    chunk_id: int
    article_id: str
    score: float
    text: str
    start: int
    end: int
    title: str = ""
    source: str = ""
    url: str = ""
    published: str = ""


@dataclass(frozen=True)
class Filters:
    """Search filters: inclusive published-date range (ISO dates) and allowed sources."""

    after: str | None = None
    before: str | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A corpus file (or record) left out of a build, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Refused(Skipped):
    """A corpus entry Byline won't read by design (a symlink out of the folder, a FIFO, a duplicate).

    Unlike a file that is merely unreadable this time, whatever was indexed from it before is dropped too."""


@dataclass(frozen=True)
class FileWarning:
    """Something left out of an indexed corpus file (or record), e.g. an impossible date; the article is kept."""

    path: str
    message: str


@dataclass(frozen=True)
class CorpusLimits:
    """Per-file limits on what one corpus file may put into the index; past one, the file or article is skipped."""

    max_file_bytes: int = 20_000_000
    max_records_per_file: int = 10_000  # JSON/JSONL records (and feed entries) in one file
    max_chunks_per_article: int = 500
    max_metadata_chars: int = 1_000  # a longer title, source, url, author or date is left out with a warning


@dataclass(frozen=True)
class BuildSummary:
    """What one build did. Counts are of articles."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)
    warnings: tuple[FileWarning, ...] = field(default_factory=tuple)
    chunks_embedded: int = 0  # sent to the embedder by this build
    chunks_resumed: int = 0  # taken from an interrupted build's checkpoint instead
    chunks_total: int = 0
    seconds: float = 0.0
