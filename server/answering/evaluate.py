"""Evaluating answers on a MultiHop-RAG-format query file: accuracy beside trivial baselines, citations, abstention.

The judging and summarizing functions are pure; `evaluate_answers` is the shell that runs the Answerer.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from index.errors import CorpusFileError
from server.answering.abstain import unknown_publications
from server.settings import Settings

NULL = "null_query"
_REQUIRED = ("query", "answer", "question_type")


def normalize(text: str) -> str:
    """Lower-case words only, single-spaced.

    >>> normalize("  Sam Bankman-Fried's trial!")
    'sam bankman fried s trial'
    """
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def contains(haystack: str, needle: str) -> bool:
    """Whether normalized needle occurs in normalized haystack as whole words.

    >>> contains("Yes, Google did.", "google"), contains("Googled it", "google")
    (True, False)
    """
    n = normalize(needle)
    return bool(n) and f" {n} " in f" {normalize(haystack)} "


def verdict_of(answer: str) -> str:
    """The yes/no verdict an answer opens with ("Yes", "No"), or "" when it gives none.

    >>> verdict_of("Yes: Wire reports that Rome waits [1]."), verdict_of("Wire reports that no site was chosen [1].")
    ('Yes', '')
    """
    match = re.match(r"\W*(yes|no)\b", answer, re.IGNORECASE)
    return match.group(1).capitalize() if match else ""


def judge(answer: str, gold: str, candidates: Iterable[str] = ()) -> bool:
    """Whether an answer is right: for yes/no its opening verdict must match (words like "no" inside a reported
    sentence are no verdict); otherwise the gold appears and no other candidate does.

    >>> judge("Yes, both say so.", "Yes"), judge("Wire reports that no site was chosen.", "No"), judge("No [1].", "no")
    (True, False, True)
    >>> judge("Google [1].", "Google", ["Google", "Apple"]), judge("Google or Apple.", "Google", ["Google", "Apple"])
    (True, False)
    """
    g = normalize(gold)
    if g in ("yes", "no"):
        return verdict_of(answer).lower() == g
    if not contains(answer, gold):
        return False
    others = {normalize(c) for c in candidates} - {g}
    return not any(contains(answer, c) for c in others if c not in g and g not in c)


def read_queries(path: Path) -> list[dict]:
    """The queries of a MultiHop-RAG-format JSON file; a bad file raises CorpusFileError naming the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusFileError(f"{path}: can't read the query file: {exc}") from exc
    if not isinstance(data, list):
        raise CorpusFileError(f"{path}: expected a JSON list of queries")
    for i, item in enumerate(data):
        missing = [key for key in _REQUIRED if not isinstance(item, dict) or key not in item]
        if missing:
            raise CorpusFileError(f"{path}: query #{i} lacks the field(s) {', '.join(missing)}")
    return data


def stratified_sample(queries: Sequence[dict], limit: int | None, seed: int = 0) -> list[dict]:
    """About `limit` queries with each question type in its share of the file (all when limit is None).

    >>> qs = [{"question_type": t, "n": i} for i, t in enumerate("aaaaaabbbc")]
    >>> sorted(Counter(q["question_type"] for q in stratified_sample(qs, 5)).items())
    [('a', 3), ('b', 2), ('c', 1)]
    """
    if limit is None or limit >= len(queries):
        return list(queries)
    by_type: dict[str, list[dict]] = {}
    for query in queries:
        by_type.setdefault(query["question_type"], []).append(query)
    rng = random.Random(seed)
    sample = []
    for qtype, group in sorted(by_type.items()):
        share = max(1, round(limit * len(group) / len(queries)))
        sample.extend(rng.sample(group, min(share, len(group))))
    rng.shuffle(sample)
    return sample


