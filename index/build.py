"""Build or update an index: read the corpus, embed only what changed, write a new generation, swap it in."""

from __future__ import annotations

import inspect
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from index.chunking import ChunkSettings, chunk_spans, embedding_text
from index.corpus import CorpusStream, content_hash
from index.errors import BylineError, IndexMismatch, IndexNotBuilt
from index.checkpoint import EmbeddingCheckpoint, text_digest
from index.embed import for_job
from index.stores.base import FORMAT_VERSION, Backend, Manifest
from index.stores.local import LocalBackend
from index.types import Article, BuildSummary, Chunk, CorpusLimits, Refused, Skipped

EMBED_BATCH = 256  # chunks per embedder call: big enough to keep the model busy, small enough for progress
CHECKPOINT_CHUNKS = 2048  # embedded chunks saved to .checkpoint at a time, so a killed build resumes
Progress = Callable[[str, int, int], None]


def removed_articles(previous: dict[str, Article], skipped: list[Skipped]) -> list[str]:
    """Which of the previous version's articles that this read didn't yield are dropped from the index.

    An article whose file was skipped this time (say it became unreadable) keeps its indexed version, so
    bad input never loses what was indexed before; a Refused entry (a duplicate, a link out of the corpus,
    a FIFO) is not kept.

    >>> gone = {"b": Article("b", "text b", path="b.md"), "c": Article("c", "text c", path="feed.xml#2")}
    >>> removed_articles(gone, [Skipped("feed.xml", "can't parse")])
    ['b']
    """
    unreadable = {s.path for s in skipped if not isinstance(s, Refused)}
    return sorted(
        article_id
        for article_id, article in previous.items()
        if not (article.path and (article.path in unreadable or article.path.split("#")[0] in unreadable))
    )


def chunk_articles(
    articles: tuple[Article, ...], chunk: ChunkSettings, first_id: int, spans: Sequence[list[tuple[int, int]]] | None = None
) -> tuple[list[Chunk], list[str]]:
    """Cut articles into chunks numbered from `first_id`, and the text to embed for each. `spans` holds each
    article's chunk spans when they were cut already (chunking.chunk_spans).

    >>> chunks, texts = chunk_articles((Article("a", "One two. Three four.", title="T"),), ChunkSettings(2, 0), 7)
    >>> [(c.id, c.text) for c in chunks], texts
    ([(7, 'One two.'), (8, 'Three four.')], ['T\\nOne two.', 'T\\nThree four.'])
    """
    if spans is None:
        spans = [chunk_spans(article.text, chunk.words, chunk.overlap_words) for article in articles]
    chunks, texts = [], []
    for article, article_spans in zip(articles, spans):
        for start, end in article_spans:
            text = article.text[start:end]
            chunks.append(Chunk(first_id + len(chunks), article.id, start, end, text))
            texts.append(embedding_text(text, article.title, article.source, article.published, chunk.embed_metadata))
    return chunks, texts


