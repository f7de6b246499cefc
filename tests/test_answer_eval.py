"""Answer evaluation: judging, baselines from the query file, and a run with a fake Answerer."""

from __future__ import annotations

import json

import pytest

from index.errors import CorpusFileError
from server.answering.evaluate import baselines, evaluate_answers, judge, read_queries, stratified_sample, with_threshold
from server.settings import Settings
from server.answering.types import Answer, Citation, Sentence

QUERIES = [
    {"query": "Did both say Rome waits?", "answer": "Yes", "question_type": "comparison_query",
     "evidence_list": [{"url": "u1", "title": "Rome waits"}, {"url": "u2", "title": "Rome still waits"}]},
    {"query": "Was there no change?", "answer": "No", "question_type": "temporal_query", "evidence_list": [{"url": "u1", "title": "Rome waits"}]},
    {"query": "Which company sells assets?", "answer": "Stellantis", "question_type": "inference_query", "evidence_list": [{"url": "u3", "title": "Assets"}]},
    {"query": "Which firm builds cars?", "answer": "Dongfeng", "question_type": "inference_query", "evidence_list": [{"url": "u4", "title": "Cars"}]},
    {"query": "Who won in 2031?", "answer": "Insufficient information.", "question_type": "null_query", "evidence_list": []},
]


def cite(n, url, title):
    return Citation(n, "a", title, "S", url, "2024-01-01", 1, "text", 0, 4, "text")


class FakeAnswerer:
    llm = type("L", (), {"name": "fake"})()

    def answer(self, question):
        if "2031" in question:
            return Answer(question, "Not found.", abstained=True, mode="abstained", evidence_score=0.1)
        if "assets" in question:
            return Answer(question, "Stellantis or Dongfeng [1].", (Sentence("Stellantis or Dongfeng.", (1,), True),), (cite(1, "u9", "Other"),), evidence_score=0.8)
        if "builds" in question:
            return Answer(question, "Dongfeng builds cars [1].", (Sentence("Dongfeng builds cars.", (1,), True),), (cite(1, "u4", "Cars"),), evidence_score=0.4)
        return Answer(question, "Yes [1].", (Sentence("Yes.", (1,), True),), (cite(1, "u1", "Rome waits"),), evidence_score=0.9)


def test_judge_rules():
    assert judge("Yes, it did.", "Yes") and not judge("It did.", "Yes") and not judge("Wire reports no change [1].", "No")
    assert judge("No [1].", "no") and not judge("Not really.", "no")
    assert judge("Sam Bankman-Fried [1].", "Sam Bankman-Fried", ["Sam Bankman-Fried", "Google"])
    assert not judge("Sam Bankman-Fried or Google.", "Sam Bankman-Fried", ["Sam Bankman-Fried", "Google"])


def test_baselines_come_from_the_query_file():
    result = baselines(QUERIES, QUERIES)
    assert result["yes"]["all"] == 0.25
    assert result["majority_answers"]["inference_query"] in ("stellantis", "dongfeng")
    assert result["yes_or_top_inference"]["comparison_query"] == 1.0


def test_stratified_sample_keeps_every_type():
    sample = stratified_sample(QUERIES * 10, 10)
    assert {q["question_type"] for q in sample} == {q["question_type"] for q in QUERIES}


def test_bad_query_file_names_the_field(tmp_path):
    bad = tmp_path / "q.json"
    bad.write_text(json.dumps([{"query": "x", "answer": "y"}]))
    with pytest.raises(CorpusFileError, match="query #0 lacks the field.*question_type"):
        read_queries(bad)


def test_evaluate_answers_with_a_fake_answerer(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps(QUERIES))
    out = tmp_path / "out" / "eval.json"
    (tmp_path / "out").mkdir()
    full = evaluate_answers(tmp_path, path, tmp_path / "index", Settings(), out=out, answerers={"fake": FakeAnswerer()})
    summary = full["variants"]["fake"]
    assert summary["queries"] == 5
    assert summary["accuracy"] == 0.5  # yes right, "Yes" for a "No" wrong, two candidates wrong, Dongfeng right
    assert summary["direct_accuracy"] == 0.5
    assert (summary["verdicts_given"], summary["verdicts_right"], summary["verdicts_yes"], summary["verdicts_no"]) == (2, 1, 2, 0)
    assert summary["citation_precision"] == 0.75 and summary["abstain_precision"] == 1.0 and summary["abstain_recall"] == 1.0
    assert summary["by_type"]["inference_query"]["accuracy"] == 0.5
    assert full["baselines"]["yes"]["all"] == 0.25 and len(full["load_average_1_5_15"]["start"]) == 3
    assert json.loads(out.read_text())["variants"]["fake"]["queries"] == 5
    records = [json.loads(line) for line in out.with_suffix(".jsonl").open()]
    assert len(records) == 5
    raised = with_threshold(records, 0.5)
    assert sum(r["abstained"] for r in raised) == 2  # the 0.4-evidence answer would have abstained
