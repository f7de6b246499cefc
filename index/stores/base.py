"""The Store interface: every backend keeps the chunks, their vectors, a keyword index and the articles.

A backend is one small module (`local.py`, `milvus.py`) with a `Backend` class, chosen by `BYLINE_STORE`
through `store_backend(settings)`. Fusion, diversity and query hints live above the store (index/retrieve.py)
and are shared by every backend.

Reading: `Backend.open()` gives a `Store`, one immutable version of the index (a local generation, a Milvus
version); `Backend.version()` is a cheap check whether a newer one was published, for live reloads.

Writing: `Backend.begin_build(full)` gives a `StoreWriter` that starts from the live version (or from nothing
when `full`). The build calls `delete` and `add`, then `commit`, which publishes the new version in one step.
A writer that is abandoned (the process killed, an exception) leaves the previous version answering, whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np

from index.chunking import ChunkSettings
from index.errors import ArticleNotFound, IndexMismatch
from index.types import Article, Chunk, Filters

FORMAT_NAME = "byline-index"
FORMAT_VERSION = 2  # 2: memory-mapped FAISS, saved BM25, chunk arrays and FTS5 (version 1 loaded everything)
STORE_KINDS = ("local", "milvus")


@dataclass(frozen=True)
class Manifest:
    """What a version was built with and what it holds; checked before an index is used."""

    format_version: int
    embedding_model: str
    dim: int
    chunk_words: int
    chunk_overlap_words: int
    embed_metadata: bool
    built_at: str
    article_count: int
    chunk_count: int
    next_chunk_id: int
    corpus: str = ""  # the corpus path the build read, so callers can tell whether to reuse an index
    vector_index: str = ""  # how the backend searches vectors, e.g. "flat" or "ivf1024" (chosen by size)

    @property
    def chunk(self) -> ChunkSettings:
        """The chunk settings of this version."""
        return ChunkSettings(self.chunk_words, self.chunk_overlap_words, self.embed_metadata)

    def to_json(self) -> str:
        """The manifest's text, with the format name first.

        >>> '"format": "byline-index"' in Manifest(2, "m", 3, 200, 40, True, "", 0, 0, 0).to_json()
        True
        """
        return json.dumps({"format": FORMAT_NAME, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str, rebuild: str) -> Manifest:
        """Parse a manifest; an unknown format or version raises IndexMismatch naming `where` and how to `rebuild`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise IndexMismatch(f"{where} is not valid JSON ({error}). {rebuild}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise IndexMismatch(f"{where} is not a Byline index manifest. {rebuild}")
        if data.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(
                f"index at {where} has format version {data.get('format_version')}; "
                f"this Byline reads version {FORMAT_VERSION}. {rebuild}"
            )
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as error:
            raise IndexMismatch(f"{where} is incomplete ({error}). {rebuild}") from None


def check_manifest(
    manifest: Manifest,
    where: str,
    rebuild: str,
    *,
    embedding_model: str | None = None,
    dim: int | None = None,
    chunk: ChunkSettings | None = None,
) -> None:
    """Raise IndexMismatch, saying how to `rebuild`, if the manifest differs from what this run uses.

    >>> m = Manifest(2, "model-a", 384, 200, 40, True, "", 1, 1, 1)
    >>> check_manifest(m, "ix", "", embedding_model="model-a", dim=384, chunk=ChunkSettings(200, 40, True))
    """
    if (embedding_model is not None and embedding_model != manifest.embedding_model) or (
        dim is not None and dim != manifest.dim
    ):
        uses = f"{embedding_model or manifest.embedding_model} (dim {dim if dim is not None else '?'})"
        raise IndexMismatch(
            f"index at {where} was built with model {manifest.embedding_model} (dim {manifest.dim}); "
            f"this run uses {uses}. {rebuild}"
        )
    if chunk is not None and chunk != manifest.chunk:
        raise IndexMismatch(
            f"index at {where} was built with chunks of {describe_chunks(manifest.chunk)}; "
            f"this run uses {describe_chunks(chunk)}. {rebuild}"
        )


def describe_chunks(chunk: ChunkSettings) -> str:
    """Chunk settings in words.

    >>> describe_chunks(ChunkSettings(200, 40, False))
    '200 words, 40 overlap, no metadata embedded'
    """
    metadata = "metadata embedded" if chunk.embed_metadata else "no metadata embedded"
    return f"{chunk.words} words, {chunk.overlap_words} overlap, {metadata}"


def one_article(store: Store, article_id: str) -> Article:
    """`store.article(id)` for every backend: the one article through `articles([id])`, or ArticleNotFound."""
    found = store.articles([article_id])
    if article_id not in found:
        raise ArticleNotFound(f"no article with id {article_id!r} in the index")
    return found[article_id]


@dataclass(frozen=True)
class ChunkRef:
    """What retrieval needs of a candidate chunk before its text: its article, source and date."""

    id: int
    article_id: str
    source: str = ""
    published: str = ""  # ISO date or datetime of the article, "" when unknown


class Store(Protocol):
    """One immutable version of the index. Filters' `sources` are exact source names (see `sources()`);
    the retriever resolves what a user typed into those. Ranked lists are (chunk id, score), best first."""

    manifest: Manifest
    version: str  # identity of this version: a new one means a build was published

    def dense(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """The k chunks nearest to a unit query vector (inner product) among those the filters allow."""

    def keyword(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """The k chunks with the highest BM25 score for the query; only chunks sharing a word with it."""

    def refs(self, ids: Sequence[int]) -> dict[int, ChunkRef]:
        """Article, source and date of each known chunk id (cheap: no text)."""

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, text included, in the order asked; unknown ids are left out."""

    def articles(self, ids: Iterable[str]) -> dict[str, Article]:
        """The known articles among these ids."""

    def article(self, article_id: str) -> Article:
        """One article; raises ArticleNotFound."""

    def list_articles(self, offset: int = 0, limit: int = 50, query: str = "") -> tuple[list[Article], int]:
        """A page of articles ordered by title (any case) then path, only those whose title or path contains
        `query` (any case) if given, and how many match."""

    def counts(self) -> tuple[int, int]:
        """How many articles and chunks this version holds."""

    def sources(self) -> list[str]:
        """The distinct non-empty article sources, sorted."""

    def mentions(self, name: str) -> bool:
        """Whether any article's title, source or text contains the name as a phrase (case-insensitive)."""

    def common_words(self) -> Container[str]:
        """The words some article writes in lower case (`word in store.common_words()`), so an answer can tell a
        name from a sentence-initial common word (server/answering/compose.py)."""

    def content_hashes(self) -> dict[str, str]:
        """Article id -> content hash of every article, for incremental builds."""

    def close(self) -> None:
        """Release what the version holds open; searching it afterwards is an error."""


class StoreWriter(Protocol):
    """A build in progress. Nothing it does is visible to readers until `commit`."""

    def delete(self, article_ids: Iterable[str]) -> None:
        """Drop these articles (and their chunks) from the version being built; unknown ids are ignored."""

    def add(self, articles: Sequence[Article], hashes: dict[str, str], chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add whole articles with their chunks and one unit vector per chunk (rows in `chunks` order).

        Chunk ids are higher than every id already in the store, and ascending across calls.
        """

    def commit(self, manifest: Manifest) -> str:
        """Publish the version built so far in one atomic step; returns its version name."""

    def abort(self) -> None:
        """Throw away the version being built; the live one is untouched."""


class Backend(Protocol):
    """Where an index lives (a folder, a Milvus collection); opens versions and starts builds."""

    name: str  # "local" or "milvus"
    where: str  # the folder or URI, for messages

    def version(self) -> str | None:
        """The live version's name, or None when nothing was built yet. Cheap: called before each reload."""

    def open(self, *, embedding_model: str | None = None, dim: int | None = None, chunk: ChunkSettings | None = None) -> Store:
        """The live version, its manifest checked; IndexNotBuilt when there is none, IndexMismatch when it differs."""

    def begin_build(self, full: bool = False, progress: Callable[[str, int, int], None] | None = None) -> StoreWriter:
        """A writer starting from the live version (from nothing when `full` or none is usable).

        `progress(stage, done, total)` may be called while committing (stage "writing")."""

    def lock(self, wait: bool = False) -> AbstractContextManager:
        """Hold the one-build-at-a-time lock; IndexBusy when another build holds it (unless `wait`)."""


def store_backend(settings) -> Backend:
    """The backend `settings.store` names ("local": settings.index_dir; "milvus": settings.milvus_uri)."""
    kind = getattr(settings, "store", "local")
    if kind == "local":
        from index.stores.local import LocalBackend

        return LocalBackend(Path(settings.index_dir))
    if kind == "milvus":
        from index.stores.milvus import MilvusBackend

        return MilvusBackend.from_settings(settings)
    raise ValueError(f"unknown store {kind!r}: BYLINE_STORE must be one of {', '.join(STORE_KINDS)}")


def open_store(settings, embedder=None) -> Store:
    """The live version of the index `settings` point at, checked against the settings (and the embedder)."""
    return store_backend(settings).open(
        embedding_model=embedder.name if embedder is not None else settings.embedding_model,
        dim=embedder.dim if embedder is not None else None,
        chunk=settings.chunk_settings(),
    )