def build_index(
    corpus: Path,
    index_dir: Path,
    embedder,
    chunk: ChunkSettings = ChunkSettings(),
    *,
    full: bool = False,
    limits: CorpusLimits = CorpusLimits(),
    progress: Progress | None = None,
    wait: bool = False,
    backend: Backend | None = None,
    checkpoint_chunks: int = CHECKPOINT_CHUNKS,
) -> BuildSummary:
    """Update the index from `corpus`, re-embedding only added or changed articles.

    The store publishes the new version in one step, so a build killed at any point leaves the previous
    index answering. Embedded vectors are checkpointed every `checkpoint_chunks` chunks in
    `index_dir/.checkpoint`, so the next build resumes. `backend` defaults to the local store in `index_dir`.
    Raises IndexBusy if another build holds the index, unless `wait`.
    """
    started = time.perf_counter()
    backend = backend or LocalBackend(Path(index_dir))
    report = progress or (lambda stage, done, total: None)
    with backend.lock(wait=wait):
        report("reading", 0, 0)
        previous = _previous(backend)
        reuse = previous is not None and not full and _compatible(previous.manifest, embedder, chunk)
        incoming = Incoming(previous.content_hashes() if reuse else {}, chunk)
        stream = CorpusStream(corpus, limits=limits, chunk=chunk)
        writer = None
        try:
            with read_ahead(incoming.to_embed(stream), on_item=_reading_progress(stream, report)) as pending:
                checkpoint = EmbeddingCheckpoint(index_dir, {"model": embedder.name, "dim": int(embedder.dim), **asdict(chunk)})
                next_id = previous.manifest.next_chunk_id if previous is not None else 0
                counts = Counts()
                for group in _grouped(pending, checkpoint_chunks):
                    writer = writer or backend.begin_build(full=not reuse, progress=report)
                    writer.delete([a.id for a, _ in group if a.id in incoming.previous_hashes])
                    next_id = _embed_group(group, incoming, chunk, next_id, embedder, writer, checkpoint, counts, report)
            gone = previous.articles(set(incoming.previous_hashes) - set(incoming.hashes)) if reuse else {}
            removed = removed_articles(gone, stream.skipped)
            summary = dict(added=incoming.added, changed=incoming.changed, unchanged=incoming.unchanged, removed=len(removed))
            skipped = tuple(stream.skipped) + tuple(incoming.refused)
            if reuse and writer is None and not removed:
                report("done", 1, 1)
                return BuildSummary(**summary, skipped=skipped, warnings=tuple(stream.warnings),
                                    chunks_total=previous.manifest.chunk_count, seconds=time.perf_counter() - started)
            writer = writer or backend.begin_build(full=not reuse, progress=report)
            writer.delete(removed)
            manifest = Manifest(
                format_version=FORMAT_VERSION,
                embedding_model=embedder.name,
                dim=int(embedder.dim),
                chunk_words=chunk.words,
                chunk_overlap_words=chunk.overlap_words,
                embed_metadata=chunk.embed_metadata,
                built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                article_count=0,  # the store counts what it holds
                chunk_count=0,
                next_chunk_id=next_id,
                corpus=str(Path(corpus).resolve()),
            )
            writer.commit(manifest)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        checkpoint.clear()
        report("done", 1, 1)
        total = backend.open().manifest.chunk_count
    return BuildSummary(**summary, skipped=skipped, warnings=tuple(stream.warnings), chunks_embedded=counts.embedded,
                        chunks_resumed=counts.resumed, chunks_total=total, seconds=time.perf_counter() - started)


def build_from_settings(settings, embedder, *, full: bool = False, progress: Progress | None = None) -> BuildSummary:
    """build_index with everything the settings say: corpus, store, chunking, corpus limits, checkpoint size."""
    from index.stores.base import store_backend

    return build_index(
        settings.corpus_dir,
        settings.index_dir,
        embedder,
        settings.chunk_settings(),
        full=full,
        limits=settings.corpus_limits(),
        progress=progress,
        backend=store_backend(settings),
        checkpoint_chunks=settings.checkpoint_chunks,
    )


class Incoming:
    """Sorts the articles a read yields against the previous version: counts them, refuses a second article
    with an id already seen, and passes on those to embed (added, or changed by content hash) with their
    chunk counts. `chunks` counts the chunks to embed among the articles read so far."""

    def __init__(self, previous_hashes: dict[str, str], chunk: ChunkSettings):
        self.previous_hashes, self.chunk = previous_hashes, chunk
        self.hashes: dict[str, str] = {}
        self.paths: dict[str, str] = {}
        self.refused: list[Refused] = []
        self.added = self.changed = self.unchanged = self.chunks = 0

    def to_embed(self, articles: Iterable[Article]) -> Iterator[tuple[Article, list[tuple[int, int]]]]:
        """(article, its chunk spans) for each article that needs embedding, in reading order."""
        for article in articles:
            if article.id in self.hashes:
                self.refused.append(Refused(article.path, f"duplicate article id {article.id} (also {self.paths[article.id]})"))
                continue
            self.hashes[article.id], self.paths[article.id] = content_hash(article), article.path
            old = self.previous_hashes.get(article.id)
            if old == self.hashes[article.id]:
                self.unchanged += 1
                continue
            if old is None:
                self.added += 1
            else:
                self.changed += 1
            spans = chunk_spans(article.text, self.chunk.words, self.chunk.overlap_words)
            self.chunks += len(spans)
            yield article, spans


@dataclass
class Counts:
    """Chunks a build has embedded now, taken from the checkpoint, and both together."""

    embedded: int = 0
    resumed: int = 0
    done: int = 0


def _grouped(articles: Iterable[tuple[Article, list]], size: int) -> Iterator[tuple[tuple[Article, list], ...]]:
    """(article, spans) pairs in groups of about `size` chunks, each yielded as soon as it is full (then checkpointed).

    >>> [len(g) for g in _grouped([(Article(str(n), "text"), [(0, 2), (2, 4)]) for n in range(5)], 4)]
    [2, 2, 1]
    """
    group, count = [], 0
    for article, spans in articles:
        group.append((article, spans))
        count += len(spans)
        if count >= size:
            yield tuple(group)
            group, count = [], 0
    if group:
        yield tuple(group)


