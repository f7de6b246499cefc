"""Hybrid retrieval over a loaded index: dense (FAISS) and keyword (BM25) side by side, fused and kept diverse.

`Retriever` searches one immutable `IndexSnapshot`. `Searcher` is the live, thread-safe view of an index
directory that swaps in a new `Retriever` when a build finishes.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.errors import IndexNotBuilt
from index.fusion import diversify, fuse, interleave
from index.query import QueryHints, read_hints, source_aliases
from index.types import Article, Filters, Hit

_NEG = np.float32(-np.inf)


@dataclass(frozen=True)
class RetrievalSettings:
    """Knobs of the hybrid retriever; the defaults were tuned on MultiHop-RAG dev (benchmarks/tune_retrieval.py)."""

    method: str = "score"  # "score": normalized score sum, "rrf": reciprocal rank
    dense_weight: float = 0.3
    keyword_weight: float = 0.7
    rrf_k: float = 60.0
    depth: int = 100  # candidates taken from each retriever before fusing
    per_article: int = 2  # at most this many chunks of one article in the top k (0: no cap)
    per_source: bool = True  # when a question names sources, also search each of them and interleave
    date_boost: float = 0.1  # added to the fused score of chunks dated as the question says
    keyword_title: bool = True  # index the article title with the chunk text for BM25
    stopwords: str = "en"
    stemmer: str = "english"  # Snowball stemmer language for BM25 (PyStemmer); "" for none


class Retriever:
    """Searches one index snapshot: `dense`, `keyword`, and `search` (fused, hinted, diverse)."""

    def __init__(self, snapshot, embedder, settings: RetrievalSettings = RetrievalSettings()):
        import bm25s

        self.snapshot = snapshot
        self.embedder = embedder
        self.settings = settings
        self._embed_lock = threading.Lock()
        chunks = snapshot.chunks
        self._ids = np.array([chunk.id for chunk in chunks], dtype=np.int64)
        self._position = {int(chunk_id): position for position, chunk_id in enumerate(self._ids)}
        articles = [snapshot.articles[chunk.article_id] for chunk in chunks]
        self._sources = np.array([article.source for article in articles], dtype=object)
        self._dates = np.array([article.published[:10] for article in articles], dtype="U10")
        self.known_sources = tuple(sorted({article.source for article in snapshot.articles.values() if article.source}))
        texts = [
            f"{article.title}\n{chunk.text}" if settings.keyword_title and article.title else chunk.text
            for chunk, article in zip(chunks, articles, strict=True)
        ]
        self._stemmer = _stemmer(settings.stemmer)
        self._bm25 = bm25s.BM25()
        if texts:
            self._bm25.index(self._tokenize(texts), show_progress=False)

    def with_settings(self, settings: RetrievalSettings) -> Retriever:
        """A Retriever over the same snapshot with other settings, sharing the BM25 index when it can."""
        keyword_index = ("keyword_title", "stopwords", "stemmer")
        if any(getattr(settings, name) != getattr(self.settings, name) for name in keyword_index):
            return Retriever(self.snapshot, self.embedder, settings)
        clone = copy.copy(self)
        clone.settings = settings
        clone._embed_lock = threading.Lock()
        return clone

    # -- the two retrievers ------------------------------------------------------------------------

    def dense(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The k chunks nearest to the query's embedding (inner product of unit vectors)."""
        return self._hits(self._dense_ranked(self._embed(query), k, self._mask(filters)))

    def keyword(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The k chunks with the highest BM25 score for the query."""
        return self._hits(self._keyword_ranked(query, k, self._mask(filters)))

    def search(self, query: str, k: int = 10, filters: Filters | None = None, hints: QueryHints | None = None) -> list[Hit]:
        """Fused dense + BM25 hits, using the sources and dates the query names, at most `per_article` per article."""
        settings = self.settings
        mask = self._mask(filters)
        hints = read_hints(query, self.known_sources) if hints is None else hints
        vector = self._embed(query)
        depth = max(settings.depth, k)
        ranked = self._fused(query, vector, depth, mask, hints)
        if settings.per_source and len(hints.sources) > 0:
            per_source = []
            for source in hints.sources:
                source_mask = self._sources == source if mask is None else mask & (self._sources == source)
                if source_mask.any():
                    per_source.append(self._fused(query, vector, depth, source_mask, hints))
            ranked = interleave([*per_source, ranked])
        if settings.per_article > 0:
            ranked = diversify(ranked, self._article_of, settings.per_article, k)
        return self._hits(ranked[:k])

    # -- internals ---------------------------------------------------------------------------------

    def _fused(self, query: str, vector: np.ndarray, depth: int, mask: np.ndarray | None, hints: QueryHints) -> list[tuple[int, float]]:
        """Dense and keyword candidates fused, with the date hint's bonus added."""
        settings = self.settings
        lists = [self._dense_ranked(vector, depth, mask), self._keyword_ranked(query, depth, mask)]
        fused = fuse(lists, [settings.dense_weight, settings.keyword_weight], settings.method, settings.rrf_k)
        if hints.dates and settings.date_boost:
            bonus = settings.date_boost * (settings.dense_weight + settings.keyword_weight)
            if settings.method == "rrf":
                bonus /= settings.rrf_k + 1
            fused = sorted(
                ((item, score + (bonus if self._dated(item, hints) else 0.0)) for item, score in fused),
                key=lambda pair: (-pair[1], pair[0]),
            )
        return fused

    def _dated(self, chunk_id: int, hints: QueryHints) -> bool:
        """Whether a chunk's article falls in one of the question's date ranges."""
        date = str(self._dates[self._position[chunk_id]])
        return any(date_range.contains(date) for date_range in hints.dates)

    def _embed(self, query: str) -> np.ndarray:
        """The query's unit vector as a (1, dim) float32 row; one embedding at a time."""
        with self._embed_lock:
            vector = self.embedder.embed([query])
        return np.ascontiguousarray(vector[:1], dtype=np.float32)

    def _dense_ranked(self, vector: np.ndarray, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        """FAISS inner-product search, restricted to the masked chunks when there is a mask."""
        import faiss

        index = self.snapshot.vectors
        count = min(k, index.ntotal if mask is None else int(mask.sum()))
        if count <= 0:
            return []
        params = None
        if mask is not None and not mask.all():
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(self._ids[mask]))
        scores, ids = index.search(vector, count, params=params)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def _keyword_ranked(self, query: str, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        """BM25 over all chunks, masked, best k with a positive score."""
        tokens = self._tokenize([query])[0] if len(self._ids) else []
        known = [token for token in tokens if token in self._bm25.vocab_dict]
        if not known:
            return []
        scores = self._bm25.get_scores(known)
        if mask is not None:
            scores = np.where(mask, scores, _NEG)
        count = min(k, len(scores))
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self._ids[p]), float(scores[p])) for p in top if scores[p] > 0]

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        """Lower-cased word tokens without English stopwords, as bm25s splits them."""
        import bm25s

        return bm25s.tokenize(
            texts, stopwords=self.settings.stopwords, stemmer=self._stemmer, return_ids=False, show_progress=False
        )

    def _mask(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean mask over chunk positions allowed by the filters; None when nothing is filtered."""
        if filters is None or (filters.after is None and filters.before is None and not filters.sources):
            return None
        mask = np.ones(len(self._ids), dtype=bool)
        if filters.after:
            mask &= self._dates >= filters.after[:10]
        if filters.before:
            mask &= (self._dates <= filters.before[:10]) & (self._dates != "")
        if filters.sources:
            wanted = {name.strip().lower() for name in filters.sources}
            allowed = {source for source in self.known_sources if wanted & set(source_aliases(source))}
            mask &= np.isin(self._sources, list(allowed))
        return mask

    def _article_of(self, chunk_id: int) -> str:
        return self.snapshot.chunks[self._position[chunk_id]].article_id

    def _hits(self, ranked) -> list[Hit]:
        """Hits for (chunk id, score) pairs, with their article's metadata."""
        hits = []
        for chunk_id, score in ranked:
            chunk = self.snapshot.chunks[self._position[chunk_id]]
            article: Article = self.snapshot.articles[chunk.article_id]
            hits.append(
                Hit(
                    chunk_id=chunk.id,
                    article_id=chunk.article_id,
                    score=float(score),
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


def _stemmer(language: str):
    """A PyStemmer `stemWords` for the language, or None for no stemming."""
    if not language:
        return None
    try:
        import Stemmer
    except ImportError as error:
        raise ImportError("BM25 stemming needs PyStemmer: pip install PyStemmer (or set stemmer='')") from error
    return Stemmer.Stemmer(language).stemWords


class Searcher:
    """A live, thread-safe view of an index directory; `reload()` swaps in a newer build atomically."""

    def __init__(self, index_dir: Path, embedder, chunk=None, settings: RetrievalSettings = RetrievalSettings()):
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.chunk = chunk
        self.settings = settings
        self._reload_lock = threading.Lock()
        self._retriever: Retriever | None = None
        self.reload()

    @property
    def retriever(self) -> Retriever:
        """The current Retriever; raises IndexNotBuilt when no index has been built yet."""
        retriever = self._retriever
        if retriever is None:
            raise IndexNotBuilt(f"no index in {self.index_dir}: run `byline index` first")
        return retriever

    @property
    def snapshot(self):
        """The IndexSnapshot searches currently run on."""
        return self.retriever.snapshot

    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """Fused, diverse hits from the current snapshot (see Retriever.search)."""
        return self.retriever.search(query, k, filters)

    def article(self, article_id: str) -> Article:
        """An article of the current snapshot; raises ArticleNotFound."""
        return self.snapshot.article(article_id)

    def reload(self) -> bool:
        """Load the newest generation if it changed; True when a new one was swapped in."""
        from index.store import current_generation, load_index

        with self._reload_lock:
            generation = current_generation(self.index_dir)
            if generation is None:
                return False
            if self._retriever is not None and self._retriever.snapshot.generation == generation:
                return False
            snapshot = load_index(
                self.index_dir, embedding_model=self.embedder.name, dim=self.embedder.dim, chunk=self.chunk
            )
            # Build the whole Retriever first: readers keep using the old one until this one assignment.
            self._retriever = Retriever(snapshot, self.embedder, self.settings)
            return True
