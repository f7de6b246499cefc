"""Reproduce the retrieval tuning grid on MultiHop-RAG and write its table.

    python benchmarks/tune_retrieval.py [--corpus ../shared/bench/multihop-rag/corpus.json]
        [--queries ../shared/bench/multihop-rag/queries_dev.json] [--work /tmp/byline-h3-tune]
        [--out results/retrieval_tuning.md]

The queries are split in two halves by a hash of their text. Every choice (chunking, metadata in the
embedded text, fusion method and weights, diversity cap, source and date hints) is made on half A only;
the table reports half B, which the choices never saw, beside it. Embeddings are cached by text under
`--work`, so re-running costs only the searches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from index.build import build_index  # noqa: E402
from index.chunking import ChunkSettings  # noqa: E402
from index.embed import DEFAULT_EMBEDDING_MODEL  # noqa: E402
from index.evaluate import evaluate_rankings, load_queries  # noqa: E402
from index.retrieve import RetrievalSettings, Retriever  # noqa: E402
from index.stores.local import LocalBackend  # noqa: E402

BENCH = REPO.parent / "shared" / "bench" / "multihop-rag"
METRICS = ("hits@4", "hits@10", "mrr@10", "evidence_recall@10", "all_evidence@10")


class CachedEmbedder:
    """The bundled MiniLM, with vectors cached on disk by the sha1 of the text; loads the model only on a miss."""

    name = DEFAULT_EMBEDDING_MODEL
    dim = 384

    def __init__(self, cache: Path):
        self.cache = cache
        self._model = None
        self._vectors: dict[str, np.ndarray] = {}
        if cache.exists():
            data = np.load(cache)
            self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self._dirty = False

    def embed(self, texts: list[str], progress: bool | None = None, threads: int | None = None) -> np.ndarray:
        keys = [hashlib.sha1(text.encode()).hexdigest() for text in texts]
        missing = sorted({key: text for key, text in zip(keys, texts, strict=True) if key not in self._vectors}.items())
        if missing:
            if self._model is None:
                from index.embed import SentenceTransformerEmbedder

                self._model = SentenceTransformerEmbedder()
            vectors = self._model.embed([text for _, text in missing], progress=progress)
            self._vectors.update(zip([key for key, _ in missing], vectors, strict=True))
            self._dirty = True
        return np.stack([self._vectors[key] for key in keys]).astype(np.float32) if keys else np.zeros((0, self.dim), np.float32)

    def save(self) -> None:
        if self._dirty:
            keys = list(self._vectors)
            tmp = self.cache.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))
            os.replace(tmp, self.cache)
            self._dirty = False


def split(queries):
    """Halves A and B of the non-null queries, by a hash of the query text."""
    halves = {"A": [], "B": []}
    for query in queries:
        if query.facts:
            halves["AB"[int(hashlib.sha1(query.query.encode()).hexdigest(), 16) % 2]].append(query)
    return halves


def measure(search, queries) -> dict:
    summary, latencies = evaluate_rankings(queries, search, 10)
    return {name: summary[name] for name in METRICS} | {"p50_ms": round(float(np.median(latencies)), 2)}


def objective(row: dict) -> float:
    """What tuning maximizes: the two acceptance figures together."""
    return row["hits@10"] + row["evidence_recall@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=BENCH / "corpus.json")
    parser.add_argument("--queries", type=Path, default=BENCH / "queries_dev.json")
    parser.add_argument("--work", type=Path, default=Path("/tmp/byline-h3-tune"))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "retrieval_tuning.md")
    parser.add_argument("--chunkings", default="200:0", help="words:overlap pairs to try, e.g. 200:0,200:40,300:60 (each costs a full embedding)")
    parser.add_argument("--embed-metadata", choices=["both", "yes", "no"], default="both",
                        help="which embedded-text variants to build (each costs a full embedding)")
    parser.add_argument("--min-gain", type=float, default=0.005,
                        help="a knob moves off its default only if half A's hits@10 + evidence recall rises by more than this "
                             "(smaller changes are noise on ~580 queries)")
    args = parser.parse_args()
    variants = {"both": (True, False), "yes": (True,), "no": (False,)}[args.embed_metadata]
    args.work.mkdir(parents=True, exist_ok=True)
    embedder = CachedEmbedder(args.work / "vectors.npz")
    halves = split(load_queries(args.queries))
    rows: list[dict] = []

    def run(stage: str, label: str, retriever: Retriever, kind: str = "fused") -> dict:
        search = {"dense": retriever.dense, "keyword": retriever.keyword, "fused": retriever.search}[kind]
        row = {"stage": stage, "config": label, "retriever": kind}
        for half, queries in halves.items():
            row[half] = measure(lambda text, k: search(text, k), queries)
        rows.append(row)
        embedder.save()
        write_table(args.out, rows, None, None)
        print(f"{stage:10} {label:60} {kind:8} A {row['A']['hits@10']:.3f}/{row['A']['evidence_recall@10']:.3f}"
              f"  B {row['B']['hits@10']:.3f}/{row['B']['evidence_recall@10']:.3f}", flush=True)
        return row

    # Stage 1: chunking and metadata in the embedded text, judged by each retriever alone and fused.
    snapshots = {}
    for pair in args.chunkings.split(","):
        words, overlap = (int(part) for part in pair.split(":"))
        for with_metadata in variants:
            chunk = ChunkSettings(words=words, overlap_words=overlap, embed_metadata=with_metadata)
            index_dir = args.work / f"index-{words}-{overlap}-{int(with_metadata)}"
            started = time.perf_counter()
            build_index(args.corpus, index_dir, embedder, chunk, wait=True)
            embedder.save()
            snapshot = LocalBackend(index_dir).open(embedding_model=embedder.name, dim=embedder.dim, chunk=chunk)
            print(f"index {index_dir.name}: {snapshot.counts()[1]} chunks in {time.perf_counter() - started:.1f}s", flush=True)
            snapshots[chunk] = snapshot
            retriever = Retriever(snapshot, embedder, RetrievalSettings())
            label = f"words={words} overlap={overlap} embed_metadata={with_metadata}"
            for kind in ("dense", "keyword", "fused") if with_metadata else ("dense", "fused"):
                run("chunking", label, retriever, kind)
            if with_metadata:
                plain = dict(per_source=False, date_boost=0.0, per_article=0, split_parts=False, strip_sources=False)
                naive = replace(RetrievalSettings(), method="rrf", dense_weight=0.5, keyword_weight=0.5, **plain)
                run("reference", "naive equal-weight RRF, no hints, no cap", retriever.with_settings(naive))
                run("reference", "tuned weights, no hints, no cap", retriever.with_settings(replace(RetrievalSettings(), **plain)))
    # The embedded text only changes the dense retriever, so chunk variants are judged by dense alone on half A.
    chunk_rows = [row for row in rows if row["stage"] == "chunking" and row["retriever"] == "dense"]
    best_chunk = max(snapshots, key=lambda c: objective(next(r for r in chunk_rows if r["config"].startswith(
        f"words={c.words} overlap={c.overlap_words} embed_metadata={c.embed_metadata}"))["A"]))
    snapshot = snapshots[best_chunk]
    print("chunking chosen on A:", best_chunk, flush=True)

    # Stage 2: one knob at a time from the defaults (an ablation), keeping whatever improves half A.
    base = RetrievalSettings()
    retriever = Retriever(snapshot, embedder, base)
    grid = {
        "method": ["rrf"],
        "dense_weight": [0.0, 0.4],
        "per_article": [0, 2, 3, 4],
        "per_source": [False],
        "source_clauses": [False],
        "strip_sources": [False],
        "split_parts": [False],
        "global_turn": [True],
        "date_boost": [0.0],  # BM25's tokenizing (title, stemmer) is fixed when the index is built
    }
    best, best_row = base, run("fusion", "defaults", retriever)
    for knob, values in grid.items():
        for value in values:
            if getattr(best, knob) == value:
                continue
            settings = replace(best, **{knob: value})
            if knob == "dense_weight":
                settings = replace(settings, keyword_weight=round(1 - value, 2))
            row = run("fusion", f"{knob}={value}", retriever.with_settings(settings))
            if objective(row["A"]) > objective(best_row["A"]) + args.min_gain:
                best, best_row = settings, row
        retriever = retriever.with_settings(best)
    print("settings chosen on A:", best, flush=True)
    if best != base:
        run("final", "chosen", retriever.with_settings(best))
    write_table(args.out, rows, best_chunk, best)


def write_table(out: Path, rows: list[dict], chunk: ChunkSettings, settings: RetrievalSettings) -> None:
    """The grid as a Markdown table (half A chose, half B checks), plus the raw rows as JSON."""
    lines = [
        "# Retrieval tuning on MultiHop-RAG dev (benchmarks/tune_retrieval.py)",
        "",
        "Queries split by a hash of their text: every choice was made on half A; half B is held out.",
        "A knob leaves its default only if half A's hits@10 + evidence_recall@10 rises by more than --min-gain (0.005).",
        f"Chosen chunking: `{asdict(chunk) if chunk else '(run not finished)'}`",
        f"Chosen retrieval settings: `{asdict(settings) if settings else '(run not finished)'}`",
        "",
        "| stage | config | retriever | A hits@10 | A ev.recall@10 | A mrr@10 | B hits@4 | B hits@10 | B mrr@10 | B ev.recall@10 | B all_ev@10 | p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a, b = row["A"], row["B"]
        lines.append(
            f"| {row['stage']} | {row['config']} | {row['retriever']} | {a['hits@10']:.3f} | {a['evidence_recall@10']:.3f} | "
            f"{a['mrr@10']:.3f} | {b['hits@4']:.3f} | {b['hits@10']:.3f} | {b['mrr@10']:.3f} | {b['evidence_recall@10']:.3f} | "
            f"{b['all_evidence@10']:.3f} | {b['p50_ms']} |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    if chunk:
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
