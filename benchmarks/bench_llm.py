"""Benchmark the in-process LLM backend: load time, prompt-eval and generation speed (a script, not a test).

    python benchmarks/bench_llm.py --out results/bench_llm.json [--model PATH] [--threads auto 1 2]

Prompts are news article bodies from a MultiHop-RAG-format corpus cut to a token count, a different article each
run so llama.cpp's prompt cache can't help. For each prompt size it reports, as medians over --runs:
  - llama.cpp's own counters: prompt-eval tokens/s and generation tokens/s;
  - what a caller sees through `LlamaCppLLM.generate`: time to first piece and pieces/s after it.
Each --threads setting ("auto" = the backend's default, which picks the cores others leave idle) gets its own model
instance, and the settings take turns on every prompt, so they see the same load. The load average is recorded
too: the machine is shared, and numbers taken under load are slower.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server.llm.llama_cpp import LlamaCppLLM, bundled_model_path  # noqa: E402
from server.settings import Settings  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "multihop-rag" / "corpus.json"


def article_prompts(corpus: Path, llm: LlamaCppLLM, tokens: int, count: int, skip: int) -> list[str]:
    """`count` prompts of about `tokens` tokens: the start of successive article bodies, then "Summary:"."""
    articles = json.loads(corpus.read_text(encoding="utf-8"))
    prompts = []
    for article in articles[skip:]:
        ids = llm._llama.tokenize(article["body"].encode("utf-8"), add_bos=False)
        if len(ids) < tokens:
            continue
        text = llm._llama.detokenize(ids[: tokens - 4]).decode("utf-8", "ignore")
        prompts.append(text + "\n\nSummary:")
        if len(prompts) == count:
            break
    return prompts


def measure(llm: LlamaCppLLM, prompt: str, max_tokens: int) -> dict:
    """One generation: llama.cpp's perf counters and the wall-clock view of a streaming caller."""
    import llama_cpp

    ctx = llm._llama._ctx.ctx
    llama_cpp.llama_perf_context_reset(ctx)
    started = time.perf_counter()
    first = None
    pieces = 0
    # repeat_penalty 1.0 and no stop: the model should run to max_tokens so the generation rate is measured.
    for _ in llm.generate(prompt, max_tokens=max_tokens, repeat_penalty=1.0, temperature=0.0):
        pieces += 1
        if first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    perf = llama_cpp.llama_perf_context(ctx)
    return {
        "prompt_tokens": perf.n_p_eval,
        "generated_tokens": perf.n_eval,
        "prompt_eval_tok_s": perf.n_p_eval / (perf.t_p_eval_ms / 1000) if perf.t_p_eval_ms else None,
        "generation_tok_s": perf.n_eval / (perf.t_eval_ms / 1000) if perf.t_eval_ms else None,
        "time_to_first_piece_s": (first or ended) - started,
        "pieces": pieces,
        "pieces_per_s_after_first": (pieces - 1) / (ended - first) if first and pieces > 1 and ended > first else None,
        "total_s": ended - started,
        "threads_used": llm.threads,
    }


def median_of(runs: list[dict]) -> dict:
    """The median of every numeric field over the runs."""
    return {
        key: round(statistics.median(run[key] for run in runs), 3)
        for key in runs[0]
        if all(run[key] is not None for run in runs)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="GGUF file (default: the bundled Gemma 3 270M Q4_K_M)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", nargs="+", default=["auto"], help="thread settings to compare: auto or a number")
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 700, 1300], help="prompt sizes in tokens")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_llm.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="byline-bench-llm-") as scratch:
        started = time.perf_counter()
        bundled_model_path(Path(scratch))  # a first assembly, with its sha256 check
        first_assembly_s = time.perf_counter() - started
    started = time.perf_counter()
    model = args.model or bundled_model_path(settings.llm_cache_dir)
    cached_path_s = time.perf_counter() - started
    loads = []
    for _ in range(3):
        llm = LlamaCppLLM(model, n_ctx=2048)
        loads.append(llm.load_seconds)
        llm.close()
    models = {
        name: LlamaCppLLM(model, n_ctx=2048, n_threads=None if name == "auto" else int(name), timeout=900)
        for name in args.threads
    }
    for llm in models.values():
        list(llm.generate("Hello", max_tokens=2))  # warm-up: first-call costs are not what a server pays

    by_threads: dict[str, dict] = {name: {} for name in models}
    first = next(iter(models.values()))
    for index, size in enumerate(args.sizes):
        prompts = article_prompts(args.corpus, first, size, args.runs * len(models), skip=index * 40)
        runs: dict[str, list[dict]] = {name: [] for name in models}
        for run in range(args.runs):
            for offset, (name, llm) in enumerate(models.items()):
                runs[name].append(measure(llm, prompts[run * len(models) + offset], args.max_tokens))
        for name in models:
            by_threads[name][str(size)] = {"median": median_of(runs[name]), "runs": runs[name]}
            print(f"threads={name:>4} {size:>5} prompt tokens: {by_threads[name][str(size)]['median']}", file=sys.stderr)

    result = {
        "model": str(model),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.platform(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "first_assembly_s": round(first_assembly_s, 3),
        "cached_model_path_s": round(cached_path_s, 4),
        "load_s_median": round(statistics.median(loads), 3),
        "load_s_runs": [round(x, 3) for x in loads],
        "max_tokens": args.max_tokens,
        "by_threads_and_prompt_tokens": by_threads,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "by_threads_and_prompt_tokens"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