def _embed_group(group, incoming: Incoming, chunk, next_id, embedder, writer, checkpoint, counts: Counts, report) -> int:
    """Chunk, embed (or take from the checkpoint) and add one group of (article, spans); returns the next free chunk id.

    Reports ("embedding", done, total) as batches finish and ("checkpoint", done, total) once the group is on
    disk. `total` counts the chunks to embed that were read so far: while reading goes on it grows.
    """
    articles = tuple(article for article, _ in group)
    chunks, texts = chunk_articles(articles, chunk, next_id, [spans for _, spans in group])
    digests = [text_digest(text) for text in texts]
    vectors = np.empty((len(texts), embedder.dim), dtype=np.float32)
    missing = []
    for row, digest in enumerate(digests):
        saved = checkpoint.get(digest)
        if saved is None:
            missing.append(row)
        else:
            vectors[row] = saved
    counts.resumed += len(texts) - len(missing)
    counts.done += len(texts) - len(missing)
    if missing:
        base = counts.done
        fresh = _embed(for_job(embedder, len(missing)), [texts[row] for row in missing],
                       lambda stage, n, _t: report(stage, base + n, incoming.chunks))
        vectors[missing] = fresh
        checkpoint.save([digests[row] for row in missing], fresh)
        counts.embedded += len(missing)
        counts.done += len(missing)
        report("checkpoint", counts.done, incoming.chunks)
    report("embedding", counts.done, incoming.chunks)
    writer.add(articles, {a.id: incoming.hashes[a.id] for a in articles}, chunks, vectors)
    return next_id + len(chunks)


def _reading_progress(stream: CorpusStream, report: Progress) -> Callable[[], None]:
    """A callback that reports ("reading", files read, files) whenever the count moved."""
    shown = [0]

    def show() -> None:
        if stream.files_read != shown[0]:
            shown[0] = stream.files_read
            report("reading", shown[0], len(stream.files))

    return show


@contextmanager
def read_ahead(items: Iterable, on_item: Callable[[], None] = lambda: None, depth: int = 1024) -> Iterator[Iterator]:
    """Iterate `items` on a background thread, at most `depth` items ahead, so reading and parsing a corpus
    overlap embedding it (the embedder releases the GIL while it computes).

    Yields an iterator over the items, which raises any error the reader met. `on_item()` runs on the
    consuming thread after each item arrives, so progress callbacks never run on two threads at once.

    >>> with read_ahead(iter(range(3))) as got:
    ...     list(got)
    [0, 1, 2]
    """
    queued: queue.Queue = queue.Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def offer(item) -> bool:
        """Queue `item` unless the consumer has gone; whether it was queued."""
        while not stop.is_set():
            try:
                queued.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(end)
        except BaseException as error:  # handed to the consumer, which raises it
            offer(error)

    def consume() -> Iterator:
        while True:
            item = queued.get()
            on_item()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    reader = threading.Thread(target=produce, name="corpus-reader", daemon=True)
    reader.start()
    try:
        yield consume()
    finally:
        stop.set()
        reader.join()


def _previous(backend: Backend):
    """The live version (None if there is none or it can't be read): what this build may start from."""
    try:
        return backend.open()
    except (IndexNotBuilt, IndexMismatch):
        return None  # nothing usable: this build starts afresh


def _compatible(manifest: Manifest, embedder, chunk: ChunkSettings) -> bool:
    """Whether the previous version's vectors can be reused by this build."""
    return manifest.embedding_model == embedder.name and manifest.dim == embedder.dim and manifest.chunk == chunk


def _embed(embedder, texts: list[str], report: Progress) -> np.ndarray:
    """Embed in batches, reporting progress; the embedder's own progress bar is turned off if it has one."""
    quiet = {"progress": False} if "progress" in inspect.signature(embedder.embed).parameters else {}
    # Batches of similar length waste less on padding; the rows are put back in order at the end.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts = []
    report("embedding", 0, len(texts))
    for start in range(0, len(texts), EMBED_BATCH):
        batch = [texts[i] for i in order[start : start + EMBED_BATCH]]
        vectors = np.asarray(embedder.embed(batch, **quiet), dtype=np.float32)
        if vectors.shape != (len(batch), embedder.dim):
            raise BylineError(
                f"embedder {embedder.name} returned vectors of shape {vectors.shape} for {len(batch)} texts; "
                f"expected ({len(batch)}, {embedder.dim})"
            )
        parts.append(vectors)
        report("embedding", start + len(batch), len(texts))
    if not parts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    vectors = np.empty((len(texts), embedder.dim), dtype=np.float32)
    vectors[order] = np.vstack(parts)
    return vectors
