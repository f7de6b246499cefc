"""Building a local generation: start from a copy of the live one's database, delete and add articles,
then write the vectors, arrays and BM25 in a temporary folder and swap it in (index/stores/generations.py)."""

from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from index.stores.base import Manifest
from index.stores.generations import TMP_PREFIX, collect_garbage, current_generation, finish_folder, new_generation_name, publish
from index.stores.keyword import build_keyword_index
from index.stores.local import (
    CHUNK_DATES, CHUNK_IDS, CHUNK_SOURCES, KEYWORDS, MANIFEST, META, SOURCES, VECTORS, LocalStore, date_number, select_in,
)
from index.types import Article, Chunk

COMMON_WORD = re.compile(r"\b[a-z][a-z'’-]*\b")  # a word written in lower case (kept when its article goes)
FLAT_MAX = 20_000  # up to this many chunks a query scans every vector; above, an IVF index is built
TRAIN_SAMPLE = 64  # IVF training vectors per list
NEW_VECTORS = "new-vectors.f32"
SCHEMA = """
CREATE TABLE articles (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, title TEXT, source TEXT,
                       url TEXT, author TEXT, published TEXT, path TEXT, content_hash TEXT NOT NULL);
CREATE TABLE chunks (id INTEGER PRIMARY KEY, article INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL);
CREATE INDEX chunks_by_article ON chunks(article, start);
CREATE TABLE common_words (word TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE VIRTUAL TABLE mentions USING fts5(title, source, text, content='articles', content_rowid='n');
CREATE TRIGGER article_added AFTER INSERT ON articles BEGIN
    INSERT INTO mentions(rowid, title, source, text) VALUES (new.n, new.title, new.source, new.text);
END;
CREATE TRIGGER article_removed AFTER DELETE ON articles BEGIN
    INSERT INTO mentions(mentions, rowid, title, source, text) VALUES ('delete', old.n, old.title, old.source, old.text);
END;
"""


def vector_index_kind(count: int) -> str:
    """"flat" up to FLAT_MAX chunks, else "ivfN" with N about the square root of the count.

    >>> vector_index_kind(6807), vector_index_kind(1_000_000)
    ('flat', 'ivf1000')
    """
    return "flat" if count <= FLAT_MAX else f"ivf{int(math.sqrt(count))}"


