"""The Milvus store: the index in a Milvus collection, searched inside the engine (BYLINE_STORE=milvus).

`BYLINE_MILVUS_URI` is a local file ending in `.db` (Milvus Lite, the engine embedded in the `milvus-lite`
package; one process per file) or `http://host:19530` (a Milvus standalone or cluster). The same code serves
both. Three collections, named after `BYLINE_MILVUS_COLLECTION`::

    byline_chunks_d384   one row per chunk: dense vector, a BM25 sparse vector that Milvus' BM25 function makes
                         from `keyword_text` (title + chunk text), article id, source, date, offsets
    byline_articles      the articles' text (in parts of at most 64 KB) and metadata, with their content hash
    byline_meta          a "live" record per published generation (manifest, floor), its sources, its drops

Every row carries the generation that wrote it (`born`) and is never changed while a reader may see it. A
build writes under a new generation, lists the articles it drops or replaces, and publishes the generation by
inserting its "live" record; readers take the newest one and filter every search and query on their
generation (`visible()`), so they see the previous version whole until then, and keep seeing it while the
build collects rows only older generations saw. A build killed half-way changes nothing they see, and the next
build removes what it left. The layout is in index/stores/milvus_schema.py, builds in index/stores/milvus_writer.py.
"""

from __future__ import annotations

import json
import os
import re
import threading
import warnings
from collections.abc import Container, Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from platformdirs import user_data_dir

from index.chunking import ChunkSettings
from index.errors import BylineError, IndexMismatch, IndexNotBuilt, StoreUnavailable
from index.locking import build_lock
from index.stores.base import ChunkRef, Manifest, check_manifest, one_article
from index.stores.milvus_schema import (
    BATCH, LAYOUT, MAX_HITS, MAX_WORD, TIMEOUT, Live, assemble_articles, filter_expression, generation_name, quoted,
    record_generation, record_key, visible,
)
from index.types import Article, Chunk, Filters

MENTION_DEPTH = 100  # BM25 hits checked for the exact phrase by `mentions`
LOAD_TIMEOUT = 3600.0  # seconds to load a collection into memory (Milvus Lite reads it all at start)
_CHUNK_FIELDS = ["id", "article_id", "source", "published", "start_at", "end_at", "text_at", "keyword_text"]
_ARTICLE_FIELDS = ["article_id", "part", "text", "title", "source", "url", "author", "published", "path"]
_LITE_NAME = re.compile(r"^[a-zA-Z0-9.\-_]{1,36}$")


def lite_path(uri: str) -> Path | None:
    """The Milvus Lite file a URI names, or None for a server URI; ValueError for a file Milvus Lite can't use.

    >>> lite_path("http://milvus:19530") is None, lite_path("/data/byline.db")
    (True, PosixPath('/data/byline.db'))
    """
    if urlparse(uri).scheme.lower() in ("http", "https", "tcp", "grpc", "unix"):
        return None
    path = Path(uri).expanduser()
    if path.suffix != ".db" or not _LITE_NAME.match(path.name):
        raise ValueError(
            f"{uri!r} is neither a Milvus URI (http://host:19530) nor a Milvus Lite file: a Lite file name ends "
            "in .db and has at most 36 letters, digits, dots, dashes or underscores"
        )
    return path


def words(text: str) -> list[str]:
    """Lower-cased words of a text, as FTS5's default tokenizer splits them.

    >>> words("Sam Bankman-Fried's trial")
    ['sam', 'bankman', 'fried', 's', 'trial']
    """
    return re.findall(r"[^\W_]+", text.lower())


def holds_phrase(text: str, name: str) -> bool:
    """Whether the words of `name` appear in `text` one after another (any case, punctuation ignored).

    >>> holds_phrase("Mr. Bankman-Fried, the founder", "bankman fried"), holds_phrase("Fried bankman", "Bankman-Fried")
    (True, False)
    """
    wanted, have = words(name), words(text)
    return bool(wanted) and any(have[i : i + len(wanted)] == wanted for i in range(len(have) - len(wanted) + 1))


