"""Retrieval evaluation on MultiHop-RAG-format query files: hits@k, MRR, evidence recall, by question type.

A retrieved chunk is relevant to a query if it contains one of the query's gold evidence facts, compared with
all whitespace removed (the MultiHop-RAG paper's rule). Null queries (no evidence) are left out.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from index.errors import QueryFileError
from index.types import Hit

_SPACE = re.compile(r"\s+")
RETRIEVERS = ("dense", "keyword", "fused")


@dataclass(frozen=True)
class Query:
    """One evaluation query: its text, type, gold answer and gold evidence facts."""

    query: str
    question_type: str = ""
    answer: str = ""
    facts: tuple[str, ...] = ()


def squash(text: str) -> str:
    """Text with all whitespace removed, the form facts and chunks are compared in.

    >>> squash(" A  fact,\\n split. ")
    'Afact,split.'
    """
    return _SPACE.sub("", text)


def parse_queries(records: object, where: str) -> list[Query]:
    """Queries from MultiHop-RAG records; a bad record raises QueryFileError naming the place and field.

    >>> parse_queries([{"query": "Who?", "question_type": "inference_query", "evidence_list": [{"fact": "X did."}]}], "q.json")
    [Query(query='Who?', question_type='inference_query', answer='', facts=('X did.',))]
    """
    if not isinstance(records, list):
        raise QueryFileError(f"{where}: expected a JSON list of query records, got {type(records).__name__}")
    queries = []
    for number, record in enumerate(records):
        place = f"{where}: record {number}"
        if not isinstance(record, dict):
            raise QueryFileError(f"{place}: expected an object, got {type(record).__name__}")
        text = record.get("query")
        if not isinstance(text, str) or not text.strip():
            raise QueryFileError(f"{place}: field 'query' is missing or empty")
        evidence = record.get("evidence_list", [])
        if not isinstance(evidence, list):
            raise QueryFileError(f"{place}: field 'evidence_list' must be a list")
        facts = []
        for item_number, item in enumerate(evidence):
            fact = item.get("fact") if isinstance(item, dict) else None
            if not isinstance(fact, str) or not fact.strip():
                raise QueryFileError(f"{place}: evidence_list[{item_number}] has no 'fact' text")
            facts.append(fact)
        queries.append(
            Query(
                query=text,
                question_type=str(record.get("question_type") or "unknown"),
                answer=str(record.get("answer") or ""),
                facts=tuple(facts),
            )
        )
    return queries


def load_queries(path: Path) -> list[Query]:
    """Read a MultiHop-RAG-format query file (a JSON list); errors name the file and the reason."""
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QueryFileError(f"{path}: no such query file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise QueryFileError(f"{path}: not a readable JSON query file ({error})") from None
    return parse_queries(records, str(path))


def stratified(queries: Sequence[Query], limit: int | None) -> list[Query]:
    """The first `limit` queries taken round-robin over question types, in file order.

    >>> qs = [Query("a", "x"), Query("b", "x"), Query("c", "y")]
    >>> [q.query for q in stratified(qs, 2)]
    ['a', 'c']
    """
    if limit is None or limit >= len(queries):
        return list(queries)
    by_type: dict[str, list[Query]] = {}
    for query in queries:
        by_type.setdefault(query.question_type, []).append(query)
    picked: list[Query] = []
    for position in range(max(len(group) for group in by_type.values())):
        for group in by_type.values():
            if position < len(group) and len(picked) < limit:
                picked.append(group[position])
    order = {id(query): number for number, query in enumerate(queries)}
    return sorted(picked, key=lambda query: order[id(query)])


def score_ranking(chunk_texts: Sequence[str], facts: Sequence[str], k: int = 10) -> dict[str, float]:
    """The metrics of one query's ranked chunk texts against its gold facts.

    >>> score_ranking(["noise", "Rome will offer sites.", "more noise"], ["Rome will offer  sites."], k=10)
    {'hits@4': 1.0, 'hits@k': 1.0, 'mrr@k': 0.5, 'evidence_recall@k': 1.0, 'all_evidence@k': 1.0}
    """
    squashed_facts = {squash(fact) for fact in facts}
    first_relevant = None
    found: set[str] = set()
    for rank, text in enumerate(chunk_texts[:k], start=1):
        contained = {fact for fact in squashed_facts if fact in squash(text)}
        if contained and first_relevant is None:
            first_relevant = rank
        found |= contained
    return {
        "hits@4": float(first_relevant is not None and first_relevant <= 4),
        "hits@k": float(first_relevant is not None),
        "mrr@k": 1.0 / first_relevant if first_relevant else 0.0,
        "evidence_recall@k": len(found) / len(squashed_facts) if squashed_facts else 0.0,
        "all_evidence@k": float(bool(squashed_facts) and found == squashed_facts),
    }


def summarize(rows: Sequence[tuple[str, dict[str, float]]], k: int) -> dict:
    """Mean metrics over (question type, metrics) rows, overall and by type, with @k spelled out.

    >>> summarize([("a", {"hits@k": 1.0}), ("b", {"hits@k": 0.0})], k=10)
    {'queries': 2, 'hits@10': 0.5, 'by_type': {'a': {'queries': 1, 'hits@10': 1.0}, 'b': {'queries': 1, 'hits@10': 0.0}}}
    """

    def mean(group: Sequence[dict[str, float]]) -> dict:
        names = group[0].keys() if group else ()
        means = {name.replace("@k", f"@{k}"): round(sum(row[name] for row in group) / len(group), 4) for name in names}
        return {"queries": len(group), **means}

    by_type: dict[str, list[dict[str, float]]] = {}
    for question_type, metrics in rows:
        by_type.setdefault(question_type, []).append(metrics)
    overall = mean([metrics for _, metrics in rows])
    return {**overall, "by_type": {name: mean(group) for name, group in sorted(by_type.items())}}


def evaluate_rankings(
    queries: Sequence[Query], search: Callable[[str, int], list[Hit]], k: int = 10
) -> tuple[dict, list[float]]:
    """Run `search(query, k)` for every non-null query; the summary and each search's latency in ms."""
    rows: list[tuple[str, dict[str, float]]] = []
    latencies: list[float] = []
    for query in queries:
        if not query.facts:
            continue
        started = time.perf_counter()
        hits = search(query.query, k)
        latencies.append((time.perf_counter() - started) * 1000)
        rows.append((query.question_type, score_ranking([hit.text for hit in hits], query.facts, k)))
    return summarize(rows, k), latencies


