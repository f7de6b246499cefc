"""The local store (the default): one immutable generation folder per build, opened memory-mapped.

A generation folder holds::

    manifest.json        format version, model, dimension, chunk settings, counts, vector index kind
    vectors.faiss        IndexFlatIP up to FLAT_MAX chunks, else IndexIVFFlat; FAISS ids are chunk positions
    chunk_ids.npy        position -> chunk id (ascending), with chunk_sources.npy (source number) and
    chunk_dates.npy      the article's date as YYYYMMDD (0: undated): the arrays filters are evaluated on
    sources.json         source number -> name
    bm25/                the BM25 index in bm25s' format (index/stores/keyword.py)
    meta.sqlite          articles, chunk offsets, and an FTS5 index of the articles for `mentions`

Opening one reads the manifest and maps the files; nothing is held per chunk in Python. Chunk text and
article metadata are read from SQLite for the hits only. Builds are in index/stores/local_writer.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Container, Iterable, Sequence
from pathlib import Path

import numpy as np

from index.chunking import ChunkSettings
from index.errors import IndexMismatch, IndexNotBuilt
from index.locking import build_lock
from index.stores.base import ChunkRef, Manifest, check_manifest, one_article
from index.stores.generations import current_generation
from index.stores.keyword import KeywordIndex
from index.types import Article, Chunk, Filters

MANIFEST, VECTORS, META, KEYWORDS, SOURCES = "manifest.json", "vectors.faiss", "meta.sqlite", "bm25", "sources.json"
CHUNK_IDS, CHUNK_SOURCES, CHUNK_DATES = "chunk_ids.npy", "chunk_sources.npy", "chunk_dates.npy"
NPROBE = 16  # IVF lists searched per query (of about the square root of the chunk count)
SQL_BATCH = 900  # ids per IN (...) clause, under SQLite's variable limit
MASKS_KEPT = 32  # filter masks kept per store version (a bit per chunk each)
_ARTICLE_COLUMNS = "a.id, a.text, a.title, a.source, a.url, a.author, a.published, a.path"
_OPENING = threading.Lock()


def rebuild_hint(index_dir: Path) -> str:
    """What to run when an index can't be used."""
    return f"Rebuild it: byline index --full --index-dir {index_dir}"


def read_manifest(generation_path: Path) -> Manifest:
    """The manifest of one generation folder (FileNotFoundError if it has none)."""
    where = generation_path / MANIFEST
    return Manifest.from_json(where.read_text(encoding="utf-8"), str(generation_path.parent), rebuild_hint(generation_path.parent))


class LocalBackend:
    """An index directory of generation folders (index/stores/generations.py)."""

    name = "local"

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.where = str(self.index_dir)

    def version(self) -> str | None:
        """The live generation's name (one small file read), None before the first build."""
        return current_generation(self.index_dir)

    def open(self, *, embedding_model: str | None = None, dim: int | None = None, chunk: ChunkSettings | None = None) -> LocalStore:
        """Open the live generation, checking its manifest; retried if a build swaps it meanwhile."""
        for _attempt in range(3):
            generation = self.version()
            if generation is None:
                raise IndexNotBuilt(
                    f"no index in {self.index_dir} yet. Build one: byline index CORPUS_DIR --index-dir {self.index_dir}"
                )
            try:
                manifest = read_manifest(self.index_dir / generation)
                check_manifest(manifest, self.where, rebuild_hint(self.index_dir), embedding_model=embedding_model, dim=dim, chunk=chunk)
                return LocalStore(self.index_dir / generation, manifest)
            except FileNotFoundError:
                if self.version() == generation:  # not a swap: the generation is really broken
                    raise IndexNotBuilt(
                        f"index at {self.index_dir} names generation {generation}, which is missing or incomplete. "
                        f"{rebuild_hint(self.index_dir)}"
                    ) from None
        raise IndexNotBuilt(f"index at {self.index_dir} kept changing while loading; try again")

    def begin_build(self, full: bool = False, progress=None):
        """A writer for a new generation, starting from the live one unless `full`. Call under `lock()`."""
        from index.stores.local_writer import LocalWriter

        base = None
        if not full:
            try:
                base = self.open()
            except (IndexNotBuilt, IndexMismatch):
                base = None
        return LocalWriter(self.index_dir, base, progress)

    def lock(self, wait: bool = False):
        """The directory's build lock (index/locking.py)."""
        return build_lock(self.index_dir, wait=wait)


