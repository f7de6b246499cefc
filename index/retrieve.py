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
from index.fusion import boost, diversify, fuse, interleave
from index.query import QueryHints, question_parts, read_hints, source_aliases, source_clauses, without_sources
from index.types import Article, Filters, Hit

_NEG = np.float32(-np.inf)


@dataclass(frozen=True)
class RetrievalSettings:
    """Knobs of the hybrid retriever; the defaults were tuned on MultiHop-RAG dev (benchmarks/tune_retrieval.py)."""

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
    keyword_title: bool = True  # index the article title with the chunk text for BM25
    stopwords: str = "en"
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
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
        self._matrix = _vector_matrix(snapshot.vectors, self._position)
        self._stemmer = _stemmer(settings.stemmer)
        self._bm25 = bm25s.BM25(k1=settings.bm25_k1, b=settings.bm25_b)
        if texts:
            self._bm25.index(self._tokenize(texts), show_progress=False)

    def with_settings(self, settings: RetrievalSettings) -> Retriever:
        """A Retriever over the same snapshot with other settings, sharing the BM25 index when it can."""
        keyword_index = ("keyword_title", "stopwords", "stemmer", "bm25_k1", "bm25_b")
        if any(getattr(settings, name) != getattr(self.settings, name) for name in keyword_index):
            return Retriever(self.snapshot, self.embedder, settings)
        clone = copy.copy(self)
        clone.settings = settings
        clone._embed_lock = threading.Lock()
        return clone

    # -- the two retrievers ------------------------------------------------------------------------

    def dense(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The k chunks nearest to the query's embedding (inner product of unit vectors)."""
        return self._hits(_top(self._dense_scores(self._embed(query)), k, self._mask(filters)))

    def keyword(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The k chunks with the highest BM25 score for the query (only chunks sharing a word with it)."""
        return self._hits(_top(self._keyword_scores(query), k, self._mask(filters), positive=True))

    def search(self, query: str, k: int = 10, filters: Filters | None = None, hints: QueryHints | None = None) -> list[Hit]:
        """Fused dense + BM25 hits, using the sources and dates the query names, at most `per_article` per article."""
        settings = self.settings
        mask = self._mask(filters)
        hints = read_hints(query, self.known_sources) if hints is None else hints
        dense = self._dense_scores(self._embed(query))
        keyword_query = without_sources(query, hints.sources) if settings.strip_sources else query
        keyword = self._keyword_scores(keyword_query)
        dated = self._date_mask(hints)
        depth = max(settings.depth, k)
        ranked = self._fused(dense, keyword, depth, mask, dated)
        if settings.per_source and hints.sources:
            # Multi-hop questions need an article from each outlet they name: search each one on its own
            # and take turns, so one outlet can't fill the list.
            per_source = []
            clauses = source_clauses(query, hints.sources) if settings.source_clauses else []
            for source, clause in clauses or [(source, query) for source in hints.sources]:
                source_mask = self._sources == source if mask is None else mask & (self._sources == source)
                if source_mask.any():
                    if settings.strip_sources:
                        clause = without_sources(clause, hints.sources)
                    clause_keyword = keyword if clause == keyword_query else self._keyword_scores(clause)
                    clause_dense = dense
                    if settings.clause_dense and clause != keyword_query:
                        clause_dense = self._dense_scores(self._embed(clause))
                    per_source.append(self._fused(clause_dense, clause_keyword, depth, source_mask, dated))
            ranked = interleave([*per_source, ranked] if settings.global_turn or not per_source else per_source)
        parts = question_parts(keyword_query) if settings.split_parts else []
        if parts:
            named = np.isin(self._sources, list(hints.sources)) if hints.sources else None
            part_mask = named if mask is None else (mask if named is None else mask & named)
            part_lists = [self._fused(dense, self._keyword_scores(part), depth, part_mask, dated) for part in parts]
            ranked = interleave([ranked, *part_lists])
        if settings.per_article > 0:
            ranked = diversify(ranked, self._article_of, settings.per_article, k)
        return self._hits(ranked[:k])

    # -- internals ---------------------------------------------------------------------------------

    def _fused(self, dense: np.ndarray, keyword: np.ndarray, depth: int, mask: np.ndarray | None, dated: np.ndarray | None) -> list[tuple[int, float]]:
        """The best `depth` dense and keyword candidates, fused, with the date hint's bonus added."""
        settings = self.settings
        lists = [_top(dense, depth, mask), _top(keyword, depth, mask, positive=True)]
        fused = fuse(lists, [settings.dense_weight, settings.keyword_weight], settings.method, settings.rrf_k)
        if dated is not None and settings.date_boost:
            bonus = settings.date_boost * (settings.dense_weight + settings.keyword_weight)
            if settings.method == "rrf":
                bonus /= settings.rrf_k + 1
            fused = boost(fused, lambda position: bonus if dated[position] else 0.0)
        return fused

    def _date_mask(self, hints: QueryHints) -> np.ndarray | None:
        """Chunks whose article falls in one of the question's date ranges; None when it names no date."""
        if not hints.dates:
            return None
        dated = np.zeros(len(self._dates), dtype=bool)
        for date_range in hints.dates:
            inside = self._dates != ""
            if date_range.start:
                inside &= self._dates >= date_range.start
            if date_range.end:
                inside &= self._dates <= date_range.end
            dated |= inside
        return dated

    def _embed(self, query: str) -> np.ndarray:
        """The query's unit vector; one embedding at a time."""
        with self._embed_lock:
            vector = self.embedder.embed([query])
        return np.asarray(vector[0], dtype=np.float32)

    def _dense_scores(self, vector: np.ndarray) -> np.ndarray:
        """Inner product of the query with every chunk vector, by chunk position."""
        if self._matrix.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        return self._matrix @ vector

    def _keyword_scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query, by chunk position (all 0 when no word is known)."""
        tokens = self._tokenize([query])[0] if len(self._ids) else []
        known = [token for token in tokens if token in self._bm25.vocab_dict]
        if not known:
            return np.zeros(len(self._ids), dtype=np.float32)
        return self._bm25.get_scores(known)

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

    def _article_of(self, position: int) -> str:
        return self.snapshot.chunks[position].article_id

    def _hits(self, ranked) -> list[Hit]:
        """Hits for (chunk position, score) pairs, with their article's metadata."""
        hits = []
        for position, score in ranked:
            chunk = self.snapshot.chunks[position]
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


def _top(scores: np.ndarray, k: int, mask: np.ndarray | None = None, positive: bool = False) -> list[tuple[int, float]]:
    """The k best (position, score) pairs, best first, among the masked positions (and scores > 0 if `positive`).

    >>> _top(np.array([0.1, 0.9, 0.0, 0.5]), 2)
    [(1, 0.9), (3, 0.5)]
    >>> _top(np.array([0.1, 0.9, 0.0, 0.5]), 5, np.array([True, False, True, False]), positive=True)
    [(0, 0.1)]
    """
    if mask is not None:
        scores = np.where(mask, scores, _NEG)
    count = min(k, len(scores))
    if count <= 0:
        return []
    top = np.argpartition(-scores, count - 1)[:count]
    top = top[np.argsort(-scores[top], kind="stable")]
    floor = 0.0 if positive else _NEG
    return [(int(p), float(scores[p])) for p in top if scores[p] > floor]


def _vector_matrix(vectors, position: dict[int, int]) -> np.ndarray:
    """The FAISS index's vectors as a (chunks, dim) matrix in chunk-position order.

    A flat inner-product index is read in place (no copy); one pass over it scores every chunk, so
    filtered and per-source rankings cost no extra search.
    """
    import faiss

    count = vectors.ntotal
    ids = faiss.vector_to_array(vectors.id_map) if hasattr(vectors, "id_map") else np.arange(count)
    inner = faiss.downcast_index(vectors.index) if hasattr(vectors, "index") else faiss.downcast_index(vectors)
    if count and hasattr(inner, "get_xb"):
        matrix = faiss.rev_swig_ptr(inner.get_xb(), count * vectors.d).reshape(count, vectors.d)
    else:
        matrix = vectors.reconstruct_n(0, count) if count else np.zeros((0, vectors.d), dtype=np.float32)
    order = np.array([position[int(chunk_id)] for chunk_id in ids], dtype=np.int64)
    if len(order) != len(position):
        raise ValueError(f"the index has {len(order)} vectors for {len(position)} chunks")
    return matrix if np.array_equal(order, np.arange(count)) else matrix[np.argsort(order)]


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
