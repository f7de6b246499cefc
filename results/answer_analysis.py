"""Turn the raw answer-eval records into results/answer_eval.json: choose the abstention threshold on one half
of the dev queries, report on the other half, and summarize the whole run at the chosen threshold.

Run from the repo root:  .venv/bin/python results/answer_analysis.py
Inputs: results/answer_eval_raw.jsonl (records of a run with abstain_threshold=-1, i.e. only the
publication rule abstains) and, if present, results/answer_abstention_features.json (evidence scores of
more dev queries, retrieval only, no generation).
"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server.evaluate import NULL, baselines, best_threshold, read_queries, stratified_sample, summarize, with_threshold  # noqa: E402

HERE = Path(__file__).resolve().parent
QUERIES = Path("/work/shared/bench/multihop-rag/queries_dev.json")


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


def main():
    records = [json.loads(line) for line in (HERE / "answer_eval_raw.jsonl").open()]
    features_path = HERE / "answer_abstention_features.json"
    if features_path.exists():
        rows = json.loads(features_path.read_text())
        source = "answer_abstention_features.json (all 156 dev null queries + 300 random non-null, retrieval only)"
    else:
        rows = [{"type": r["type"], "strength": r["evidence_score"] or 0.0, "unknown_publication": r["unknown_publication"]} for r in records]
        source = "answer_eval_raw.jsonl"
    tune, test = halves(rows)
    threshold, tune_f1 = best_threshold([r["strength"] for r in tune], [r["type"] == NULL for r in tune], [r["unknown_publication"] for r in tune])
    calibration = {
        "source": source,
        "rule": "abstain if the question names a publication the archive lacks, or the best question-sentence embedding similarity < threshold",
        "threshold": threshold,
        "tune_half": f1_at(tune, threshold) | {"n": len(tune)},
        "test_half": f1_at(test, threshold) | {"n": len(test)},
        "test_half_publication_rule_only": f1_at(test, float("-inf")) | {"n": len(test)},
    }
    final = with_threshold(records, threshold)
    summary = summarize(final)
    summary["by_type"] = {t: summarize([r for r in final if r["type"] == t]) for t in sorted({r["type"] for r in final})}
    summary["without_similarity_threshold"] = {k: v for k, v in summarize(records).items()}
    queries = read_queries(QUERIES)
    sample = [q for q in stratified_sample(queries, 300)][: len(records)]
    summary["baselines"] = baselines(queries, sample)
    summary["abstention_calibration"] = calibration
    (HERE / "answer_eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