class LocalStore:
    """One generation, memory-mapped. Thread-safe; the last query's candidates are reused per thread."""

    def __init__(self, path: Path, manifest: Manifest):
        import faiss

        self.path, self.manifest, self.version = path, manifest, path.name
        for name in (VECTORS, META, CHUNK_IDS, KEYWORDS):
            if not (path / name).exists():
                raise FileNotFoundError(path / name)
        flat = manifest.vector_index == "flat"
        self.vectors = faiss.read_index(str(path / VECTORS), faiss.IO_FLAG_MMAP_IFC if flat else faiss.IO_FLAG_MMAP)
        # np.load parses .npy headers with ast, which CPython 3.11 can't run in two threads at once
        # ("AST constructor recursion depth mismatch"): stores are opened one at a time.
        with _OPENING:
            # Plain ndarray views of the mapped files (np.memmap's per-item overhead is not wanted on the hot path).
            self.chunk_ids = np.asarray(np.load(path / CHUNK_IDS, mmap_mode="r"))
            self.chunk_sources = np.asarray(np.load(path / CHUNK_SOURCES, mmap_mode="r"))
            self.chunk_dates = np.asarray(np.load(path / CHUNK_DATES, mmap_mode="r"))
            self.keywords = KeywordIndex(path / KEYWORDS)
        self.source_names: list[str] = json.loads((path / SOURCES).read_text(encoding="utf-8"))
        count = len(self.chunk_ids)
        if self.vectors.ntotal != count or self.keywords.count != count or count != manifest.chunk_count or self.vectors.d != manifest.dim:
            raise IndexMismatch(
                f"index at {path.parent} is inconsistent ({self.vectors.ntotal} vectors of dim {self.vectors.d}, "
                f"{count} chunks, {self.keywords.count} in BM25; the manifest says {manifest.chunk_count} of dim "
                f"{manifest.dim}). {rebuild_hint(path.parent)}"
            )
        self._matrix = _flat_matrix(self.vectors) if flat else None
        if not flat:
            faiss.extract_index_ivf(self.vectors).nprobe = NPROBE
        self._db = sqlite3.connect(f"{(path / META).absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        self._db_lock = threading.Lock()
        self._last = threading.local()
        self._masks: dict[Filters, np.ndarray] = {}  # the last few filters' masks (per-source searches repeat them)
        self._masks_lock = threading.Lock()

    # -- searching ---------------------------------------------------------------------------------

    def dense(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """The k chunks nearest to the unit vector among those the filters allow."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        positions, scores = self._memo("dense", vector.tobytes(), lambda: self._dense_candidates(vector))
        return self._ids(_top(positions, scores, k, self._mask(filters)))

    def keyword(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """The k chunks with the highest BM25 score among those the filters allow (score > 0)."""
        positions, scores = self._memo("keyword", query, lambda: self._keyword_candidates(query))
        return self._ids(_top(positions, scores, k, self._mask(filters)))

    def vectors_at(self, positions: np.ndarray) -> np.ndarray:
        """The stored vectors of these chunk positions (for a build that keeps them)."""
        if self._matrix is not None:
            return np.array(self._matrix[positions], dtype=np.float32)
        out = np.empty((len(positions), self.manifest.dim), dtype=np.float32)
        for start in range(0, len(positions), 65_536):
            part = np.ascontiguousarray(positions[start : start + 65_536], dtype=np.int64)
            out[start : start + len(part)] = self.vectors.reconstruct_batch(part)
        return out

    # -- reading -----------------------------------------------------------------------------------

    def refs(self, ids: Sequence[int]) -> dict[int, ChunkRef]:
        """Article id, source and date of each known chunk id."""
        sql = "SELECT c.id, a.id, a.source, a.published FROM chunks c JOIN articles a ON a.n = c.article WHERE c.id IN ({})"
        return {row[0]: ChunkRef(*row) for row in self._select_in(sql, [int(i) for i in ids])}

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, text cut from the article in SQL, in the order asked."""
        sql = (
            'SELECT c.id, a.id, c.start, c."end", substr(a.text, c.start + 1, c."end" - c.start) '
            "FROM chunks c JOIN articles a ON a.n = c.article WHERE c.id IN ({})"
        )
        found = {row[0]: Chunk(*row) for row in self._select_in(sql, [int(i) for i in ids])}
        return [found[int(i)] for i in ids if int(i) in found]

    def articles(self, ids: Iterable[str]) -> dict[str, Article]:
        """The known articles among these ids."""
        rows = self._select_in(f"SELECT {_ARTICLE_COLUMNS} FROM articles a WHERE a.id IN ({{}})", list(dict.fromkeys(ids)))
        return {row[0]: Article(*row) for row in rows}

    def article(self, article_id: str) -> Article:
        """One article; ArticleNotFound if this generation has none with that id."""
        return one_article(self, article_id)

    def list_articles(self, offset: int = 0, limit: int = 50, query: str = "") -> tuple[list[Article], int]:
        """A page of articles ordered by title (any case) then path; with `query`, those whose title or path holds it."""
        where, args = ("WHERE instr(lower(a.title), lower(?1)) > 0 OR instr(lower(a.path), lower(?1)) > 0", [query]) if query else ("", [])
        with self._db_lock:
            total = self._db.execute(f"SELECT count(*) FROM articles a {where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {_ARTICLE_COLUMNS} FROM articles a {where} ORDER BY lower(a.title), a.path LIMIT {int(limit)} OFFSET {int(offset)}", args
            ).fetchall()
        return [Article(*row) for row in rows], total

    def counts(self) -> tuple[int, int]:
        """Articles and chunks in this generation."""
        return self.manifest.article_count, self.manifest.chunk_count

    def sources(self) -> list[str]:
        """The distinct non-empty article sources, sorted."""
        return sorted(name for name in self.source_names if name)

    def mentions(self, name: str) -> bool:
        """Whether some article's title, source or text holds the name as a phrase (FTS5, any case)."""
        if not any(character.isalnum() for character in name):
            return True  # nothing to look for
        phrase = '"' + name.replace('"', '""') + '"'
        with self._db_lock:
            return self._db.execute("SELECT 1 FROM mentions WHERE mentions MATCH ? LIMIT 1", [phrase]).fetchone() is not None

    def common_words(self) -> Container[str]:
        """The words some article writes in lower case, looked up in SQLite one by one."""
        return _CommonWords(self)

    def content_hashes(self) -> dict[str, str]:
        """Article id -> content hash."""
        with self._db_lock:
            return dict(self._db.execute("SELECT id, content_hash FROM articles"))

    def close(self) -> None:
        """Close the database; the mapped files go when the last reference does."""
        with self._db_lock:
            self._db.close()

    # -- internals ---------------------------------------------------------------------------------

    def _mask(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean mask over chunk positions allowed by the filters (exact source names); None: all."""
        if filters is None or (filters.after is None and filters.before is None and not filters.sources):
            return None
        with self._masks_lock:
            mask = self._masks.get(filters)
        if mask is None:
            mask = self._compute_mask(filters)
            with self._masks_lock:
                if len(self._masks) >= MASKS_KEPT:
                    self._masks.pop(next(iter(self._masks)))
                self._masks[filters] = mask
        return mask

    def _compute_mask(self, filters: Filters) -> np.ndarray:
        mask = np.ones(len(self.chunk_ids), dtype=bool)
        if filters.after:
            mask &= self.chunk_dates >= date_number(filters.after)
        if filters.before:
            mask &= (self.chunk_dates <= date_number(filters.before)) & (self.chunk_dates > 0)
        if filters.sources:
            wanted = [number for number, name in enumerate(self.source_names) if name in set(filters.sources)]
            mask &= np.isin(self.chunk_sources, wanted)
        return mask

    def _dense_candidates(self, vector: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Scores of every chunk (flat: positions None), or of the chunks in the IVF lists nearest the query."""
        if self._matrix is not None:
            return None, _inner_products(self._matrix, vector)
        return _ivf_candidates(self.vectors, vector)

    def _keyword_candidates(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Positions and BM25 scores of the chunks that share a word with the query."""
        scores = self.keywords.scores(query)
        if scores is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        positions = np.flatnonzero(scores)
        return positions, scores[positions]

    def _memo(self, kind: str, key, compute):
        """The candidates of the last query of this kind on this thread (filtered searches reuse them), or fresh ones."""
        last = getattr(self._last, kind, None)
        if last is not None and last[0] == key:
            return last[1]
        scores = compute()
        setattr(self._last, kind, (key, scores))
        return scores

    def _ids(self, ranked: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """(position, score) pairs as (chunk id, score)."""
        ids = self.chunk_ids[[position for position, _ in ranked]].tolist()
        return [(chunk_id, score) for chunk_id, (_, score) in zip(ids, ranked)]

    def _select_in(self, sql: str, values: list) -> list[tuple]:
        with self._db_lock:
            return select_in(self._db, sql, values)


class _CommonWords:
    """`word in words` asked of a store's common_words table."""

    def __init__(self, store: LocalStore):
        self._store = store

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        with self._store._db_lock:
            return self._store._db.execute("SELECT 1 FROM common_words WHERE word = ?", [word]).fetchone() is not None


def select_in(db: sqlite3.Connection, sql: str, values: list) -> list[tuple]:
    """Rows of `sql` with its `IN ({})` filled by `values`, in batches under SQLite's variable limit."""
    rows = []
    for start in range(0, len(values), SQL_BATCH):
        part = values[start : start + SQL_BATCH]
        rows += db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
    return rows


def date_number(published: str) -> int:
    """An ISO date (or datetime) as YYYYMMDD, 0 when it isn't one.

    >>> date_number("2023-10-05T12:00:00+00:00"), date_number(""), date_number("October 5")
    (20231005, 0, 0)
    """
    day = published[:10]
    if len(day) == 10 and day[4] == day[7] == "-" and (digits := day.replace("-", "")).isdigit():
        return int(digits)
    return 0


def _top(positions: np.ndarray | None, scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
    """The k best (position, score) candidates, best first, among those the mask allows (positions None: all).

    >>> _top(None, np.array([0.1, 0.9, 0.0, 0.5]), 2)
    [(1, 0.9), (3, 0.5)]
    >>> _top(np.array([4, 7]), np.array([0.3, 0.6]), 5, np.array([0, 0, 0, 0, 1, 0, 0, 0], dtype=bool))
    [(4, 0.3)]
    """
    if mask is not None:
        keep = mask if positions is None else mask[positions]
        positions = np.flatnonzero(keep) if positions is None else positions[keep]
        scores = scores[keep]
    count = min(k, len(scores))
    if count <= 0:
        return []
    top = np.argpartition(-scores, count - 1)[:count]
    top = top[np.argsort(-scores[top], kind="stable")]
    chosen = top if positions is None else positions[top]
    return [(int(p), float(v)) for p, v in zip(chosen, scores[top])]


def _ivf_candidates(index, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions and inner products of every vector in the `nprobe` IVF lists nearest the query (read in place)."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    _, lists = ivf.quantizer.search(vector.reshape(1, -1), ivf.nprobe)
    invlists = ivf.invlists
    positions, scores = [], []
    for number in (int(n) for n in lists[0] if n >= 0):
        size = invlists.list_size(number)
        if not size:
            continue
        codes, ids = invlists.get_codes(number), invlists.get_ids(number)
        try:
            matrix = faiss.rev_swig_ptr(codes, size * ivf.code_size).view(np.float32).reshape(size, ivf.d)
            scores.append(_inner_products(matrix, vector))
            positions.append(faiss.rev_swig_ptr(ids, size).copy())
        finally:
            invlists.release_codes(number, codes)
            invlists.release_ids(number, ids)
    if not positions:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return np.concatenate(positions), np.concatenate(scores)


def _inner_products(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector with FAISS' SIMD kernel: one pass over the mapped vectors, no BLAS threads to wake.

    >>> _inner_products(np.eye(3, dtype=np.float32), np.array([1, 2, 3], dtype=np.float32)).tolist()
    [1.0, 2.0, 3.0]
    """
    import faiss

    scores = np.empty(len(matrix), dtype=np.float32)
    if len(matrix):
        vector = np.ascontiguousarray(vector, dtype=np.float32)
        faiss.fvec_inner_products_ny(faiss.swig_ptr(scores), faiss.swig_ptr(vector), faiss.swig_ptr(matrix), matrix.shape[1], len(matrix))
    return scores


def _flat_matrix(vectors) -> np.ndarray:
    """A memory-mapped flat index's vectors as a (chunks, dim) array, without copying."""
    import faiss

    count, dim = vectors.ntotal, vectors.d
    if count == 0:
        return np.zeros((0, dim), dtype=np.float32)
    return faiss.rev_swig_ptr(faiss.downcast_index(vectors).get_xb(), count * dim).reshape(count, dim)
