"""Building a Milvus generation: rows are written under a new generation number, invisible to readers until
`commit` inserts its "live" record; then rows no reader can see any more are deleted.

The build never changes or deletes a row a reader of the live generation sees: it lists the articles it drops
or replaces (`dropped-G-n` records, written before the switch), and generation G's filter leaves their rows
born before G out (milvus_schema.visible). After the switch, rows dropped by the previous build (out of both
the new and the previous generation) are deleted, then their list; a build killed during that is finished
by the next, since the lists stay until their rows are gone. A killed or aborted build leaves only rows and
records of generations after the live one, which no reader looks at; the next build deletes them first.
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
    BATCH, DUMMY, LAYOUT, MAX_ID, MAX_WORD, TIMEOUT, Live, article_schema, chunk_schema, ensure_collection, fit, generation_name,
    json_records, meta_schema, quoted, record_key, text_parts, visible, words_schema,
)
from index.types import Article, Chunk


class MilvusWriter:
    """Generation `live + 1` being written; `commit` publishes it, `abort` removes it."""

    def __init__(self, backend: MilvusBackend, full: bool, progress=None):
        self.backend, self.client = backend, backend.client
        self.progress = progress or (lambda stage, done, total: None)
        self.base = backend.live()
        if self.base is not None and self.base.layout != LAYOUT:
            self._drop_collections()  # an older Byline's index, which open() refuses: this build replaces it
            self.base = None
        ensure_collection(self.client, backend.meta, meta_schema(self.client))
        ensure_collection(self.client, backend.articles, article_schema(self.client))
        ensure_collection(self.client, backend.words, words_schema(self.client))
        self._last_id = -1
        self._added_sources: set[str] = set()
        self._dropped: dict[str, None] = {}  # articles of the live generation this build drops or replaces, in order
        self._dropped_sources: set[str] = set()  # their sources: still in the new generation?
        base_generation = self.base.generation if self.base else 0
        self._forget_dead_builds(base_generation)
        self.generation = base_generation + 1
        incremental = not full and self.base is not None
        self.floor = self.base.floor if incremental else self.generation
        self.collection = self.base.chunks if incremental else None
        # The drop lists since the floor whose rows may still be there (usually just the live generation's).
        self._base_dropped = backend.dropped(after=self.base.floor, upto=self.base.generation) if incremental else {}
        self._base_visible = visible(self.base.generation, self.base.floor, self._base_dropped) if incremental else None

    def delete(self, article_ids: Iterable[str]) -> None:
        """Drop these articles: those of the live generation are listed as dropped by this one (their rows stay
        for its readers), rows this build added are deleted."""
        ids = list(dict.fromkeys(article_ids))
        collections = [self.backend.articles] + ([self.collection] if self.collection else [])
        for start in range(0, len(ids), BATCH):
            part = ids[start : start + BATCH]
            chosen = f"article_id in {quoted(part)}"
            for collection in collections:
                self.client.delete(collection, filter=f"{chosen} and born == {self.generation}", timeout=TIMEOUT)
            if self._base_visible:
                live_rows = f"{chosen} and part == 0 and {self._base_visible}"
                for row in self.backend.query(self.backend.articles, live_rows, ["article_id", "source"], limit=len(part)):
                    self._dropped[row["article_id"]] = None
                    self._dropped_sources.add(row["source"])

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
        """Count what the generation holds, write its sources and drops, insert its live record, then delete dead rows."""
        self.progress("writing", 0, 3)
        collection = self._chunk_collection(manifest.dim)
        dropped = {**self._base_dropped, self.generation: list(self._dropped)}
        now = visible(self.generation, self.floor, dropped)
        articles = self.backend.count(self.backend.articles, f"part == 0 and {now}")
        manifest = replace(
            manifest, article_count=articles, chunk_count=self.backend.count(collection, now),
            vector_index="flat" if self.backend.lite else "autoindex",
        )
        self._insert(self.backend.meta, self._records("sources", sorted(self._sources(now))))
        if self._dropped:
            self._insert(self.backend.meta, self._records("dropped", list(self._dropped)))
        self.progress("writing", 1, 3)
        live = Live(self.generation, self.floor, collection, json.loads(manifest.to_json()))
        # The one switch: a new record, so a reader finds either this one or the previous one as the newest.
        self._insert(self.backend.meta, [dict(key=record_key("live", self.generation), value=live.to_json(), v=DUMMY)])
        self.progress("writing", 2, 3)
        self._collect_garbage(collection)
        self.progress("writing", 3, 3)
        return generation_name(self.generation)

    def abort(self) -> None:
        """Delete what this build wrote, unless `commit` got as far as publishing it (then the next build finishes
        the clean-up); the live generation is untouched either way."""
        live = self.backend.live()
        self._forget_dead_builds(live.generation if live else 0)

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
            content_hash=content_hash, born=self.generation, v=DUMMY,
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
            keyword_text=fitted, born=self.generation, dense=vector.tolist(),
        )

    def _add_words(self, words: set[str]) -> None:
        """Record the words this generation doesn't know yet (like the local store, a word stays when its article goes)."""
        words = sorted(words)
        known = visible(self.generation, self.floor)
        for start in range(0, len(words), BATCH):
            part = words[start : start + BATCH]
            have = {row["word"] for row in self.backend.query(self.backend.words, f"word in {quoted(part)} and {known}", ["word"], limit=len(part))}
            self._insert(self.backend.words, [
                dict(key=f"{word}\x1f{self.generation}", word=word, born=self.generation, v=DUMMY) for word in part if word not in have
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

    def _records(self, kind: str, values: list[str]) -> list[dict]:
        """Meta records of this generation holding `values` as JSON lists, each within a record's 64 KB."""
        return [
            dict(key=f"{record_key(kind, self.generation)}{n:06d}", value=json.dumps(part, ensure_ascii=False), v=DUMMY)
            for n, part in enumerate(json_records(values))
        ]

    def _forget_dead_builds(self, live_generation: int) -> None:
        """Delete the rows and records of builds after `live_generation` (none of them was published)."""
        for collection in self._row_collections():
            self.client.delete(collection, filter=f"born > {live_generation}", timeout=TIMEOUT)
        for kind in ("sources", "dropped"):
            self._delete_records(kind, f'key >= "{record_key(kind, live_generation + 1)}"')

    def _collect_garbage(self, live_collection: str) -> None:
        """Delete rows neither the new nor the previous generation sees, then records no reader needs any more;
        drop unused chunk collections. Run again by the next build if it is cut short."""
        if self.base is None:
            return
        for build, ids in self.backend.dropped(after=0, upto=self.base.generation).items():
            for start in range(0, len(ids), BATCH):
                gone = f"born < {build} and article_id in {quoted(ids[start : start + BATCH])}"
                for collection in [self.backend.articles, *self._chunk_collections()]:
                    self.client.delete(collection, filter=gone, timeout=TIMEOUT)
        for collection in self._row_collections():
            self.client.delete(collection, filter=f"born < {self.base.floor}", timeout=TIMEOUT)
        self._delete_records("dropped", f'key < "{record_key("dropped", self.base.generation + 1)}"')  # their rows are gone
        self._delete_records("sources", f'key < "{record_key("sources", self.base.generation)}"')
        self._delete_records("live", f'key < "{record_key("live", self.base.generation)}"')
        for name in self._chunk_collections():
            if name not in (live_collection, self.base.chunks):
                self.client.drop_collection(name, timeout=TIMEOUT)

    def _drop_collections(self) -> None:
        """Drop every collection of this index (to replace an index of another layout)."""
        for name in [self.backend.meta, *self._row_collections()]:
            if self.client.has_collection(name, timeout=TIMEOUT):
                self.client.drop_collection(name, timeout=TIMEOUT)

    def _delete_records(self, kind: str, expression: str) -> None:
        self.client.delete(self.backend.meta, filter=f'key like "{kind}%" and {expression}', timeout=TIMEOUT)

    def _row_collections(self) -> list[str]:
        return [self.backend.articles, self.backend.words, *self._chunk_collections()]

    def _chunk_collections(self) -> list[str]:
        prefix = f"{self.backend.prefix}_chunks_d"
        return [name for name in self.client.list_collections(timeout=TIMEOUT) if name.startswith(prefix)]

    def _insert(self, collection: str | None, rows: list[dict]) -> None:
        for start in range(0, len(rows), BATCH):
            self.client.insert(collection, rows[start : start + BATCH], timeout=TIMEOUT)
