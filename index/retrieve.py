"""Hybrid retrieval over a Store: dense and keyword (BM25) side by side, fused, hinted and kept diverse.

`Retriever` searches one immutable store version (index/stores/base.py), whatever the backend: the store
answers filtered top-k queries, and fusion, query hints and diversity happen here. `Searcher` is the live,
thread-safe view of an index that swaps in a new `Retriever` when a build is published.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.errors import IndexNotBuilt
from index.fusion import boost, diversify, fuse, interleave
from index.query import QueryHints, question_parts, read_hints, source_aliases, source_clauses, without_sources
from index.types import Article, Filters, Hit

_NOTHING = Filters(sources=("\0no source matches",))  # a filter no chunk passes


@dataclass(frozen=True)
class RetrievalSettings:
    """Knobs of the hybrid retriever; the defaults were tuned on MultiHop-RAG dev (benchmarks/tune_retrieval.py).

    How BM25 tokenizes and scores is fixed when the index is built (index/stores/keyword.py)."""

    method: str = "score"  # "score": normalized score sum, "rrf": reciprocal rank
    dense_weight: float = 0.2
    keyword_weight: float = 0.8
    rrf_k: float = 60.0
    depth: int = 100  # candidates taken from each retriever before fusing
    per_article: int = 5  # at most this many chunks of one article in the top k (0: no cap)
    per_source: bool = True  # when a question names sources, also search each of them and interleave
    source_clauses: bool = False  # search each named source with only the part of the question about it
    clause_dense: bool = False  # also embed each source's clause (one more embedding per named source)
    split_parts: bool = True  # a question asking several things also searches for each part
    strip_sources: bool = True  # leave the named sources' names out of the BM25 query
    global_turn: bool = False  # when sources are named, the unrestricted ranking also takes turns with them
    date_boost: float = 0.3  # added to the fused score of chunks dated as the question says


class Retriever:
    """Searches one store version: `dense`, `keyword`, and `search` (fused, hinted, diverse)."""

    def __init__(self, store, embedder, settings: RetrievalSettings = RetrievalSettings()):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.known_sources = tuple(store.sources())
        self._embed_lock = threading.Lock()

    def with_settings(self, settings: RetrievalSettings) -> Retriever:
        """A Retriever over the same store with other settings."""
        return Retriever(self.store, self.embedder, settings)

    # -- the two retrievers ------------------------------------------------------------------------

    def dense(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The k chunks nearest to the query's embedding (inner product of unit vectors)."""
        allowed = self.store_filters(filters)
        return [] if allowed is _NOTHING else self._hits(self.store.dense(self._embed(query), k, allowed))

    def keyword(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The k chunks with the highest BM25 score for the query (only chunks sharing a word with it)."""
        allowed = self.store_filters(filters)
        return [] if allowed is _NOTHING else self._hits(self.store.keyword(query, k, allowed))

    def search(self, query: str, k: int = 10, filters: Filters | None = None, hints: QueryHints | None = None) -> list[Hit]:
        """Fused dense + BM25 hits, using the sources and dates the query names, at most `per_article` per article."""
        settings = self.settings
        allowed = self.store_filters(filters)
        if allowed is _NOTHING:
            return []
        hints = read_hints(query, self.known_sources) if hints is None else hints
        refs: dict = {}  # chunk id -> ChunkRef, fetched once per search
        vector = self._embed(query)
        keyword_query = without_sources(query, hints.sources) if settings.strip_sources else query
        depth = max(settings.depth, k)
        ranked = self._fused(vector, keyword_query, depth, allowed, hints, refs)
        if settings.per_source and hints.sources:
            # Multi-hop questions need an article from each outlet they name: search each one on its own
            # and take turns, so one outlet can't fill the list.
            per_source = []
            clauses = source_clauses(query, hints.sources) if settings.source_clauses else []
            for source, clause in clauses or [(source, query) for source in hints.sources]:
                if settings.strip_sources:
                    clause = without_sources(clause, hints.sources)
                clause_vector = vector
                if settings.clause_dense and clause != keyword_query:
                    clause_vector = self._embed(clause)
                fused = self._fused(clause_vector, clause, depth, _narrowed(allowed, (source,)), hints, refs)
                if fused:
                    per_source.append(fused)
            ranked = interleave([*per_source, ranked] if settings.global_turn or not per_source else per_source)
        parts = question_parts(keyword_query) if settings.split_parts else []
        if parts:
            part_filter = _narrowed(allowed, hints.sources) if hints.sources else allowed
            part_lists = [self._fused(vector, part, depth, part_filter, hints, refs) for part in parts]
            ranked = interleave([ranked, *part_lists])
        if settings.per_article > 0:
            self._fetch_refs([chunk_id for chunk_id, _ in ranked], refs)
            ranked = diversify(ranked, lambda chunk_id: refs[chunk_id].article_id, settings.per_article, k)
        return self._hits(ranked[:k])

    def store_filters(self, filters: Filters | None) -> Filters | None:
        """The filters with the sources a user typed (any case, outlet names) resolved to the store's names."""
        if filters is None or (filters.after is None and filters.before is None and not filters.sources):
            return None
        if not filters.sources:
            return filters
        wanted = {name.strip().lower() for name in filters.sources}
        allowed = tuple(source for source in self.known_sources if wanted & set(source_aliases(source)))
        return Filters(filters.after, filters.before, allowed) if allowed else _NOTHING

    # -- internals ---------------------------------------------------------------------------------

    def _fused(self, vector, keyword_query: str, depth: int, filters: Filters | None, hints: QueryHints, refs: dict) -> list[tuple[int, float]]:
        """The best `depth` dense and keyword candidates, fused, with the date hint's bonus added."""
        settings = self.settings
        if filters is _NOTHING:
            return []
        lists = [self.store.dense(vector, depth, filters), self.store.keyword(keyword_query, depth, filters)]
        fused = fuse(lists, [settings.dense_weight, settings.keyword_weight], settings.method, settings.rrf_k)
        if hints.dates and settings.date_boost:
            bonus = settings.date_boost * (settings.dense_weight + settings.keyword_weight)
            if settings.method == "rrf":
                bonus /= settings.rrf_k + 1
            self._fetch_refs([chunk_id for chunk_id, _ in fused], refs)
            dated = {i for i, _ in fused if any(r.contains(refs[i].published) for r in hints.dates)}
            fused = boost(fused, lambda chunk_id: bonus if chunk_id in dated else 0.0)
        return fused

    def _fetch_refs(self, ids: list[int], refs: dict) -> None:
        """Add the store's ChunkRefs of the ids not fetched yet."""
        missing = [chunk_id for chunk_id in dict.fromkeys(ids) if chunk_id not in refs]
        if missing:
            refs.update(self.store.refs(missing))

    def _embed(self, query: str) -> np.ndarray:
        """The query's unit vector; one embedding at a time."""
        with self._embed_lock:
            vector = self.embedder.embed([query])
        return np.asarray(vector[0], dtype=np.float32)

    def _hits(self, ranked) -> list[Hit]:
        """Hits for (chunk id, score) pairs, with their article's metadata, read from the store."""
        scores = dict(ranked)
        chunks = self.store.chunks([chunk_id for chunk_id, _ in ranked])
        articles: dict[str, Article] = self.store.articles({chunk.article_id for chunk in chunks})
        hits = []
        for chunk in chunks:
            article = articles[chunk.article_id]
            hits.append(
                Hit(
                    chunk_id=chunk.id,
                    article_id=chunk.article_id,
                    score=float(scores[chunk.id]),
                    text=chunk.text,
                    start=chunk.start,
                    end=chunk.end,
                    title=article.title,
                    source=article.source,
                    url=article.url,
                    published=article.published,
                )
            )
        return hits


def _narrowed(filters: Filters | None, sources) -> Filters:
    """The filters further restricted to some sources (nothing passes if they share none).

    >>> _narrowed(Filters(after="2024-01-01", sources=("A", "B")), ("B", "C"))
    Filters(after='2024-01-01', before=None, sources=('B',))
    """
    if filters is None:
        return Filters(sources=tuple(sources))
    keep = tuple(s for s in sources if not filters.sources or s in filters.sources)
    return Filters(filters.after, filters.before, keep) if keep else _NOTHING


class Searcher:
    """A live, thread-safe view of an index; `reload()` swaps in a newly published version atomically."""

    def __init__(self, index, embedder, chunk=None, settings: RetrievalSettings = RetrievalSettings(), check_every: float = 0.0):
        """`index` is a store Backend (index/stores/base.py), or a folder for the local store.

        With `check_every` > 0, a search first looks (at most that often, in seconds) whether another process
        published a newer version, and swaps it in: several servers on one index follow each other's builds.
        """
        from index.stores.local import LocalBackend

        self.backend = LocalBackend(Path(index)) if isinstance(index, (str, Path)) else index
        self.embedder = embedder
        self.chunk = chunk
        self.settings = settings
        self.check_every = check_every
        self._checked = time.monotonic()
        self._reload_lock = threading.Lock()
        self._retriever: Retriever | None = None
        self.reload()

    @property
    def retriever(self) -> Retriever:
        """The current Retriever; raises IndexNotBuilt when no index has been built yet."""
        retriever = self._retriever
        if retriever is None:
            raise IndexNotBuilt(f"no index in {self.backend.where}: run `byline index` first")
        return retriever

    @property
    def store(self):
        """The store version searches currently run on."""
        return self.retriever.store

    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """Fused, diverse hits from the current version (see Retriever.search)."""
        if self.check_every > 0 and time.monotonic() - self._checked >= self.check_every:
            self._checked = time.monotonic()
            self.reload()
        return self.retriever.search(query, k, filters)

    def article(self, article_id: str) -> Article:
        """An article of the current version; raises ArticleNotFound."""
        return self.store.article(article_id)

    def reload(self) -> bool:
        """Open the newest version if it changed; True when a new one was swapped in."""
        with self._reload_lock:
            version = self.backend.version()
            if version is None:
                return False
            if self._retriever is not None and self._retriever.store.version == version:
                return False
            store = self.backend.open(embedding_model=self.embedder.name, dim=self.embedder.dim, chunk=self.chunk)
            # Open the whole Retriever first: readers keep using the old one until this one assignment.
            self._retriever = Retriever(store, self.embedder, self.settings)
            return True
