"""Scale benchmark: synthetic indexes of N chunks, built without embedding, served by a real server process.

    python benchmarks/bench_scale.py --sizes 100000,1000000 [--store local|milvus] --out results/bench_scale.json

For each size it writes `{STORE: {N: {build_s, disk_mb, start_s, rss_mb, search_p50_ms, search_p95_ms, ...}}}`:

- Text: sentences of the MultiHop-RAG corpus resampled into synthetic articles of CHUNKS_PER_ARTICLE chunks
  (titles, sources and dates drawn from real articles), so BM25 sees real vocabulary and real word frequencies.
- Vectors: random unit vectors (dim 384), written through the store's own writer (`Backend.begin_build`);
  build_s is the writer's time (add + commit: SQLite and FTS5, FAISS, BM25), not the text generation.
- start_s: a server process (`create_app` under uvicorn, as `byline serve` runs it) from spawn until /readyz
  answers 200. Its embedder is a word-hashing one (no model to load), and it has no LLM, so the figure is the
  index's share of a start; loading MiniLM and the LLM adds their own seconds on top.
- rss_mb: the server's resident memory right after /readyz, and again after the searches.
- search: GET /api/search (fused search, k=10) for dev questions of MultiHop-RAG, over HTTP, after a warm-up.
Milvus: `--store milvus` builds through index/stores/milvus.py into BYLINE_MILVUS_URI if it is a server's
http:// URI, else into a Milvus Lite file in the size's work folder (disk_mb is then that file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "bench" / "multihop-rag"
DIM = 384
CHUNKS_PER_ARTICLE = 11  # as MultiHop-RAG: 6,807 chunks of 609 articles
SENTENCES_PER_CHUNK = 8
ARTICLES_PER_ADD = 2_000


class HashEmbedder:
    """Hashed bag-of-words unit vectors of dimension 384: no model to load, a few microseconds a query."""

    name = "bench-hash-384"
    dim = DIM

    def embed(self, texts, progress=None, threads=None):
        vectors = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % DIM] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


def synthetic_batches(corpus: Path, size: int, seed: int = 0):
    """(articles, hashes, chunks, vectors) batches holding `size` chunks in all, resampled from the corpus."""
    from index.chunking import split_sentences
    from index.types import Article, Chunk

    records = json.loads(corpus.read_text(encoding="utf-8"))
    sentences = [body[s:e] for r in records for body in [r.get("body", "")] for s, e in split_sentences(body)]
    rng = np.random.default_rng(seed)
    chunk_id, article_number = 0, 0
    while chunk_id < size:
        articles, chunks = [], []
        for _ in range(ARTICLES_PER_ADD):
            count = min(CHUNKS_PER_ARTICLE, size - chunk_id)
            if count <= 0:
                break
            record = records[int(rng.integers(len(records)))]
            picks = rng.integers(len(sentences), size=(count, SENTENCES_PER_CHUNK))
            parts = [" ".join(sentences[i] for i in row) for row in picks]
            text, start = "", 0
            article_id = f"synthetic-{article_number:08d}"
            for part in parts:
                chunks.append(Chunk(chunk_id, article_id, start, start + len(part), part))
                text += part + "\n\n"
                start = len(text)
                chunk_id += 1
            articles.append(Article(article_id, text, f"{record.get('title', '')} ({article_number})", record.get("source", ""),
                                    "", "", record.get("published_at", ""), f"synthetic/{article_number}.md"))
            article_number += 1
        vectors = rng.standard_normal((len(chunks), DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        yield articles, {a.id: "synthetic" for a in articles}, chunks, vectors


def build(settings, corpus: Path, size: int) -> dict:
    """Write a synthetic index of `size` chunks through the store's writer; time the writer only."""
    from index.stores.base import FORMAT_VERSION, Manifest, store_backend

    backend = store_backend(settings)
    writer_seconds, started = 0.0, time.perf_counter()
    with backend.lock(wait=True):
        begin = time.perf_counter()
        writer = backend.begin_build(full=True)
        writer_seconds += time.perf_counter() - begin
        for articles, hashes, chunks, vectors in synthetic_batches(corpus, size):
            begin = time.perf_counter()
            writer.add(articles, hashes, chunks, vectors)
            writer_seconds += time.perf_counter() - begin
        manifest = Manifest(FORMAT_VERSION, HashEmbedder.name, DIM, 200, 40, True,
                            datetime.now(timezone.utc).isoformat(timespec="seconds"), 0, 0, size, "synthetic")
        begin = time.perf_counter()
        writer.commit(manifest)
        writer_seconds += time.perf_counter() - begin
    store = backend.open()
    if hasattr(backend, "close"):
        backend.close()  # a Milvus Lite file opens in one process at a time: the server's, next
    return {"build_s": round(writer_seconds, 1), "build_with_text_generation_s": round(time.perf_counter() - started, 1),
            "chunks": store.counts()[1], "articles": store.counts()[0], "vector_index": store.manifest.vector_index}