def baselines(queries: Sequence[dict], sample: Sequence[dict]) -> dict:
    """Trivial answers' accuracy on the sample's non-null queries, with the answers taken from the query file.

    "yes": answer Yes to everything; "yes_or_top_inference": Yes to comparison/temporal questions and the file's
    most frequent inference answer to inference questions; "majority_by_type": each type's most frequent answer.
    """
    majority = {}
    for qtype in {q["question_type"] for q in queries}:
        answers = Counter(normalize(q["answer"]) for q in queries if q["question_type"] == qtype)
        majority[qtype] = answers.most_common(1)[0][0]
    top_inference = majority.get("inference_query", "yes")
    scored = [q for q in sample if q["question_type"] != NULL]

    def accuracy(pick) -> dict:
        result = {"all": _mean(judge(pick(q), q["answer"]) for q in scored)}
        for qtype in sorted({q["question_type"] for q in scored}):
            result[qtype] = _mean(judge(pick(q), q["answer"]) for q in scored if q["question_type"] == qtype)
        return result

    return {
        "yes": accuracy(lambda q: "Yes"),
        "yes_or_top_inference": accuracy(lambda q: top_inference if q["question_type"] == "inference_query" else "Yes"),
        "majority_by_type": accuracy(lambda q: majority[q["question_type"]]),
        "majority_answers": majority,
    }


def score_record(query: dict, answer: dict, candidates: Iterable[str]) -> dict:
    """The per-query figures of one answer (an `Answer.to_dict()`)."""
    gold = {}  # one entry per gold evidence article, keyed by url (or title)
    for evidence in query.get("evidence_list", []):
        gold.setdefault(evidence.get("url") or normalize(evidence.get("title", "")), normalize(evidence.get("title", "")))
    cited = answer["citations"]

    def is_gold(url: str, title: str) -> set:
        return {key for key, gold_title in gold.items() if (url and url == key) or (title and normalize(title) == gold_title)}

    from_gold = [bool(is_gold(c["url"], c["title"])) for c in cited]
    recalled = set().union(*(is_gold(c["url"], c["title"]) for c in cited)) if cited else set()
    sentences = answer["sentences"]
    opening = sentences[0]["text"] if sentences else answer["answer"]
    scored = query["question_type"] != NULL and not answer["abstained"]
    return {
        "query": query["query"],
        "type": query["question_type"],
        "gold": query["answer"],
        "answer": answer["answer"],
        "mode": answer["mode"],
        "abstained": answer["abstained"],
        "correct": None if query["question_type"] == NULL else (scored and judge(answer["answer"], query["answer"], candidates)),
        "direct_correct": None if query["question_type"] == NULL else (scored and judge(opening, query["answer"], candidates)),
        "verdict": verdict_of(answer["answer"]) if scored else "",
        "citations": len(cited),
        "cited_from_gold": sum(from_gold),
        "gold_articles": len(gold),
        "gold_articles_cited": len(recalled),
        "cited": [[c["url"], c["title"]] for c in cited],
        "sentences": len(sentences),
        "supported_sentences": sum(1 for s in sentences if s["supported"]),
        "first_sentence_s": answer["timings"].get("first_sentence_s"),
        "total_s": answer["timings"].get("total_s"),
        "evidence_score": answer.get("evidence_score"),
        "unknown_publication": answer["abstained"] and "holds no articles from" in answer.get("message", ""),
    }


