"""Benchmark indexing and search on a MultiHop-RAG-format corpus (a script, not a test).

    python benchmarks/bench_index.py --corpus /work/shared/bench/multihop-rag/corpus.json \\
        --out results/bench_index.json

Measures, with the real embedder:
  - a full build of the corpus (seconds, chunks/s, and the reading/embedding/writing split);
  - an incremental re-index after one article changes (on a copy of the corpus and of the index);
  - search latency p50/p95 over dev queries, for the fused search and dense-only.
The full index is left in --index-dir (default /tmp/byline-bench-index) for others to reuse.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from index.build import build_index  # noqa: E402
from index.chunking import ChunkSettings  # noqa: E402
from index.embed import SentenceTransformerEmbedder  # noqa: E402
from index.stores.local import LocalBackend  # noqa: E402
from server.settings import Settings  # noqa: E402


class StageClock:
    """A build_index progress callback that records when each stage starts and ends."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: dict[str, list[float]] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter() - self.started
        self.stages.setdefault(stage, [now, now])[1] = now
        if stage == "embedding" and total and sys.stderr.isatty():
            print(f"\rembedding {done}/{total}", end="", file=sys.stderr, flush=True)

    def seconds(self) -> dict[str, float]:
        """Seconds spent in each stage (from its first to its last report)."""
        names = list(self.stages)
        out = {}
        for name, following in zip(names, names[1:] + [None]):
            end = self.stages[following][0] if following else self.stages[name][1]
            out[name] = round(end - self.stages[name][0], 3)
        return out


class Bf16Embedder:
    """Runs another embedder under CPU bf16 autocast (a bench-only trial: vectors match fp32 to cosine 0.9999+)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim

    def embed(self, texts, progress=None):
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.inner.embed(texts, progress=progress)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values fall (nearest rank).

    >>> percentile([1, 2, 3, 4], 0.5)
    2
    """
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def full_build(corpus: Path, index_dir: Path, embedder, chunk: ChunkSettings) -> dict:
    clock = StageClock()
    cpu = time.process_time()
    summary = build_index(corpus, index_dir, embedder, chunk, full=True, progress=clock, wait=True)
    cpu = time.process_time() - cpu  # all threads: less sensitive than wall time to other users of the cores
    return {
        "seconds": round(summary.seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "articles": summary.added,
        "skipped": len(summary.skipped),
        "chunks": summary.chunks_total,
        "chunks_per_second": round(summary.chunks_embedded / summary.seconds, 1),
        "embedding_chunks_per_second": round(summary.chunks_embedded / clock.seconds()["embedding"], 1),
        "stage_seconds": clock.seconds(),
    }


def one_article_changed(corpus: Path, index_dir: Path, embedder, chunk: ChunkSettings) -> dict:
    """Copy the corpus (same file name, so the same article ids) and the index, edit one record, rebuild."""
    with tempfile.TemporaryDirectory(prefix="byline-bench-") as work:
        work = Path(work)
        records = json.loads(corpus.read_text(encoding="utf-8"))
        records[len(records) // 2]["body"] += "\n\nUpdate: the company confirmed the figures on Friday."
        copy = work / corpus.name
        copy.write_text(json.dumps(records), encoding="utf-8")
        shutil.copytree(index_dir, work / "index")
        clock = StageClock()
        started = time.perf_counter()
        summary = build_index(copy, work / "index", embedder, chunk, progress=clock)
        seconds = time.perf_counter() - started
        load_started = time.perf_counter()
        LocalBackend(work / "index").open(embedding_model=embedder.name, dim=embedder.dim, chunk=chunk)
        return {
            "seconds": round(seconds, 2),
            "changed": summary.changed,
            "unchanged": summary.unchanged,
            "chunks_embedded": summary.chunks_embedded,
            "stage_seconds": clock.seconds(),
            "load_index_seconds": round(time.perf_counter() - load_started, 3),
        }


def search_latency(index_dir: Path, queries: Path, embedder, chunk: ChunkSettings, count: int) -> dict:
    try:
        from index.retrieve import Retriever
    except ImportError:
        return {"note": "index.retrieve.Retriever is not available; search latency not measured"}
    started = time.perf_counter()
    snapshot = LocalBackend(index_dir).open(embedding_model=embedder.name, dim=embedder.dim, chunk=chunk)
    loaded = time.perf_counter() - started
    retriever = Retriever(snapshot, embedder)
    ready = time.perf_counter() - started
    questions = [q["query"] for q in json.loads(queries.read_text(encoding="utf-8"))]
    step = max(1, len(questions) // count)
    sample = questions[::step][:count]
    retriever.search(sample[0], k=10)  # warm-up
    out = {"queries": len(sample), "load_index_seconds": round(loaded, 3), "retriever_ready_seconds": round(ready, 3)}
    for name, search in (("fused", retriever.search), ("dense", retriever.dense), ("keyword", retriever.keyword)):
        times = []
        for question in sample:
            began = time.perf_counter()
            search(question, k=10)
            times.append((time.perf_counter() - began) * 1000)
        out[name] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
            "mean_ms": round(statistics.fmean(times), 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "bench" / "multihop-rag" / "corpus.json")
    parser.add_argument("--queries", type=Path, help="default: queries_dev.json next to the corpus")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_index.json")
    parser.add_argument("--index-dir", type=Path, default=Path("/tmp/byline-bench-index"))
    parser.add_argument("--queries-count", type=int, default=100)
    parser.add_argument("--reuse", action="store_true", help="skip the full build if --index-dir holds one")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: CPU autocast around the embedder")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    queries = args.queries or args.corpus.parent / "queries_dev.json"

    settings = Settings()
    chunk = settings.chunk_settings()
    started = time.perf_counter()
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    if args.precision == "bf16":
        embedder = Bf16Embedder(embedder)
    if args.threads:
        __import__("torch").set_num_threads(args.threads)
    results: dict = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "torch_threads": __import__("torch").get_num_threads(),
        },
        "corpus": str(args.corpus),
        "embedding_model": embedder.name,
        "precision": args.precision,
        "chunk": {"words": chunk.words, "overlap_words": chunk.overlap_words, "embed_metadata": chunk.embed_metadata},
        "model_load_seconds": round(time.perf_counter() - started, 2),
        "baseline": {"llamaindex_chunks_per_second": 17.2, "llamaindex_ingest_seconds": 432, "llamaindex_query_p50_ms": 30},
    }
    if args.reuse and (args.index_dir / "CURRENT").exists():
        results["full_build"] = {"note": f"reused the index in {args.index_dir}"}
    else:
        print("full build ...", file=sys.stderr, flush=True)
        results["full_build"] = full_build(args.corpus, args.index_dir, embedder, chunk)
    print("\none article changed ...", file=sys.stderr, flush=True)
    results["one_article_changed"] = one_article_changed(args.corpus, args.index_dir, embedder, chunk)
    print("search latency ...", file=sys.stderr, flush=True)
    results["search"] = search_latency(args.index_dir, queries, embedder, chunk, args.queries_count)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["index_dir"] = str(args.index_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
