"""Building a Milvus generation: rows are written under a new generation number, invisible to readers until
`commit` rewrites the one "live" record; then rows no reader can see any more are deleted.

A killed build leaves rows born after the live generation, and rows marked as dropped by it; the next
build deletes the first and revives the second before it starts (it holds the build lock).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from index.stores.base import Manifest
from index.stores.local import date_number
from index.stores.local_writer import COMMON_WORD
from index.stores.milvus import MilvusBackend
from index.stores.milvus_schema import (
    BATCH, DUMMY, LIVE, MAX_ID, MAX_WORD, TIMEOUT, Live, article_schema, chunk_schema, ensure_collection, fit, generation_name,
    meta_schema, quoted, source_records, sources_key, text_parts, visible, words_schema,
)
from index.types import Article, Chunk


class MilvusWriter:
    """Generation `live + 1` being written; `commit` publishes it, `abort` removes it."""

    def __init__(self, backend: MilvusBackend, full: bool, progress=None):
        self.backend, self.client = backend, backend.client
        self.progress = progress or (lambda stage, done, total: None)
        ensure_collection(self.client, backend.meta, meta_schema(self.client))
        ensure_collection(self.client, backend.articles, article_schema(self.client))
        ensure_collection(self.client, backend.words, words_schema(self.client))
        self._last_id = -1
        self._added_sources: set[str] = set()
        self._dropped_sources: set[str] = set()  # sources of dropped articles: still in the new generation?
        self.base = backend.live()
        base_generation = self.base.generation if self.base else 0
        self._forget_dead_builds(base_generation)
        self.generation = base_generation + 1
        self.floor = self.generation if full or self.base is None else self.base.floor
        self.collection = None if full or self.base is None else self.base.chunks
        self._base_visible = None if full or self.base is None else visible(self.base.generation, self.base.floor)

    def delete(self, article_ids: Iterable[str]) -> None:
        """Drop these articles: rows of the live generation are marked dropped by this one (upserted with
        `died`), rows this build added are deleted."""
        ids = list(dict.fromkeys(article_ids))
        collections = [self.backend.articles] + ([self.collection] if self.collection else [])
        for start in range(0, len(ids), BATCH):
            chosen = f"article_id in {quoted(ids[start : start + BATCH])}"
            for collection in collections:
                self.client.delete(collection, filter=f"{chosen} and born == {self.generation}", timeout=TIMEOUT)
                if self._base_visible:
                    self._mark(collection, f"{chosen} and {self._base_visible}", died=self.generation)

    def add(self, articles: Sequence[Article], hashes: dict[str, str], chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Insert whole articles (text in parts of 64 KB) and their chunks with vectors, under this generation."""
        vectors = np.asarray(vectors, dtype=np.float32)
        ids = [chunk.id for chunk in chunks]
        if len(vectors) != len(chunks) or (len(chunks) and vectors.ndim != 2):
            raise ValueError(f"{len(chunks)} chunks need {len(chunks)} vectors; got an array of shape {vectors.shape}")
        if ids and (ids != sorted(ids) or ids[0] <= self._last_id):
            raise ValueError("chunks must be added in ascending id order, after those already added")
        for article in articles:
            if len(article.id) > MAX_ID:
                raise ValueError(f"article id {article.id[:40]!r}... is longer than {MAX_ID} characters")
        if len(chunks):
            self._chunk_collection(vectors.shape[1])
            self._last_id = ids[-1]
        by_id = {article.id: article for article in articles}
        self._insert(self.backend.articles, [row for a in articles for row in self._article_rows(a, hashes[a.id])])
        self._insert(self.collection, [self._chunk_row(c, by_id[c.article_id], v) for c, v in zip(chunks, vectors)])
        self._add_words({w for a in articles for w in COMMON_WORD.findall(f"{a.title}\n{a.source}\n{a.text}") if len(w) <= MAX_WORD})
        self._added_sources |= {article.source for article in articles}

    def commit(self, manifest: Manifest) -> str:
        """Count what the generation holds, write its sources, switch the live record, then delete dead rows."""
        self.progress("writing", 0, 3)
        collection = self._chunk_collection(manifest.dim)
        now = visible(self.generation, self.floor)
        articles = self.backend.count(self.backend.articles, f"part == 0 and {now}")
        manifest = replace(
            manifest, article_count=articles, chunk_count=self.backend.count(collection, now),
            vector_index="flat" if self.backend.lite else "autoindex",
        )
        self._upsert(self.backend.meta, [
            dict(key=f"{sources_key(self.generation)}{n:06d}", value=json.dumps(part, ensure_ascii=False), v=DUMMY)
            for n, part in enumerate(source_records(sorted(self._sources(now))))
        ])
        self.progress("writing", 1, 3)
        live = Live(self.generation, self.floor, collection, json.loads(manifest.to_json()))
        self._upsert(self.backend.meta, [dict(key=LIVE, value=live.to_json(), v=DUMMY)])  # the one switch
        self.progress("writing", 2, 3)
        self._collect_garbage(collection)
        self.progress("writing", 3, 3)
        return generation_name(self.generation)

    def abort(self) -> None:
        """Delete what this build wrote and revive what it dropped; the live generation is untouched."""
        self._forget_dead_builds(self.generation - 1)

    # -- internals ---------------------------------------------------------------------------------

    def _chunk_collection(self, dim: int) -> str:
        """The chunk collection for this dimension, created if needed."""
        if self.collection is None:
            self.collection = f"{self.backend.prefix}_chunks_d{int(dim)}"
            ensure_collection(self.client, self.collection, chunk_schema(self.client, int(dim)), lite=self.backend.lite is not None)
        return self.collection

    def _article_rows(self, article: Article, content_hash: str) -> list[dict]:
        """An article's rows: one per 64 KB of text, the metadata on each."""
        meta = dict(
            article_id=article.id, title=fit(article.title), source=fit(article.source, 1024), url=fit(article.url),
            author=fit(article.author, 1024), published=fit(article.published, 64), path=fit(article.path),
            content_hash=content_hash, born=self.generation, died=0, v=DUMMY,
        )
        return [
            dict(meta, key=f"{article.id}\x1f{self.generation}\x1f{n:06d}", part=n, text=part)
            for n, part in enumerate(text_parts(article.text))
        ]

    def _chunk_row(self, chunk: Chunk, article: Article, vector: np.ndarray) -> dict:
        """A chunk's row; BM25 reads `keyword_text`, the title and the chunk's text (cut to 64 KB if longer)."""
        keyword_text = f"{article.title}\n{chunk.text}" if article.title else chunk.text
        fitted = fit(keyword_text)
        return dict(
            id=chunk.id, article_id=article.id, source=fit(article.source, 1024), published=fit(article.published, 64),
            day=date_number(article.published), start_at=chunk.start, end_at=chunk.end,
            text_at=len(keyword_text) - len(chunk.text) if fitted == keyword_text else -1,
            keyword_text=fitted, born=self.generation, died=0, dense=vector.tolist(),
        )

    def _add_words(self, words: set[str]) -> None:
        """Record the words this generation doesn't know yet (like the local store, a word stays when its article goes)."""
        words = sorted(words)
        known = f"born >= {self.floor} and born <= {self.generation}"
        for start in range(0, len(words), BATCH):
            part = words[start : start + BATCH]
            have = {row["word"] for row in self.backend.query(self.backend.words, f"word in {quoted(part)} and {known}", ["word"], limit=len(part))}
            self._insert(self.backend.words, [
                dict(key=f"{word}\x1f{self.generation}", word=word, born=self.generation, died=0, v=DUMMY) for word in part if word not in have
            ])

    def _sources(self, now: str) -> set[str]:
        """The new generation's sources: the kept ones, those added, and dropped ones some article still has."""
        kept = set(self.backend.sources(self.base.generation)) if self._base_visible else set()
        maybe_gone = kept & self._dropped_sources
        sources = (kept - maybe_gone) | self._added_sources
        for source in maybe_gone - sources:
            if self.backend.count(self.backend.articles, f"source == {quoted([source])[1:-1]} and part == 0 and {now}"):
                sources.add(source)
        return {source for source in sources if source}

    def _mark(self, collection: str, expression: str, died: int) -> None:
        """Rewrite the matching rows with `died` set (Milvus 2.5 upserts whole rows)."""
        rows = list(self.backend.scan(collection, _key(collection, self.backend), expression, ["*"]))
        for row in rows:
            row.pop("sparse", None)  # made by the BM25 function again
            row["died"] = died
            if collection == self.backend.articles:
                self._dropped_sources.add(row["source"])
        self._upsert(collection, rows)

    def _forget_dead_builds(self, live_generation: int) -> None:
        """Delete rows of builds after `live_generation`, and revive the rows they dropped."""
        for collection in self._row_collections():
            self.client.delete(collection, filter=f"born > {live_generation}", timeout=TIMEOUT)
            self._mark(collection, f"died > {live_generation}", died=0)
        self.client.delete(self.backend.meta, filter=f'key like "sources-%" and key >= "{sources_key(live_generation + 1)}"', timeout=TIMEOUT)

    def _collect_garbage(self, live_collection: str) -> None:
        """Delete rows neither the new nor the previous generation sees; drop unused chunk collections."""
        if self.base is None:
            return
        dead = f"(died != 0 and died <= {self.base.generation}) or born < {self.base.floor}"
        for collection in self._row_collections():
            self.client.delete(collection, filter=dead, timeout=TIMEOUT)
        self.client.delete(self.backend.meta, filter=f'key like "sources-%" and key < "{sources_key(self.base.generation)}"', timeout=TIMEOUT)
        for name in self._chunk_collections():
            if name not in (live_collection, self.base.chunks):
                self.client.drop_collection(name, timeout=TIMEOUT)

    def _row_collections(self) -> list[str]:
        return [self.backend.articles, self.backend.words, *self._chunk_collections()]

    def _chunk_collections(self) -> list[str]:
        prefix = f"{self.backend.prefix}_chunks_d"
        return [name for name in self.client.list_collections(timeout=TIMEOUT) if name.startswith(prefix)]

    def _insert(self, collection: str | None, rows: list[dict]) -> None:
        for start in range(0, len(rows), BATCH):
            self.client.insert(collection, rows[start : start + BATCH], timeout=TIMEOUT)

    def _upsert(self, collection: str, rows: list[dict]) -> None:
        for start in range(0, len(rows), BATCH):
            self.client.upsert(collection, rows[start : start + BATCH], timeout=TIMEOUT)


def _key(collection: str, backend: MilvusBackend) -> str:
    """The primary key field of one of the backend's collections."""
    return "id" if collection.startswith(f"{backend.prefix}_chunks_d") else "key"


