"""Build or update an index: read the corpus, embed only what changed, write a new generation, swap it in."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from index.chunking import ChunkSettings, chunk_spans, embedding_text
from index.corpus import content_hash, read_corpus
from index.errors import BylineError, IndexMismatch, IndexNotBuilt
from index.locking import build_lock
from index.store import (
    FORMAT_VERSION,
    IndexSnapshot,
    Manifest,
    collect_garbage,
    current_generation,
    load_index,
    new_generation_name,
    publish,
    write_generation,
)
from index.types import Article, BuildSummary, Chunk, CorpusLimits, FileWarning, Refused, Skipped

EMBED_BATCH = 256  # chunks per embedder call: big enough to keep the model busy, small enough for progress
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
) -> BuildSummary:
    """Update the index in `index_dir` from `corpus`, re-embedding only added or changed articles.

    The new generation is written beside the live one and swapped in with one os.replace, so a
    build killed at any point leaves the previous index intact. Raises IndexBusy if another build
    holds the directory, unless `wait`.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    report = progress or (lambda stage, done, total: None)
    with build_lock(index_dir, wait=wait):
        collect_garbage(index_dir, keep=None)  # folders of builds that were killed
        report("reading", 0, 0)
        articles, skipped, warnings = _read_unique(Path(corpus), limits, chunk, report)
        hashes = {article.id: content_hash(article) for article in articles}
        previous, next_id = _previous(index_dir)
        reuse = previous is not None and not full and _compatible(previous, embedder, chunk)
        plan = plan_build(
            articles,
            hashes,
            skipped,
            previous.articles if reuse else {},
            previous.content_hashes if reuse else {},
        )
        summary = dict(added=plan.added, changed=plan.changed, unchanged=len(plan.keep), removed=len(plan.removed))
        if reuse and not plan.embed and not plan.removed:
            report("done", 1, 1)
            return BuildSummary(
                **summary,
                skipped=plan.skipped,
                warnings=warnings,
                chunks_total=len(previous.chunks),
                seconds=time.perf_counter() - started,
            )
        new_chunks, texts = chunk_articles(plan.embed, chunk, next_id)
        vectors = _embed(embedder, texts, report)
        index = _updated_vectors(previous if reuse else None, plan, embedder.dim)
        index.add_with_ids(vectors, np.array([c.id for c in new_chunks], dtype=np.int64))
        kept_ids = {article.id for article in plan.keep}
        old_chunks = [c for c in previous.chunks if c.article_id in kept_ids] if reuse else []
        all_chunks = sorted(old_chunks + new_chunks, key=lambda c: c.id)
        all_articles = sorted(plan.keep + plan.embed, key=lambda a: a.id)
        all_hashes = {**(previous.content_hashes if reuse else {}), **hashes}
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            embedding_model=embedder.name,
            dim=int(embedder.dim),
            chunk_words=chunk.words,
            chunk_overlap_words=chunk.overlap_words,
            embed_metadata=chunk.embed_metadata,
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            article_count=len(all_articles),
            chunk_count=len(all_chunks),
            next_chunk_id=next_id + len(new_chunks),
            corpus=str(Path(corpus).resolve()),
        )
        old_generation = current_generation(index_dir)
        name = new_generation_name(index_dir)
        write_generation(index_dir, name, manifest, index, all_articles, all_hashes, all_chunks, report)
        publish(index_dir, name)
        # Keep the previous generation: a reader may have read CURRENT just before the swap.
        collect_garbage(index_dir, keep=[name, old_generation])
        report("done", 1, 1)
    return BuildSummary(
        **summary,
        skipped=plan.skipped,
        warnings=warnings,
        chunks_embedded=len(new_chunks),
        chunks_total=len(all_chunks),
        seconds=time.perf_counter() - started,
    )


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


def _previous(index_dir: Path) -> tuple[IndexSnapshot | None, int]:
    """The live generation (None if there is none or it can't be used) and the next free chunk id."""
    try:
        snapshot = load_index(index_dir)
    except (IndexNotBuilt, IndexMismatch):
        return None, 0  # nothing usable: this build starts afresh
    return snapshot, snapshot.manifest.next_chunk_id


def _compatible(previous: IndexSnapshot, embedder, chunk: ChunkSettings) -> bool:
    """Whether the previous generation's vectors can be reused by this build."""
    manifest = previous.manifest
    return manifest.embedding_model == embedder.name and manifest.dim == embedder.dim and manifest.chunk == chunk


def _updated_vectors(previous: IndexSnapshot | None, plan: Plan, dim: int):
    """A copy of the previous vectors without those of changed and removed articles, or an empty index."""
    import faiss

    if previous is None:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    index = faiss.clone_index(previous.vectors)
    dropped = set(plan.removed) | {article.id for article in plan.embed}
    stale = [c.id for c in previous.chunks if c.article_id in dropped]
    if stale:
        index.remove_ids(np.array(stale, dtype=np.int64))
    return index


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