def summarize(records: Sequence[dict]) -> dict:
    """Accuracy, citation precision/recall, abstention precision/recall/F1, support rate and timings.

    >>> r = {"type": "null_query", "correct": None, "abstained": True, "citations": 0, "cited_from_gold": 0,
    ...      "gold_articles": 0, "gold_articles_cited": 0, "sentences": 0, "supported_sentences": 0,
    ...      "first_sentence_s": None, "total_s": 1.0}
    >>> summarize([r])["abstain_recall"]
    1.0
    """
    answered = [r for r in records if r["type"] != NULL]
    nulls = [r for r in records if r["type"] == NULL]
    abstained = [r for r in records if r["abstained"]]
    true_abstentions = sum(1 for r in abstained if r["type"] == NULL)
    precision = true_abstentions / len(abstained) if abstained else None
    recall = true_abstentions / len(nulls) if nulls else None
    cited = sum(r["citations"] for r in answered)
    gold = sum(r["gold_articles"] for r in answered if not r["abstained"])
    sentences = sum(r["sentences"] for r in records)
    firsts = [r["first_sentence_s"] for r in records if r.get("first_sentence_s") is not None]
    verdicts = [r for r in answered if r.get("verdict")]
    totals = [r["total_s"] for r in records if r["total_s"] is not None]
    return {
        "queries": len(records),
        "accuracy": _mean(r["correct"] for r in answered),
        "direct_accuracy": _mean(r.get("direct_correct") for r in answered),
        "verdicts_given": len(verdicts),
        "verdicts_right": sum(1 for r in verdicts if r["correct"]),
        "verdicts_yes": sum(1 for r in verdicts if r["verdict"] == "Yes"),
        "verdicts_no": sum(1 for r in verdicts if r["verdict"] == "No"),
        "yes_no_questions": sum(1 for r in answered if normalize(r["gold"]) in ("yes", "no")),
        "citation_precision": sum(r["cited_from_gold"] for r in answered) / cited if cited else None,
        "citation_recall": sum(r["gold_articles_cited"] for r in answered if not r["abstained"]) / gold if gold else None,
        "abstain_precision": precision,
        "abstain_recall": recall,
        "abstain_f1": 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if nulls else None),
        "abstain_rate_non_null": _mean(r["abstained"] for r in answered),
        "supported_sentence_rate": sum(r["supported_sentences"] for r in records) / sentences if sentences else None,
        "model_joined_rate": _mean(r.get("mode") == "generated" for r in records),
        "median_first_sentence_s": statistics.median(firsts) if firsts else None,
        "median_total_s": statistics.median(totals) if totals else None,
    }


def best_threshold(scores: Sequence[float], is_null: Sequence[bool], always: Sequence[bool] | None = None) -> tuple[float, float]:
    """The abstention threshold (abstain when score < t) with the best F1 on null queries, and that F1.

    `always` marks queries that abstain anyway (another rule), which count as abstentions at every threshold.

    >>> best_threshold([0.1, 0.2, 0.6, 0.7], [True, True, False, False])
    (0.6, 1.0)
    """
    always = always or [False] * len(scores)
    best = (float("-inf"), 0.0)
    for t in sorted(set(scores)) + [float("inf")]:
        abstain = [a or s < t for s, a in zip(scores, always)]
        tp = sum(1 for a, n in zip(abstain, is_null) if a and n)
        precision = tp / sum(abstain) if any(abstain) else 0.0
        recall = tp / sum(is_null) if any(is_null) else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best[1]:
            best = (t, f1)
    return best


def with_threshold(records: Sequence[dict], threshold: float) -> list[dict]:
    """The records as a run with `abstain_threshold=threshold` would have produced them.

    Exact for records made with a lower threshold: the Answerer compares `evidence_score` with the threshold
    before it generates anything, so a query below it would simply have abstained.

    >>> with_threshold([{"type": "null_query", "evidence_score": 0.3, "abstained": False, "correct": None,
    ...                  "citations": 2, "cited_from_gold": 0, "sentences": 1, "supported_sentences": 1}], 0.5)[0]["abstained"]
    True
    """
    result = []
    for record in records:
        score = record.get("evidence_score")
        if record["abstained"] or score is None or score >= threshold:
            result.append(record)
            continue
        result.append(
            record
            | {
                "abstained": True,
                "mode": "abstained",
                "correct": None if record["type"] == NULL else False,
                "citations": 0,
                "cited_from_gold": 0,
                "gold_articles_cited": 0,
                "cited": [],
                "sentences": 0,
                "supported_sentences": 0,
                "first_sentence_s": None,
            }
        )
    return result