class MilvusBackend:
    """A Milvus (or Milvus Lite) database holding one Byline index under a collection prefix."""

    name = "milvus"

    def __init__(self, uri: str, collection: str = "byline", lock_dir: Path | None = None):
        try:
            self.lite = lite_path(uri)
        except ValueError as error:
            raise StoreUnavailable(f"BYLINE_MILVUS_URI: {error}") from None
        self.uri, self.prefix = uri, collection
        self.where = f"{uri} (collection {collection})"
        self.meta, self.articles, self.words = f"{collection}_meta", f"{collection}_articles", f"{collection}_words"
        # Builds of a Milvus Lite file lock a folder beside it; builds against a server lock on this machine.
        default_lock = Path(user_data_dir("byline")) / "milvus-build-lock"
        self.lock_dir = self.lite.parent / f".{self.lite.name}.build" if self.lite else Path(lock_dir or default_lock)
        self._client = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> MilvusBackend:
        """The backend BYLINE_MILVUS_URI and BYLINE_MILVUS_COLLECTION name."""
        return cls(settings.milvus_uri, settings.milvus_collection, Path(settings.index_dir) / "milvus-build-lock")

    @property
    def client(self) -> MilvusCalls:
        """The pymilvus client, connected on first use (Milvus Lite starts its engine then)."""
        with self._client_lock:
            if self._client is None:
                self._client = MilvusCalls(connect(self.uri, self.lite), self.where)
            return self._client

    def rebuild_hint(self) -> str:
        """What to run when the index can't be used."""
        return f"Rebuild it: BYLINE_STORE=milvus BYLINE_MILVUS_URI={self.uri} byline index --full"

    def live(self) -> Live | None:
        """The newest live record (one small query), None before the first build."""
        if not self.client.has_collection(self.meta, timeout=TIMEOUT):
            return None
        rows = self.query(self.meta, 'key like "live%"', ["key", "value"])  # layout 1 had one record, "live"
        return Live.from_json(max(rows, key=lambda row: row["key"])["value"]) if rows else None

    def version(self) -> str | None:
        """The live generation's name, None before the first build."""
        live = self.live()
        return None if live is None else generation_name(live.generation)

    def open(self, *, embedding_model: str | None = None, dim: int | None = None, chunk: ChunkSettings | None = None) -> MilvusStore:
        """The live generation, its manifest checked against what this run uses."""
        live = self.live()
        if live is None:
            raise IndexNotBuilt(f"no index in Milvus at {self.where} yet. Build one: BYLINE_STORE=milvus BYLINE_MILVUS_URI={self.uri} byline index")
        if live.layout != LAYOUT:
            raise IndexMismatch(
                f"index in Milvus at {self.where} has layout {live.layout} (an older Byline's); "
                f"this Byline reads layout {LAYOUT}. {self.rebuild_hint()}"
            )
        manifest = Manifest.from_json(json.dumps(live.manifest), self.where, self.rebuild_hint())
        check_manifest(manifest, self.where, self.rebuild_hint(), embedding_model=embedding_model, dim=dim, chunk=chunk)
        for collection in (live.chunks, self.articles):
            # Milvus Lite loads a collection on its first search after a restart (43 s at 100k chunks): do it now,
            # so a server is ready when it says so.
            if self.client.get_load_state(collection, timeout=TIMEOUT)["state"].name != "Loaded":
                self.client.load_collection(collection, timeout=LOAD_TIMEOUT)
        dropped = self.dropped(after=live.floor, upto=live.generation)
        return MilvusStore(self, live, manifest, self.sources(live.generation), dropped)

    def begin_build(self, full: bool = False, progress=None):
        """A writer for the next generation, starting from the live one unless `full`. Call under `lock()`."""
        from index.stores.milvus_writer import MilvusWriter

        return MilvusWriter(self, full, progress)

    def lock(self, wait: bool = False):
        """One build at a time: an flock beside the Milvus Lite file (for a server: on this machine)."""
        return build_lock(self.lock_dir, wait=wait)

    def close(self) -> None:
        """Disconnect; for Milvus Lite also stop this process's engine, so another process may open the file."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self.lite is not None:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(str(self.lite))

    def sources(self, generation: int) -> tuple[str, ...]:
        """The sources of a generation, kept in meta records of at most 64 KB each."""
        rows = self.query(self.meta, f'key like "{record_key("sources", generation)}%"', ["key", "value"])
        return tuple(source for row in sorted(rows, key=lambda row: row["key"]) for source in json.loads(row["value"]))

    def dropped(self, after: int, upto: int) -> dict[int, list[str]]:
        """The articles each build in (after, upto] dropped or replaced, for builds whose old rows may still exist."""
        first, beyond = record_key("dropped", after + 1), record_key("dropped", upto + 1)
        expression = f'key like "dropped-%" and key >= "{first}" and key < "{beyond}"'
        lists: dict[int, list[str]] = {}
        for row in self.scan(self.meta, "key", expression, ["value"]):
            lists.setdefault(record_generation(row["key"]), []).extend(json.loads(row["value"]))
        return lists

    # -- shared with the writer ----------------------------------------------------------------------

    def query(self, collection: str, expression: str, fields: list[str], limit: int | None = None, offset: int = 0) -> list[dict]:
        """Rows matching an expression (at most MAX_HITS)."""
        extra = {} if limit is None else {"limit": limit, "offset": offset}
        return self.client.query(collection, filter=expression, output_fields=fields, timeout=TIMEOUT, **extra)

    def scan(self, collection: str, key: str, expression: str, fields: list[str]) -> Iterator[dict]:
        """Every row matching an expression, in primary key order, a page at a time."""
        last = None
        while True:
            after = "" if last is None else f"{key} > {quoted([last])[1:-1]} and "
            rows = self.query(collection, after + f"({expression})", sorted({key, *fields}), limit=MAX_HITS)
            yield from rows
            if len(rows) < MAX_HITS:
                return
            last = rows[-1][key]

    def count(self, collection: str, expression: str) -> int:
        """How many rows match an expression."""
        return int(self.query(collection, expression, ["count(*)"])[0]["count(*)"])


class MilvusCalls:
    """A MilvusClient whose failures (Milvus down, timed out, refusing a call) raise StoreUnavailable naming where."""

    def __init__(self, client, where: str):
        self._client, self._where = client, where

    def __getattr__(self, name: str):
        from pymilvus.exceptions import MilvusException

        method = getattr(self._client, name)

        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except MilvusException as error:
                raise StoreUnavailable(f"Milvus at {self._where} failed in {name}: {error.message}") from None

        return call


def connect(uri: str, lite: Path | None):
    """A MilvusClient for the URI; StoreUnavailable, saying why, when it can't connect."""
    os.environ.setdefault("RUST_LOG", "error")  # Milvus Lite's engine logs every text-index commit otherwise
    try:
        from pymilvus import MilvusClient
    except ImportError as error:
        raise StoreUnavailable("BYLINE_STORE=milvus needs pymilvus and milvus-lite: pip install 'pymilvus<2.6' 'milvus-lite<2.6'") from error
    if lite is not None:
        try:
            lite.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailable(f"BYLINE_MILVUS_URI: can't create folder {lite.parent} ({error.strerror})") from None
    try:
        with warnings.catch_warnings():  # milvus-lite 2.5 imports the deprecated pkg_resources
            warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
            return MilvusClient(uri=str(lite) if lite else uri, timeout=TIMEOUT)
    except Exception as error:  # pymilvus raises several kinds; all mean "no Milvus here"
        busy = " (Milvus Lite lets one process open a file: is another Byline using it?)" if lite else ""
        raise StoreUnavailable(f"can't open Milvus at {uri}{busy}: {error}") from None


