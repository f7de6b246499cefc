"""How far citation precision can go with the evidence Byline retrieves, and whether the bundled model helps
choose the articles (writes results/citation_ceiling.json).

About 90 % of an answer's citations are `compose.clause_picks`: for each outlet a question names, the outlet's
passage that best matches the words around the mention. Their precision sets the answer's. For every mention
this counts whether any passage of that outlet is a gold evidence article, whether the pick is, and what a
perfect pick among the passages would reach. With `--lm-rerank` it also re-picks each mention with several
candidates after adding the bundled model's log-likelihood of the mention's words given the article (UPR,
Sachan et al. 2022: "Improving Passage Retrieval with Zero-Shot Question Generation") to the pick's score, and
times that scoring.

Run from the repo root (the index is built from --corpus first if --index-dir holds none):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/citation_ceiling.py --index-dir /tmp/answer-idx --lm-rerank
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from server.answering import answer as answer_module
from server.answering.compose import clause_picks, outlet_clauses
from server.answering.evaluate import (
    NULL,
    normalize,
    read_queries,
    score_record,
    stratified_sample,
    summarize,
)
from server.answering.evidence import source_of, sources_named

DATA = ROOT.parent / "shared" / "bench" / "multihop-rag"
WEIGHTS = (
    0.5,
    1.0,
    2.0,
    4.0,
)  # how much the model's per-token log-likelihood counts beside the pick's score


def samples(queries: list[dict], limit: int) -> dict[str, list[dict]]:
    """The reported sample (seed 0) and the tuning sample drawn from the other queries (seed 1), as evaluate uses."""
    reported = stratified_sample(queries, limit, seed=0)
    seen = {q["query"] for q in reported}
    return {
        "reported": reported,
        "tuning": stratified_sample([q for q in queries if q["query"] not in seen], limit, seed=1),
    }


def is_gold(hit, query: dict) -> bool:
    """Whether a hit's article is one of the query's gold evidence articles (by url, else by title)."""
    return any(
        (hit.url and hit.url == e.get("url")) or (hit.title and normalize(hit.title) == normalize(e.get("title", ""))) for e in query["evidence_list"]
    )


def collect(answerer, queries: list[dict]) -> list[tuple[dict, dict, list]]:
    """(query, answer dict, the passages compose was given) for each query; the passages are None on abstention."""
    real, seen = answer_module.compose, {}

    def spy(question, passages, *args):
        seen["passages"] = passages
        return real(question, passages, *args)

    answer_module.compose = spy
    try:
        rows = []
        for query in queries:
            seen.clear()
            rows.append((query, answerer.answer(query["query"]).to_dict(), seen.get("passages")))
        return rows
    finally:
        answer_module.compose = real


def mentions_of(question: str, passages: list) -> tuple[list, list[tuple[str, list]]]:
    """The passages compose picks from (the named outlets' when there are any) and, per outlet mention, the words
    around it and its candidate passages, as `clause_picks` sees them."""
    named = sources_named(question, [source_of(p) for p in passages])
    own = [p for p in passages if source_of(p) in named] or list(passages)
    return own, [(" ".join(around.split()), [p for p in own if source_of(p) in sources]) for around, sources in outlet_clauses(question, own)]


class Likelihood:
    """log P(text | an article) under a llama.cpp model, computing logits only for the scored tokens (through
    llama-cpp-python 0.3's Llama internals: its public calls compute logits for every token or only the last)."""

    def __init__(self, llama):
        self.llama = llama

    def __call__(self, passage, text: str) -> tuple[float, int]:
        """The summed log-probability of `text` after the passage's outlet, title and sentences, and its token count."""
        llama = self.llama
        prefix = llama.tokenize(
            f"{source_of(passage)} article: {passage.hit.title}\n{passage.text}\n\nA question about this article:".encode(),
            add_bos=True,
        )
        target = llama.tokenize(f" {text}".encode(), add_bos=False)
        llama.reset()
        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        llama.eval(prefix[:-1])
        batch = [prefix[-1], *target[:-1]]
        llama._batch.set_batch(batch=batch, n_past=llama.n_tokens, logits_all=True)
        llama._ctx.decode(llama._batch)
        logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(len(batch), llama._n_vocab)).astype(np.float64)
        top = logits.max(axis=1)
        log_norm = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        return float((logits[np.arange(len(target)), target] - log_norm).sum()), len(target)


def ceiling(rows, likelihood: Likelihood | None) -> dict:
    """Per-mention counts for the clause picks, the precision a perfect pick would reach, and (with a model) the
    re-picked mentions for each of WEIGHTS."""
    counts, seconds, scored_questions = Counter(), 0.0, 0
    for query, answer, passages in rows:
        if passages is None or answer["abstained"] or query["question_type"] == NULL:
            continue
        own, mentions = mentions_of(query["query"], passages)
        picks = clause_picks(query["query"], own)
        counts["mentions"] += len(mentions)
        counts["picks"] += len(picks)
        counts["picks_gold"] += sum(is_gold(p.hit, query) for p in picks)
        counts["citations"] += len(answer["citations"])
        counts["citations_of_picks"] += sum(any(c["url"] == p.hit.url for p in picks) for c in answer["citations"])
        timed, taken = False, []
        for around, candidates in mentions:
            candidates = [p for p in candidates if p not in taken]  # an outlet named twice speaks from two articles
            if not candidates:
                counts["no_candidate"] += 1
                continue
            pick = picks[len(taken)]
            taken.append(pick)
            gold = [p for p in candidates if is_gold(p.hit, query)]
            if not gold:
                counts["no_gold_candidate"] += 1
            elif len(candidates) == 1:
                counts["one_candidate_gold"] += 1
            else:
                counts["several_with_gold"] += 1
                counts["several_with_gold_right"] += pick in gold
                if likelihood is not None:
                    started = time.perf_counter()
                    lm = {p.n: likelihood(p, around) for p in candidates}
                    seconds += time.perf_counter() - started
                    timed = True
                    for weight in WEIGHTS:
                        shifted = [dataclasses.replace(p, score=p.score + weight * lm[p.n][0] / lm[p.n][1]) if p.n in lm else p for p in own]
                        repicked = clause_picks(query["query"], shifted)[len(taken) - 1]
                        counts[f"several_with_gold_right_lm_{weight}"] += is_gold(repicked.hit, query)
        scored_questions += timed
    several = counts["several_with_gold"]
    figures = {
        "counts": dict(counts),
        "picks_share_of_citations": counts["citations_of_picks"] / counts["citations"],
        "pick_precision": counts["picks_gold"] / counts["picks"],
        "right_pick_among_several": counts["several_with_gold_right"] / several,
        "perfect_pick_precision": (counts["one_candidate_gold"] + several) / counts["picks"],
    }
    if likelihood is not None:
        figures["lm_right_pick_among_several"] = {str(w): counts[f"several_with_gold_right_lm_{w}"] / several for w in WEIGHTS}
        figures["lm_seconds_per_question_scored"] = seconds / max(1, scored_questions)
    return figures


def main() -> None:
    """Collect each sample's answers and passages once, then count; print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DATA / "corpus.json")
    parser.add_argument("--queries", type=Path, default=DATA / "queries_dev.json")
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument(
        "--lm-rerank",
        action="store_true",
        help="also re-pick with the bundled model's likelihood",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "citation_ceiling.json")
    args = parser.parse_args()

    from server.answering.ask import load_answerer
    from server.settings import Settings

    settings = Settings().model_copy(
        update={
            "index_dir": args.index_dir,
            "corpus_dir": args.corpus,
            "use_llm": False,
        }
    )
    answerer = load_answerer(settings)
    likelihood = Likelihood(answerer.llm._llama) if args.lm_rerank else None
    report = {
        "load_average_start": os.getloadavg(),
        "index_dir": str(args.index_dir),
        "limit": args.limit,
    }
    for name, queries in samples(read_queries(args.queries), args.limit).items():
        rows = collect(answerer, queries)
        summary = summarize([score_record(q, a, []) for q, a, _ in rows])
        report[name] = {
            "citation_precision": summary["citation_precision"],
            "citation_recall": summary["citation_recall"],
            **ceiling(rows, likelihood),
        }
        print(name, json.dumps(report[name], indent=1), flush=True)
    report["load_average_end"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