def abstention_features(answerer, queries: Sequence[dict]) -> list[dict]:
    """Per query, the evidence signals abstention can use, without generating: best sentence similarity and
    whether the question names a publication the archive lacks."""
    from server.answering.answer import evidence_strength, retrieval_query
    from server.answering.evidence import score_sentences

    rows = []
    for query in queries:
        question = query["query"]
        hits = answerer.searcher.search(retrieval_query(question), k=answerer.settings.k)
        vector = answerer.embedder.embed([question])[0]
        similarities: list[float] = []

        def similarity(texts):
            values = (answerer.embedder.embed(texts) @ vector).tolist()
            similarities.extend(values)
            return values

        scored = score_sentences(question, hits, similarity=similarity)
        rows.append(
            {
                "type": query["question_type"],
                "strength": evidence_strength(scored, similarities),
                "unknown_publication": bool(unknown_publications(question, answerer._known_sources())),
            }
        )
    return rows


def _mean(values: Iterable) -> float | None:
    values = [bool(v) for v in values]
    return sum(values) / len(values) if values else None


def evaluate_answers(
    corpus: Path,
    queries: Path,
    index_dir: Path,
    settings: Settings,
    *,
    limit: int | None = None,
    out: Path | None = None,
    answerers: dict | None = None,
    variants: Sequence[str] = ("evidence_only", "model"),
) -> dict:
    """Answer a stratified sample of the queries with each answerer and summarize, overall and by question type.

    By default (`variants`) the answerers are "evidence_only" (no model call) and "model" (the configured LLM adds
    checked sentences), over the same index. Per-query records go to `out` with the suffix .jsonl as they are produced.
    """
    all_queries = read_queries(queries)
    sample = stratified_sample(all_queries, limit)
    candidates = sorted({q["answer"] for q in all_queries if normalize(q["answer"]) not in ("yes", "no") and q["question_type"] != NULL})
    if answerers is None:
        from server.answering.answer import Answerer
        from server.answering.ask import load_answerer

        settings = settings.model_copy(update={"index_dir": Path(index_dir), "corpus_dir": Path(corpus)})
        model = load_answerer(settings)
        evidence = Answerer(model.searcher, model.llm, model.embedder, settings.model_copy(update={"use_llm": False}))
        unknown = set(variants) - {"evidence_only", "model"}
        if unknown:
            raise ValueError(f"unknown eval variant(s) {', '.join(sorted(unknown))}: expected evidence_only, model")
        answerers = {name: {"evidence_only": evidence, "model": model}[name] for name in variants}
    log = Path(out).with_suffix(".jsonl").open("w", encoding="utf-8") if out else None
    records: dict[str, list[dict]] = {name: [] for name in answerers}
    started, load = time.perf_counter(), [os.getloadavg()]
    try:
        for query in sample:
            for name, answerer in answerers.items():
                record = score_record(query, answerer.answer(query["query"]).to_dict(), candidates) | {"variant": name}
                records[name].append(record)
                if log:
                    log.write(json.dumps(record, ensure_ascii=False) + "\n")
                    log.flush()
    finally:
        if log:
            log.close()
    load.append(os.getloadavg())
    summary: dict = {"variants": {}}
    for name, rows in records.items():
        summary["variants"][name] = summarize(rows) | {"by_type": {t: summarize([r for r in rows if r["type"] == t]) for t in sorted({r["type"] for r in rows})}}
    summary["baselines"] = baselines(all_queries, sample)
    llm = getattr(next(iter(answerers.values())), "llm", None)
    summary["settings"] = {key: getattr(settings, key) for key in ("k", "evidence_tokens", "max_answer_tokens", "abstain_threshold", "llm_context")} | {
        "llm": getattr(llm, "name", "?"),
        "queries_file": str(queries),
        "limit": limit,
    }
    summary["load_average_1_5_15"] = {"start": [round(x, 2) for x in load[0]], "end": [round(x, 2) for x in load[1]]}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return summary
