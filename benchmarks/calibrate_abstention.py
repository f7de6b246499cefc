"""Calibrate the abstention threshold from raw answer-eval records (writes results/abstention_calibration.json): choose the abstention threshold on one half
of the dev queries, report on the other half, and summarize the whole run at the chosen threshold.

Run from the repo root:  .venv/bin/python benchmarks/calibrate_abstention.py
Input: results/answer_eval_raw.jsonl, the records of a run with abstain_threshold=-1 made before the
missing-name rule existed. Both later abstention steps act before anything is generated, so replaying them
on the records gives exactly what a run with them produces (generation is deterministic, temperature 0).
"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server.answering.abstain import folded, missing_entities  # noqa: E402
from server.answering.evaluate import NULL, baselines, best_threshold, read_queries, stratified_sample, summarize, with_threshold  # noqa: E402

HERE = Path(__file__).resolve().parent.parent / "results"
QUERIES = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "multihop-rag" / "queries_dev.json"
CORPUS = QUERIES.parent / "corpus.json"


def halves(rows, seed=7):
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows[: len(rows) // 2], rows[len(rows) // 2 :]


def f1_at(rows, t):
    abstain = [r["unknown_publication"] or r["strength"] < t for r in rows]
    null = [r["type"] == NULL for r in rows]
    tp = sum(a and n for a, n in zip(abstain, null))
    p = tp / sum(abstain) if any(abstain) else 0.0
    rec = tp / sum(null) if any(null) else 0.0
    return {"precision": p, "recall": rec, "f1": 2 * p * rec / (p + rec) if p + rec else 0.0,
            "non_null_abstained": sum(a for a, n in zip(abstain, null) if not n) / max(1, sum(not n for n in null))}


def replay_rules(records, queries_by_text, archive_text):
    """Records as the current code would produce them: the entity rule abstains before generating."""
    out = []
    for record in records:
        if not record["abstained"] and missing_entities(record["query"], archive_text):
            record = with_threshold([record | {"evidence_score": -2.0}], -1.0)[0] | {"rule": "missing_entity"}
        out.append(record)
    return out


def main():
    raw = [json.loads(line) for line in (HERE / "answer_eval_raw.jsonl").open()]
    corpus = json.loads(CORPUS.read_text())
    archive_text = folded("\n".join(f"{a['title']}\n{a['source']}\n{a['body']}" for a in corpus))
    queries = read_queries(QUERIES)
    records = replay_rules(raw, {q["query"]: q for q in queries}, archive_text)
    rows = [{"type": r["type"], "strength": r["evidence_score"] if r["evidence_score"] is not None else 0.0,
             "unknown_publication": r["abstained"]} for r in records]
    tune, test = halves(rows)
    threshold, _ = best_threshold([r["strength"] for r in tune], [r["type"] == NULL for r in tune], [r["unknown_publication"] for r in tune])
    calibration = {
        "rule": "abstain if the question names a publication the archive lacks, or a name the archive never mentions, "
        "or the best question-sentence embedding similarity < threshold",
        "threshold": threshold,
        "tune_half": f1_at(tune, threshold) | {"n": len(tune)},
        "test_half": f1_at(test, threshold) | {"n": len(test)},
        "test_half_rules_only": f1_at(test, float("-inf")) | {"n": len(test)},
    }
    final = with_threshold(records, threshold)
    summary = summarize(final)
    summary["by_type"] = {t: summarize([r for r in final if r["type"] == t]) for t in sorted({r["type"] for r in final})}
    summary["as_run_publication_rule_only"] = summarize(raw)
    summary["rules_without_similarity_threshold"] = summarize(records)
    sample = stratified_sample(queries, 300)[: len(records)]
    summary["baselines"] = baselines(queries, sample)
    summary["abstention_calibration"] = calibration
    (HERE / "abstention_calibration.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