def serve(index_dir: Path, port: int) -> None:
    """The server the benchmark starts: the app `byline serve` runs, with the hashing embedder and no LLM."""
    import uvicorn

    from server.api.app import create_app
    from server.settings import Settings

    settings = Settings(index_dir=index_dir)
    llm = type("NoLLM", (), {"name": "none"})()
    uvicorn.run(create_app(settings, embedder=HashEmbedder(), llm=llm), host="127.0.0.1", port=port, log_level="warning")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children in MB (Milvus Lite's engine is a child of the server)."""
    kilobytes = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            kilobytes = int(line.split()[1])
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()]
    return round(kilobytes / 1024 + sum(rss_mb(child) for child in children), 1)


def measure_server(index_dir: Path, questions: list[str]) -> dict:
    """Start the server, time it until /readyz, read its RSS, time fused searches over HTTP."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "BYLINE_INDEX_DIR": str(index_dir)}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(index_dir), "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("the server exited before /readyz answered")
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        start_s = time.perf_counter() - started
        memory = rss_mb(process.pid)
        latencies = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for question in questions[:5]:
                client.get("/api/search", params={"q": question, "k": 10}).raise_for_status()
            for question in questions:
                begin = time.perf_counter()
                client.get("/api/search", params={"q": question, "k": 10}).raise_for_status()
                latencies.append((time.perf_counter() - begin) * 1000)
        return {"start_s": round(start_s, 2), "rss_mb": memory, "rss_after_searches_mb": rss_mb(process.pid),
                "search_p50_ms": round(float(np.percentile(latencies, 50)), 1),
                "search_p95_ms": round(float(np.percentile(latencies, 95)), 1), "searches": len(latencies)}
    finally:
        process.terminate()
        process.wait(30)


def disk_mb(path: Path) -> float:
    """Size of a file, or of everything in a folder, in MB."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--store", choices=["local", "milvus"], default=os.environ.get("BYLINE_STORE", "local"))
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus.json")
    parser.add_argument("--queries", type=Path, default=SHARED / "queries_dev.json")
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("/tmp/byline-bench-scale"))
    parser.add_argument("--out", type=Path, required=False)
    parser.add_argument("--reuse", action="store_true", help="keep an index built by an earlier run (its build figures from --out)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.port)
    os.environ["BYLINE_STORE"] = args.store
    from server.settings import Settings

    questions = [q["query"] for q in json.loads(args.queries.read_text(encoding="utf-8"))][: args.searches]
    results = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    for size in (int(s) for s in args.sizes.split(",")):
        index_dir = args.work / f"{args.store}-{size}"
        if args.store == "milvus" and not os.environ.get("BYLINE_MILVUS_URI", "").startswith("http"):
            os.environ["BYLINE_MILVUS_URI"] = str(index_dir / "milvus.db")  # a Lite file per size
        settings = Settings(index_dir=index_dir)
        figures = {"load_before": [round(x, 2) for x in os.getloadavg()]}
        earlier = results.get(args.store, {}).get(str(size), {})
        if args.reuse and "build_s" in earlier:
            figures.update({key: earlier[key] for key in ("build_s", "build_with_text_generation_s", "chunks", "articles", "vector_index")})
        else:
            shutil.rmtree(index_dir, ignore_errors=True)
            figures.update(build(settings, args.corpus, size))
        milvus_file = Path(getattr(settings, "milvus_uri", "") or "/nonexistent")
        figures["disk_mb"] = disk_mb(milvus_file if args.store == "milvus" and milvus_file.exists() else index_dir)
        figures.update(measure_server(index_dir, questions))
        figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
        results.setdefault(args.store, {})[str(size)] = figures
        print(json.dumps({args.store: {str(size): figures}}), flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