def fact_coverage(chunk_texts: Sequence[str], queries: Sequence[Query]) -> float:
    """Share of gold facts that lie wholly inside some chunk: the ceiling of evidence recall.

    >>> fact_coverage(["a b c", "d e"], [Query("q", facts=("b c", "c d"))])
    0.5
    """
    facts = {squash(fact) for query in queries for fact in query.facts}
    if not facts:
        return 0.0
    squashed = [squash(text) for text in chunk_texts]
    return round(sum(any(fact in text for text in squashed) for fact in facts) / len(facts), 4)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of values, 0.0 for none.

    >>> percentile([5.0, 1.0, 3.0, 2.0], 0.5)
    2.0
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(share * len(ordered) + 0.5)) - 1))]


def evaluate_retriever(retriever, queries: Sequence[Query], *, k: int = 10, retrievers: Sequence[str] = RETRIEVERS) -> dict:
    """Metrics and latency of each named retriever ("dense", "keyword", "fused") of one Retriever."""
    searches = {"dense": retriever.dense, "keyword": retriever.keyword, "fused": retriever.search}
    results = {}
    for name in retrievers:
        if name not in searches:
            raise ValueError(f"unknown retriever {name!r}: choose from {', '.join(searches)}")
        summary, latencies = evaluate_rankings(queries, lambda text, n, s=searches[name]: s(text, n), k)
        summary["latency_ms"] = {"p50": round(percentile(latencies, 0.5), 2), "p95": round(percentile(latencies, 0.95), 2)}
        results[name] = summary
    return results


class _RememberingEmbedder:
    """Wraps an embedder so each query is embedded once, though three retrievers search with it."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self._seen: dict[str, object] = {}

    def embed(self, texts: list[str], **options):
        missing = [text for text in dict.fromkeys(texts) if text not in self._seen]
        if missing:
            self._seen.update(zip(missing, self.embedder.embed(missing, **options), strict=True))
        return np.stack([self._seen[text] for text in texts]) if texts else self.embedder.embed([], **options)


def evaluate_retrieval(
    corpus: Path,
    queries: Path,
    index_dir: Path,
    embedder,
    *,
    k: int = 10,
    retrievers: Sequence[str] = RETRIEVERS,
    chunk=None,
    settings=None,
    limit: int | None = None,
    backend=None,
) -> dict:
    """Index the corpus (incrementally: an index of the same corpus is reused), run the queries, summarize."""
    from index.build import build_index
    from index.chunking import ChunkSettings
    from index.retrieve import RetrievalSettings, Retriever
    from index.stores.local import LocalBackend

    chunk = chunk or ChunkSettings()
    backend = backend or LocalBackend(Path(index_dir))
    picked = stratified(load_queries(queries), limit)
    started = time.perf_counter()
    build = build_index(Path(corpus), Path(index_dir), embedder, chunk, wait=True, backend=backend)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    store = backend.open(embedding_model=embedder.name, dim=embedder.dim, chunk=chunk)
    retriever = Retriever(store, _RememberingEmbedder(embedder), settings or RetrievalSettings())
    load_seconds = time.perf_counter() - started
    articles, chunk_count = store.counts()
    chunk_texts = [c.text for c in store.chunks(range(store.manifest.next_chunk_id))]
    return {
        "corpus": str(corpus),
        "queries_file": str(queries),
        "queries": len(picked),
        "evaluated": sum(1 for query in picked if query.facts),
        "k": k,
        "index": {
            "dir": str(index_dir),
            "store": backend.name,
            "articles": articles,
            "chunks": chunk_count,
            "chunk_words": chunk.words,
            "chunk_overlap_words": chunk.overlap_words,
            "embed_metadata": chunk.embed_metadata,
            "embedded_now": build.chunks_embedded,
            "build_seconds": round(build_seconds, 2),
            "retriever_load_seconds": round(load_seconds, 2),
            "facts_inside_a_chunk": fact_coverage(chunk_texts, picked),
        },
        "retrieval_settings": asdict(retriever.settings),
        "retrievers": evaluate_retriever(retriever, picked, k=k, retrievers=retrievers),
    }
