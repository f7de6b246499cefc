"""One query's embedding on each path Byline has for the bundled model (a script, not a test).

    python benchmarks/bench_query_embedding.py --queries ../shared/bench/multihop-rag/queries_dev.json \\
        --out results/bench_query_embedding.json

Times `embed([question])` for 100 dev questions, one thread, on: int8 ONNX (what queries use), fp32 ONNX, and
the bf16 TorchScript bulk embedder where the CPU has AMX. Each path runs `--rounds` times, alternating, and
every round's p50 is kept, so a machine that slows down mid-run shows in the spread rather than in one path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_index import load_average  # noqa: E402
from index.embed import has_bf16_matrix_units  # noqa: E402
from index.onnx_embed import OnnxEmbedder  # noqa: E402
from server.settings import Settings  # noqa: E402


def p50_ms(embedder, questions: list[str]) -> float:
    """The median wall time of embedding each question alone, in milliseconds (after one warm-up)."""
    embedder.embed([questions[0]], threads=1)
    times = []
    for question in questions:
        began = time.perf_counter()
        embedder.embed([question], threads=1)
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=Path, required=True, help="MultiHop-RAG-format query file")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_query_embedding.json")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    settings = Settings()
    questions = [q["query"] for q in json.loads(args.queries.read_text(encoding="utf-8"))]
    questions = questions[:: max(1, len(questions) // args.count)][: args.count]
    paths = {precision: OnnxEmbedder.load(settings.embedding_model, settings.embedding_cache_dir, precision=precision)
             for precision in ("int8", "fp32")}
    if has_bf16_matrix_units():
        from index.torchscript_embed import TorchScriptEmbedder

        paths["bf16 TorchScript"] = TorchScriptEmbedder.load(settings.embedding_model, settings.embedding_cache_dir, threads=1)
    started = load_average()
    rounds = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, embedder in paths.items():
            rounds[name].append(p50_ms(embedder, questions))
    result = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "questions": len(questions),
        "p50_ms_per_round": rounds,
        "load_average": {"start": started, "end": load_average()},
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
