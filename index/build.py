"""Build or update an index: read the corpus, embed only what changed, write a new generation, swap it in."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from index.chunking import ChunkSettings, chunk_spans, embedding_text
from index.corpus import content_hash, read_corpus
from index.errors import BylineError, IndexMismatch, IndexNotBuilt
from index.checkpoint import EmbeddingCheckpoint, text_digest
from index.embed import for_job
from index.stores.base import FORMAT_VERSION, Backend, Manifest
from index.stores.local import LocalBackend
from index.types import Article, BuildSummary, Chunk, CorpusLimits, FileWarning, Refused, Skipped

EMBED_BATCH = 256  # chunks per embedder call: big enough to keep the model busy, small enough for progress
CHECKPOINT_CHUNKS = 2048  # embedded chunks saved to .checkpoint at a time, so a killed build resumes
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Plan:
    """Which articles a build keeps as they are, embeds afresh, and drops."""

    keep: tuple[Article, ...]  # unchanged, or previously indexed and now unreadable
    embed: tuple[Article, ...]  # added or changed
    added: int
    changed: int
    removed: tuple[str, ...]  # ids of articles dropped from the previous generation
    skipped: tuple[Skipped, ...]


def plan_build(
    articles: list[Article],
    hashes: dict[str, str],
    skipped: list[Skipped],
    previous: dict[str, Article],
    previous_hashes: dict[str, str],
) -> Plan:
    """Compare the corpus with the previous generation by content hash.

    An article whose file was skipped this time (say it became unreadable) keeps its indexed
    version, so bad input never loses what was indexed before; a Refused entry (a duplicate, a link
    out of the corpus, a FIFO) is not kept.

    >>> a = Article("a", "text a"); b = Article("b", "text b", path="b.md")
    >>> p = plan_build([a], {"a": "h1"}, [], {"a": a, "b": b}, {"a": "h0", "b": "h2"})
    >>> (p.changed, p.added, p.removed)
    (1, 0, ('b',))
    """
    unreadable = {s.path for s in skipped if not isinstance(s, Refused)}
    current_ids = {article.id for article in articles}
    keep, embed, added, changed = [], [], 0, 0
    for article in articles:
        old = previous_hashes.get(article.id)
        if old == hashes[article.id]:
            keep.append(article)
        else:
            embed.append(article)
            added, changed = (added, changed + 1) if old is not None else (added + 1, changed)
    removed = []
    for article_id, article in previous.items():
        if article_id in current_ids:
            continue
        if article.path and (article.path in unreadable or article.path.split("#")[0] in unreadable):
            keep.append(article)
        else:
            removed.append(article_id)
    return Plan(tuple(keep), tuple(embed), added, changed, tuple(sorted(removed)), tuple(skipped))


def chunk_articles(articles: tuple[Article, ...], chunk: ChunkSettings, first_id: int) -> tuple[list[Chunk], list[str]]:
    """Cut articles into chunks numbered from `first_id`, and the text to embed for each.

    >>> chunks, texts = chunk_articles((Article("a", "One two. Three four.", title="T"),), ChunkSettings(2, 0), 7)
    >>> [(c.id, c.text) for c in chunks], texts
    ([(7, 'One two.'), (8, 'Three four.')], ['T\\nOne two.', 'T\\nThree four.'])
    """
    chunks, texts = [], []
    for article in articles:
        for start, end in chunk_spans(article.text, chunk.words, chunk.overlap_words):
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
        articles, skipped, warnings = _read_unique(Path(corpus), limits, chunk, report)
        hashes = {article.id: content_hash(article) for article in articles}
        previous = _previous(backend)
        reuse = previous is not None and not full and _compatible(previous.manifest, embedder, chunk)
        previous_hashes = previous.content_hashes() if reuse else {}
        gone = previous.articles(set(previous_hashes) - set(hashes)) if reuse else {}
        plan = plan_build(articles, hashes, skipped, gone, previous_hashes)
        summary = dict(added=plan.added, changed=plan.changed, unchanged=len(plan.keep), removed=len(plan.removed))
        if reuse and not plan.embed and not plan.removed:
            report("done", 1, 1)
            return BuildSummary(**summary, skipped=plan.skipped, warnings=warnings, chunks_total=previous.manifest.chunk_count,
                                seconds=time.perf_counter() - started)
        next_id = previous.manifest.next_chunk_id if previous is not None else 0
        writer = backend.begin_build(full=not reuse, progress=report)
        try:
            writer.delete([*plan.removed, *(a.id for a in plan.embed if a.id in previous_hashes)])
            checkpoint = EmbeddingCheckpoint(index_dir, {"model": embedder.name, "dim": int(embedder.dim), **asdict(chunk)})
            embedded, reused, next_id = _embed_articles(plan.embed, hashes, chunk, next_id, embedder, writer, checkpoint, checkpoint_chunks, report)
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
            writer.abort()
            raise
        checkpoint.clear()
        report("done", 1, 1)
        total = backend.open().manifest.chunk_count
    return BuildSummary(**summary, skipped=plan.skipped, warnings=warnings, chunks_embedded=embedded, chunks_resumed=reused,
                        chunks_total=total, seconds=time.perf_counter() - started)


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


def _embed_articles(articles, hashes, chunk, next_id, embedder, writer, checkpoint, group_chunks, report) -> tuple[int, int, int]:
    """Chunk, embed and add the articles in groups of about `group_chunks` chunks, checkpointing each group.

    Returns the chunks embedded now, those taken from the checkpoint, and the next free chunk id. Reports
    ("embedding", done, total) as batches finish and ("checkpoint", saved, total) once a group is on disk.
    """
    groups, total = _groups(articles, chunk, group_chunks)
    embedder = for_job(embedder, total)
    embedded = reused = done = 0
    report("embedding", 0, total)
    for group in groups:
        chunks, texts = chunk_articles(group, chunk, next_id)
        next_id += len(chunks)
        digests = [text_digest(text) for text in texts]
        vectors = np.empty((len(texts), embedder.dim), dtype=np.float32)
        missing = []
        for row, digest in enumerate(digests):
            saved = checkpoint.get(digest)
            if saved is None:
                missing.append(row)
            else:
                vectors[row] = saved
        reused += len(texts) - len(missing)
        done += len(texts) - len(missing)
        if missing:
            fresh = _embed(embedder, [texts[row] for row in missing], lambda stage, n, _t, base=done: report(stage, base + n, total))
            vectors[missing] = fresh
            checkpoint.save([digests[row] for row in missing], fresh)
            embedded += len(missing)
            done += len(missing)
            report("checkpoint", done, total)
        report("embedding", done, total)
        writer.add(group, {a.id: hashes[a.id] for a in group}, chunks, vectors)
    return embedded, reused, next_id


def _groups(articles, chunk: ChunkSettings, size: int) -> tuple[list[tuple[Article, ...]], int]:
    """Whole articles in groups of about `size` chunks (each group is checkpointed at once), and the chunk count."""
    groups, current, count, total = [], [], 0, 0
    for article in articles:
        current.append(article)
        spans = len(chunk_spans(article.text, chunk.words, chunk.overlap_words))
        count, total = count + spans, total + spans
        if count >= size:
            groups.append(tuple(current))
            current, count = [], 0
    if current:
        groups.append(tuple(current))
    return groups, total


def _read_unique(
    corpus: Path, limits: CorpusLimits, chunk: ChunkSettings, report: Progress
) -> tuple[list[Article], list[Skipped], tuple[FileWarning, ...]]:
    """Read the corpus; a second article with an id already seen is skipped, not silently merged."""
    articles, skipped, warnings = read_corpus(
        corpus, limits=limits, chunk=chunk, progress=lambda done, total: report("reading", done, total)
    )
    seen: dict[str, Article] = {}
    for article in articles:
        if article.id in seen:
            skipped.append(Refused(article.path, f"duplicate article id {article.id} (also {seen[article.id].path})"))
        else:
            seen[article.id] = article
    return list(seen.values()), list(skipped), tuple(warnings)


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