class LocalWriter:
    """A generation being built in `.tmp-gen-N/`; `commit` renames it and swaps CURRENT, `abort` removes it."""

    def __init__(self, index_dir: Path, base: LocalStore | None, progress=None):
        self.index_dir = Path(index_dir)
        self._report = progress or (lambda stage, done, total: None)
        collect_garbage(self.index_dir, keep=None)  # folders of builds that were killed (we hold the lock)
        self.base = base
        self.name = new_generation_name(self.index_dir)
        self.tmp = self.index_dir / f"{TMP_PREFIX}{self.name}"
        self.tmp.mkdir()
        if base is not None:
            shutil.copyfile(base.path / META, self.tmp / META)
        self._db = sqlite3.connect(self.tmp / META)
        # No journal: a half-written database lives only in a temporary folder that is thrown away.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        if base is None:
            self._db.executescript(SCHEMA)
        self._new_vectors = open(self.tmp / NEW_VECTORS, "wb")
        self._new_ids: list[int] = []
        self._dim = base.manifest.dim if base is not None else None

    def delete(self, article_ids: Iterable[str]) -> None:
        """Drop these articles and their chunks (the FTS5 index follows through a trigger)."""
        ids = list(dict.fromkeys(article_ids))
        select_in(self._db, "DELETE FROM chunks WHERE article IN (SELECT n FROM articles WHERE id IN ({}))", ids)
        select_in(self._db, "DELETE FROM articles WHERE id IN ({})", ids)

    def add(self, articles: Sequence[Article], hashes: dict[str, str], chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add whole articles with their chunks; the vectors go to a file until `commit`."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(vectors) != len(chunks) or (self._dim is not None and len(chunks) and vectors.shape[1] != self._dim):
            raise ValueError(f"{len(chunks)} chunks need {len(chunks)} vectors of dim {self._dim}; got {vectors.shape}")
        ids = [chunk.id for chunk in chunks]
        last = self._new_ids[-1] if self._new_ids else -1
        if ids and (ids != sorted(ids) or ids[0] <= last):
            raise ValueError("chunks must be added in ascending id order, after those already added")
        if len(chunks):
            self._dim = vectors.shape[1]
        self._db.executemany(
            "INSERT INTO articles (id, text, title, source, url, author, published, path, content_hash) VALUES (?,?,?,?,?,?,?,?,?)",
            ((a.id, a.text, a.title, a.source, a.url, a.author, a.published, a.path, hashes[a.id]) for a in articles),
        )
        numbers = dict(select_in(self._db, "SELECT id, n FROM articles WHERE id IN ({})", list({c.article_id for c in chunks})))
        self._db.executemany(
            'INSERT INTO chunks (id, article, start, "end") VALUES (?,?,?,?)',
            ((c.id, numbers[c.article_id], c.start, c.end) for c in chunks),
        )
        words = {word for a in articles for word in COMMON_WORD.findall(f"{a.title}\n{a.source}\n{a.text}")}
        self._db.executemany("INSERT OR IGNORE INTO common_words VALUES (?)", ((word,) for word in words))
        self._new_vectors.write(vectors.tobytes())
        self._new_ids += ids

    def commit(self, manifest: Manifest) -> str:
        """Write vectors, arrays and BM25, rename the folder to its final name and make it the live generation."""
        import faiss

        self._report("writing", 0, 4)
        self._db.commit()
        rows = self._db.execute(
            'SELECT c.id, a.source, a.published FROM chunks c JOIN articles a ON a.n = c.article ORDER BY c.id'
        ).fetchall()
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        names = sorted({row[1] or "" for row in rows} | set(self._article_sources()))
        number = {name: i for i, name in enumerate(names)}
        np.save(self.tmp / CHUNK_IDS, ids)
        np.save(self.tmp / CHUNK_SOURCES, np.array([number[row[1] or ""] for row in rows], dtype=np.int32))
        np.save(self.tmp / CHUNK_DATES, np.array([date_number(row[2] or "") for row in rows], dtype=np.int32))
        (self.tmp / SOURCES).write_text(json.dumps(names, ensure_ascii=False), encoding="utf-8")
        del rows
        dim = self._dim or manifest.dim
        kind = vector_index_kind(len(ids))
        faiss.write_index(self._vector_index(self._vectors_in_order(ids, dim), kind), str(self.tmp / VECTORS))
        self._report("writing", 1, 4)
        build_keyword_index(self._keyword_texts(), self.tmp / KEYWORDS)
        (self.tmp / NEW_VECTORS).unlink()  # mapped pages stay readable until the index no longer needs them
        articles = self._db.execute("SELECT count(*) FROM articles").fetchone()[0]
        self._db.close()
        manifest = replace(manifest, article_count=articles, chunk_count=len(ids), vector_index=kind)
        (self.tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        self._report("writing", 2, 4)
        old = current_generation(self.index_dir)
        finish_folder(self.tmp, self.index_dir / self.name, lambda: self._report("writing", 3, 4))
        self._report("writing", 4, 4)
        publish(self.index_dir, self.name)
        # Keep the previous generation: a reader may have read CURRENT just before the swap.
        collect_garbage(self.index_dir, keep=[self.name, old])
        return self.name

    def abort(self) -> None:
        """Remove the temporary folder; the live generation is untouched."""
        self._new_vectors.close()
        self._db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------------------

    def _vectors_in_order(self, ids: np.ndarray, dim: int) -> np.ndarray:
        """Every live chunk's vector by position: kept ones from the base generation, then the added ones."""
        self._new_vectors.close()
        new_ids = np.array(self._new_ids, dtype=np.int64)
        added = np.memmap(self.tmp / NEW_VECTORS, dtype=np.float32, mode="r", shape=(len(new_ids), dim)) if len(new_ids) else np.zeros((0, dim), np.float32)
        if np.array_equal(ids, new_ids):
            return added  # a full build: every vector is new and already in order
        is_new = np.isin(ids, new_ids)
        matrix = np.empty((len(ids), dim), dtype=np.float32)
        matrix[is_new] = added[np.searchsorted(new_ids, ids[is_new])]
        kept = ids[~is_new]
        if len(kept):
            positions = np.searchsorted(self.base.chunk_ids, kept)
            matrix[~is_new] = self.base.vectors_at(positions)
        return matrix

    @staticmethod
    def _vector_index(matrix: np.ndarray, kind: str):
        """A FAISS inner-product index over the matrix; ids are row positions."""
        import faiss

        dim = matrix.shape[1]
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            lists = int(kind.removeprefix("ivf"))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).choice(len(matrix), min(len(matrix), lists * TRAIN_SAMPLE), replace=False)
            index.train(matrix[np.sort(sample)])
        index.add(matrix)
        if kind != "flat":
            index.make_direct_map(True)  # so a later build can read the vectors back
        return index

    def _keyword_texts(self):
        """Each chunk's BM25 text (title and chunk text), in position order, streamed from SQLite."""
        cursor = self._db.execute(
            'SELECT a.title, substr(a.text, c.start + 1, c."end" - c.start) FROM chunks c '
            "JOIN articles a ON a.n = c.article ORDER BY c.id"
        )
        for title, text in cursor:
            yield f"{title}\n{text}" if title else text

    def _article_sources(self) -> list[str]:
        return [row[0] or "" for row in self._db.execute("SELECT DISTINCT source FROM articles")]