class MilvusStore:
    """One generation of the index in Milvus: searches filter on it, so later builds don't change what it answers."""

    def __init__(
        self, backend: MilvusBackend, live: Live, manifest: Manifest, sources: tuple[str, ...], dropped: dict[int, list[str]]
    ):
        self.backend, self.manifest, self.version = backend, manifest, generation_name(live.generation)
        self.collection, self.source_names = live.chunks, sources
        self._visible = visible(live.generation, live.floor, dropped)
        self._words_visible = visible(live.generation, live.floor)  # words are never dropped
        self._listing: list[tuple[str, str, str]] | None = None  # (lower-case title, path, id), sorted
        self._listing_lock = threading.Lock()
        self._closed = False

    # -- searching ---------------------------------------------------------------------------------

    def dense(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """The k chunks nearest to the unit vector (inner product), searched in Milvus."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        return self._search([vector.tolist()], "dense", "IP", k, filters)

    def keyword(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """The k chunks with the highest BM25 score, computed by Milvus' BM25 function (score > 0)."""
        if not query.strip():
            return []
        return [(i, score) for i, score in self._search([query], "sparse", "BM25", k, filters) if score > 0]

    # -- reading -----------------------------------------------------------------------------------

    def refs(self, ids: Sequence[int]) -> dict[int, ChunkRef]:
        """Article id, source and date of each known chunk id."""
        rows = self._rows_by_id(ids, ["id", "article_id", "source", "published"])
        return {row["id"]: ChunkRef(row["id"], row["article_id"], row["source"], row["published"]) for row in rows}

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the order asked; text cut from the article if it didn't fit the row."""
        rows = {row["id"]: row for row in self._rows_by_id(ids, _CHUNK_FIELDS)}
        whole = {r["article_id"] for r in rows.values() if r["text_at"] < 0}
        articles = self.articles(whole) if whole else {}
        found = []
        for chunk_id in (int(i) for i in ids):
            if (row := rows.get(chunk_id)) is None:
                continue
            start, end = row["start_at"], row["end_at"]
            text = articles[row["article_id"]].text[start:end] if row["text_at"] < 0 else row["keyword_text"][row["text_at"] :]
            found.append(Chunk(chunk_id, row["article_id"], start, end, text))
        return found

    def articles(self, ids: Iterable[str]) -> dict[str, Article]:
        """The known articles among these ids."""
        ids = list(dict.fromkeys(ids))
        rows = []
        for start in range(0, len(ids), BATCH):
            expression = f"article_id in {quoted(ids[start : start + BATCH])} and {self._visible}"
            rows += self.backend.scan(self.backend.articles, "key", expression, _ARTICLE_FIELDS)
        return assemble_articles(rows)

    def article(self, article_id: str) -> Article:
        """One article; ArticleNotFound if this generation has none with that id."""
        return one_article(self, article_id)

    def list_articles(self, offset: int = 0, limit: int = 50, query: str = "") -> tuple[list[Article], int]:
        """A page of articles ordered by title (any case) then path; with `query`, those whose title or path holds it.

        Milvus can't sort by title: the first call reads every article's title and path once for this version.
        """
        with self._listing_lock:
            if self._listing is None:
                rows = self.backend.scan(self.backend.articles, "key", f"part == 0 and {self._visible}", ["article_id", "title", "path"])
                self._listing = sorted((row["title"].lower(), row["path"], row["article_id"]) for row in rows)
        wanted = query.lower()
        ids = [i for title, path, i in self._listing if not wanted or wanted in title or wanted in path.lower()]
        return self._page(ids[offset : offset + limit]), len(ids)

    def common_words(self) -> Container[str]:
        """The words some article writes in lower case, looked up in Milvus one by one."""
        return _CommonWords(self.backend, self._words_visible)

    def counts(self) -> tuple[int, int]:
        """Articles and chunks in this generation."""
        return self.manifest.article_count, self.manifest.chunk_count

    def sources(self) -> list[str]:
        """The distinct non-empty article sources, sorted."""
        return sorted(source for source in self.source_names if source)

    def mentions(self, name: str) -> bool:
        """Whether some article's title, source or text holds the name as a phrase: a BM25 query for it
        inside Milvus, then the phrase checked in the best hits."""
        if not words(name):
            return True  # nothing to look for
        if any(holds_phrase(source, name) for source in self.source_names):
            return True
        hits = self._search([name], "sparse", "BM25", MENTION_DEPTH, None)
        rows = self._rows_by_id([chunk_id for chunk_id, _ in hits], ["id", "keyword_text"])
        return any(holds_phrase(row["keyword_text"], name) for row in rows)

    def content_hashes(self) -> dict[str, str]:
        """Article id -> content hash."""
        rows = self.backend.scan(self.backend.articles, "key", f"part == 0 and {self._visible}", ["article_id", "content_hash"])
        return {row["article_id"]: row["content_hash"] for row in rows}

    def close(self) -> None:
        """Forget this generation (the client stays with the backend); searching it afterwards is an error."""
        self._closed = True

    # -- internals ---------------------------------------------------------------------------------

    def _search(self, data: list, field: str, metric: str, k: int, filters: Filters | None) -> list[tuple[int, float]]:
        """Chunk ids and scores of one Milvus search over this generation, best first."""
        if self._closed:
            raise BylineError(f"Milvus store version {self.version} was closed")
        limit = min(int(k), MAX_HITS)
        if limit <= 0:
            return []
        extra = filter_expression(filters)
        expression = f"{self._visible} and {extra}" if extra else self._visible
        hits = self.backend.client.search(
            self.collection, data=data, anns_field=field, limit=limit, filter=expression,
            search_params={"metric_type": metric}, timeout=TIMEOUT,
        )[0]
        return [(int(hit["id"]), float(hit["distance"])) for hit in hits]

    def _rows_by_id(self, ids: Sequence[int], fields: list[str]) -> list[dict]:
        """Chunk rows of this generation with these ids."""
        ids = list(dict.fromkeys(int(i) for i in ids))
        rows = []
        for start in range(0, len(ids), BATCH):
            part = ids[start : start + BATCH]
            rows += self.backend.query(self.collection, f"id in {part} and {self._visible}", fields, limit=len(part))
        return rows

    def _page(self, ids: list[str]) -> list[Article]:
        """These articles, in this order."""
        found = self.articles(ids)
        return [found[i] for i in ids if i in found]


class _CommonWords:
    """`word in words`: one query of the words collection for the store's generation."""

    def __init__(self, backend: MilvusBackend, visible_words: str):
        self._backend, self._visible = backend, visible_words

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str) or not word or len(word) > MAX_WORD:
            return False
        return bool(self._backend.query(self._backend.words, f"word == {quoted([word])[1:-1]} and {self._visible}", ["key"], limit=1))
