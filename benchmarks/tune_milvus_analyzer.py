"""Which Milvus analyzer gives BM25 rankings closest to the local store's (bm25s with PyStemmer)?

    python benchmarks/tune_milvus_analyzer.py --out results/milvus_analyzer.json

Chunks the MultiHop-RAG corpus as a build does, indexes title + chunk text both with the local store's BM25
(index/stores/keyword.py) and in a Milvus Lite collection per candidate analyzer (Milvus' BM25 function,
k1 1.5, b 0.75), and runs the dev questions through BM25 alone. For each analyzer: hits@10 and
evidence_recall@10 of that BM25 ranking, and how many of the local store's top 10 it shares. No embedding:
this isolates the keyword side, the one where the stores differ.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "bench" / "multihop-rag"
K = 10


def candidates() -> dict[str, dict]:
    """The analyzers tried: Milvus' built-in English one, and the local store's rules rebuilt from Milvus filters."""
    from index.stores.milvus_schema import ANALYZER

    return {
        "english (built-in)": {"type": "english"},
        "standard + lowercase + stemmer (no stop words)": {
            "tokenizer": "standard", "filter": ["lowercase", {"type": "stemmer", "language": "english"}]},
        "standard + lowercase + local stop words + stemmer (chosen)": ANALYZER,
        "chosen + asciifolding": {**ANALYZER, "filter": ["lowercase", "asciifolding", *ANALYZER["filter"][1:]]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus.json")
    parser.add_argument("--queries", type=Path, default=SHARED / "queries_dev.json")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="milvus-analyzer-") as work:
        results = compare(args.corpus, args.queries, Path(work))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


def compare(corpus: Path, queries_file: Path, work: Path) -> dict:
    """BM25 figures of the local store and of each candidate analyzer, with their overlap."""
    os.environ.setdefault("RUST_LOG", "error")
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    from index.build import chunk_articles
    from index.chunking import ChunkSettings
    from index.corpus import read_corpus
    from index.evaluate import load_queries, score_ranking
    from index.stores.keyword import KeywordIndex, build_keyword_index
    from index.stores.milvus_schema import BM25_PARAMS

    articles = {a.id: a for a in read_corpus(corpus).articles}
    chunks, _ = chunk_articles(tuple(articles.values()), ChunkSettings(), 0)
    texts = [f"{articles[c.article_id].title}\n{c.text}" for c in chunks]
    queries = [q for q in load_queries(queries_file) if q.facts]

    def figures(rank) -> dict:
        rows = [score_ranking([chunks[i].text for i in rank(q.query)], q.facts, K) for q in queries]
        return {name: round(float(np.mean([row[name] for row in rows])), 4) for name in ("hits@k", "evidence_recall@k")}

    build_keyword_index(texts, work / "bm25")
    local_index = KeywordIndex(work / "bm25")

    def local_rank(query: str) -> list[int]:
        scores = local_index.scores(query)
        if scores is None:
            return []
        top = np.argsort(-scores, kind="stable")[:K]
        return [int(i) for i in top if scores[i] > 0]

    local = {q.query: local_rank(q.query) for q in queries}
    results = {"queries": len(queries), "chunks": len(chunks), "local (bm25s + PyStemmer)": figures(lambda q: local[q])}
    client = MilvusClient(str(work / "analyzers.db"))
    for name, analyzer in candidates().items():
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("text", DataType.VARCHAR, max_length=65_535, enable_analyzer=True, analyzer_params=analyzer)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["sparse"]))
        index = client.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="IP")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
        collection = f"c{len(results)}"
        client.create_collection(collection, schema=schema, index_params=index, consistency_level="Strong")
        for start in range(0, len(texts), 1000):
            client.insert(collection, [dict(id=i, text=texts[i], v=[1.0, 0.0]) for i in range(start, min(len(texts), start + 1000))])
        began = time.perf_counter()
        ranked = {q.query: [hit["id"] for hit in client.search(collection, data=[q.query], anns_field="sparse", limit=K)[0]] for q in queries}
        shared = np.mean([len(set(ranked[q.query]) & set(local[q.query])) / max(1, len(local[q.query])) for q in queries])
        results[name] = {**figures(lambda q: ranked[q]), "shares_local_top10": round(float(shared), 3),
                         "search_ms": round((time.perf_counter() - began) * 1000 / len(queries), 2), "analyzer": analyzer}
        print(name, results[name] | {"analyzer": "..."}, flush=True)
    results["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    client.close()
    return results


if __name__ == "__main__":
    main()
