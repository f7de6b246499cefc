"""Benchmark indexing and search on a MultiHop-RAG-format corpus (a script, not a test).

    python benchmarks/bench_index.py --corpus /work/shared/bench/multihop-rag/corpus.json \\
        --out results/bench_index.json [--backend onnx|torch] [--retrieval]

Measures, with the real embedder of the chosen backend (default: the settings' choice, ONNX int8):
  - a full build of the corpus (seconds, chunks/s, the embedder that built it, and when each stage ran:
    reading overlaps embedding);
  - an incremental re-index after one article changes (on a copy of the corpus and of the index);
  - query embedding latency (one dev question at a time) and search latency p50/p95, fused and dense-only;
  - `byline search` in a fresh process on an index of the sample corpus/ (wall seconds, and whether torch loaded);
  - with --retrieval, the dev-set retrieval figures on the built index (index/evaluate.py).
The load average goes next to every figure: the machine may be shared. The full index is left in
--index-dir (default /tmp/byline-bench-index) for others to reuse.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
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
from index.embed import choose_backend, for_job, load_embedder  # noqa: E402
from index.stores.local import LocalBackend  # noqa: E402
from server.settings import Settings  # noqa: E402

SEARCH_QUERY = "Dongfeng plant Italy"
HEAVY_MODULES = ("torch", "sentence_transformers", "transformers")


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


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

    def spans(self) -> dict[str, list[float]]:
        """Each stage's first and last report, in seconds from the start (reading overlaps embedding)."""
        return {name: [round(first, 3), round(last, 3)] for name, (first, last) in self.stages.items()}

    def seconds(self, stage: str) -> float:
        """Seconds from a stage's first report to its last."""
        first, last = self.stages.get(stage, (0.0, 0.0))
        return last - first


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
        "embedding_chunks_per_second": round(summary.chunks_embedded / max(clock.seconds("embedding"), 1e-9), 1),
        "build_embedder": build_embedder(embedder, summary.chunks_embedded),
        "stage_spans_seconds": clock.spans(),
        "load_average": load_average(),
    }


def build_embedder(embedder, chunks: int) -> str:
    """Which embedder a build of `chunks` chunks ran on, e.g. "SentenceTransformerEmbedder bf16"."""
    chosen = for_job(embedder, chunks)
    return f"{type(chosen).__name__} {getattr(chosen, 'precision', '')}".strip()


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
            "stage_spans_seconds": clock.spans(),
            "load_index_seconds": round(time.perf_counter() - load_started, 3),
            "load_average": load_average(),
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
    embed_one = lambda question, k: embedder.embed([question])  # noqa: E731
    searches = (("query_embedding", embed_one), ("fused", retriever.search), ("dense", retriever.dense), ("keyword", retriever.keyword))
    for name, search in searches:
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
    out["load_average"] = load_average()
    return out


def cold_search(corpus: Path, settings: Settings, runs: int) -> dict:
    """Wall time of `byline search` in a fresh process on an index of the sample corpus, and what it imported."""
    with tempfile.TemporaryDirectory(prefix="byline-bench-sample-") as work:
        index_dir = Path(work) / "index"
        build_index(corpus, index_dir, load_embedder(settings.embedder_spec()), settings.chunk_settings(), wait=True)
        probe = (
            "import sys; from server.cli import main; code = main(sys.argv[1:]); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY_MODULES)!r}), file=sys.stderr); sys.exit(code)"
        )
        command = [sys.executable, "-c", probe, "search", SEARCH_QUERY, "--index-dir", str(index_dir)]
        walls, heavy = [], ""
        for _ in range(runs):
            began = time.perf_counter()
            run = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
            walls.append(time.perf_counter() - began)
            if run.returncode != 0:
                raise SystemExit(f"byline search failed: {run.stderr}")
            heavy = run.stderr.strip().splitlines()[-1]
        return {
            "command": f"byline search {SEARCH_QUERY!r} --index-dir <index of {corpus}>",
            "runs": runs,
            "wall_seconds_p50": round(statistics.median(walls), 2),
            "wall_seconds_max": round(max(walls), 2),
            "heavy_modules_loaded": heavy,
            "load_average": load_average(),
        }


def retrieval(corpus: Path, queries: Path, index_dir: Path, embedder, chunk: ChunkSettings) -> dict:
    """hits@10 and evidence_recall@10 of each retriever on the dev queries, on the index just built."""
    from index.evaluate import evaluate_retrieval

    summary = evaluate_retrieval(corpus, queries, index_dir, embedder, chunk=chunk)
    figures = ("hits@10", "evidence_recall@10", "mrr@10")
    out = {name: {f: scores[f] for f in figures} for name, scores in summary["retrievers"].items()}
    return {**out, "queries": summary["evaluated"], "load_average": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "bench" / "multihop-rag" / "corpus.json")
    parser.add_argument("--queries", type=Path, help="default: queries_dev.json next to the corpus")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_index.json")
    parser.add_argument("--index-dir", type=Path, default=Path("/tmp/byline-bench-index"))
    parser.add_argument("--queries-count", type=int, default=100)
    parser.add_argument("--reuse", action="store_true", help="skip the full build if --index-dir holds one")
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], help="default: BYLINE_EMBEDDING_BACKEND")
    parser.add_argument("--sample-corpus", type=Path, default=REPO / "corpus", help="corpus of the cold-search index")
    parser.add_argument("--search-runs", type=int, default=5)
    parser.add_argument("--retrieval", action="store_true", help="also evaluate retrieval on the dev queries")
    args = parser.parse_args()
    queries = args.queries or args.corpus.parent / "queries_dev.json"

    settings = Settings(**({"embedding_backend": args.backend} if args.backend else {}))
    chunk = settings.chunk_settings()
    started = time.perf_counter()
    embedder = load_embedder(settings.embedder_spec())
    results: dict = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_average(),
            "python": platform.python_version(),
            "note": "shared machine: other engineers' jobs ran meanwhile; see each figure's load_average",
        },
        "corpus": str(args.corpus),
        "embedding_model": embedder.name,
        "backend": choose_backend(settings.embedder_spec()),
        "chunk": {"words": chunk.words, "overlap_words": chunk.overlap_words, "embed_metadata": chunk.embed_metadata},
        "model_load_seconds": round(time.perf_counter() - started, 2),
        "baseline": {"llamaindex_ingest_seconds_quiet": 480, "note": "issue 10; benchmarks/bench_llamaindex.py measures it"},
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
    print("cold byline search ...", file=sys.stderr, flush=True)
    results["cold_search"] = cold_search(args.sample_corpus, settings, args.search_runs)
    if args.retrieval:
        print("retrieval on the dev queries ...", file=sys.stderr, flush=True)
        results["retrieval"] = retrieval(args.corpus, queries, args.index_dir, embedder, chunk)
    results["machine"]["load_average_at_end"] = load_average()
    results["index_dir"] = str(args.index_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
