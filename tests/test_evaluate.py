"""Retrieval metrics on a tiny hand-made query file whose answers are known."""

from __future__ import annotations

import doctest
import json

import pytest

import index.evaluate as evaluate_module
from index.errors import QueryFileError
from index.evaluate import evaluate_retrieval, load_queries, score_ranking, stratified, summarize
from server.cli import main

ROME = "Rome is expected to offer site options within weeks."
TAVARES = "Stellantis chief executive Carlos Tavares warned of unpopular decisions"
MISSING = "Dongfeng opened a plant in Turin last year."

QUERIES = [
    {"query": "Dongfeng Rome site options weeks", "question_type": "inference_query", "answer": "Rome",
     "evidence_list": [{"fact": ROME, "source": "Byline Wire"}]},
    {"query": "Stellantis Tavares unpopular decisions and Dongfeng Rome site options", "question_type": "comparison_query",
     "answer": "Yes", "evidence_list": [{"fact": ROME}, {"fact": "  Stellantis chief executive Carlos\nTavares warned of unpopular decisions"}]},
    {"query": "Who won the snooker final?", "question_type": "null_query", "answer": "Insufficient information.",
     "evidence_list": []},
    {"query": "Dongfeng Turin plant opened", "question_type": "temporal_query", "answer": "No",
     "evidence_list": [{"fact": MISSING}]},
]


def test_doctests():
    assert doctest.testmod(evaluate_module).failed == 0


def test_score_ranking_by_hand():
    chunks = ["weather", f"... {TAVARES} ...", "noise", "noise", f"x {ROME} y"]
    metrics = score_ranking(chunks, [ROME, TAVARES, MISSING], k=10)
    assert metrics == {
        "hits@4": 1.0,  # first relevant at rank 2
        "hits@k": 1.0,
        "mrr@k": 0.5,
        "evidence_recall@k": pytest.approx(2 / 3),
        "all_evidence@k": 0.0,
    }
    late = score_ranking(chunks, [ROME], k=10)
    assert late["hits@4"] == 0.0 and late["hits@k"] == 1.0 and late["mrr@k"] == 0.2
    assert score_ranking(chunks, [ROME], k=4)["hits@k"] == 0.0  # rank 5 is outside the top 4


def test_whitespace_is_ignored_when_matching():
    assert score_ranking(["Rome is expected\n to offer  site options within weeks."], [ROME])["hits@k"] == 1.0


def test_summarize_means_and_types():
    rows = [("a", {"hits@k": 1.0, "mrr@k": 1.0}), ("a", {"hits@k": 0.0, "mrr@k": 0.0}), ("b", {"hits@k": 1.0, "mrr@k": 0.5})]
    summary = summarize(rows, k=10)
    assert summary["queries"] == 3
    assert summary["hits@10"] == pytest.approx(0.6667)
    assert summary["mrr@10"] == 0.5
    assert summary["by_type"]["a"] == {"queries": 2, "hits@10": 0.5, "mrr@10": 0.5}


def test_evaluate_retrieval_end_to_end(three_articles, tmp_path, fake_embedder):
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps(QUERIES), encoding="utf-8")
    summary = evaluate_retrieval(three_articles, queries, tmp_path / "index", fake_embedder, k=10)
    assert summary["queries"] == 4 and summary["evaluated"] == 3  # the null query is left out
    dense = summary["retrievers"]["dense"]
    # The corpus has three one-chunk articles, so dense returns all three: query 1 finds its fact at rank 1,
    # query 2 finds both facts (either ranks first, both relevant), query 4's fact is in no article.
    assert dense["hits@4"] == dense["hits@10"] == pytest.approx(0.6667)
    assert dense["mrr@10"] == pytest.approx(0.6667)
    assert dense["evidence_recall@10"] == pytest.approx(0.6667)
    assert dense["all_evidence@10"] == pytest.approx(0.6667)
    assert dense["by_type"]["inference_query"]["hits@10"] == 1.0
    assert dense["by_type"]["comparison_query"]["evidence_recall@10"] == 1.0
    assert dense["by_type"]["temporal_query"] == {
        "queries": 1, "hits@4": 0.0, "hits@10": 0.0, "mrr@10": 0.0, "evidence_recall@10": 0.0, "all_evidence@10": 0.0,
    }
    assert "null_query" not in dense["by_type"]
    for name in ("keyword", "fused"):
        assert summary["retrievers"][name]["hits@10"] == pytest.approx(0.6667)
        assert summary["retrievers"][name]["evidence_recall@10"] == pytest.approx(0.6667)
    assert summary["index"]["facts_inside_a_chunk"] == pytest.approx(2 / 3, abs=1e-4)
    # A second run reuses the index: nothing is embedded again.
    again = evaluate_retrieval(three_articles, queries, tmp_path / "index", fake_embedder, k=10)
    assert again["index"]["embedded_now"] == 0
    assert again["retrievers"]["dense"] == {**dense, "latency_ms": again["retrievers"]["dense"]["latency_ms"]}


def test_stratified_limit_keeps_every_type():
    queries = load_queries_from(QUERIES)
    assert {query.question_type for query in stratified(queries, 3)} == {"inference_query", "comparison_query", "null_query"}


def load_queries_from(records):
    return evaluate_module.parse_queries(records, "test")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable JSON query file"),
        ('{"query": "x"}', "expected a JSON list"),
        ('[{"question_type": "x"}]', "record 0: field 'query' is missing"),
        ('[{"query": "x", "evidence_list": {}}]', "record 0: field 'evidence_list' must be a list"),
        ('[{"query": "x"}, {"query": "y", "evidence_list": [{"title": "t"}]}]', r"record 1: evidence_list\[0\] has no 'fact'"),
    ],
)
def test_bad_query_files_name_the_file_and_field(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(QueryFileError, match=message) as error:
        load_queries(path)
    assert "bad.json" in str(error.value)


def test_missing_query_file(tmp_path):
    with pytest.raises(QueryFileError, match="no such query file"):
        load_queries(tmp_path / "nope.json")


@pytest.mark.real
def test_byline_eval_and_search_commands(three_articles, tmp_path, capsys):
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps(QUERIES), encoding="utf-8")
    out = tmp_path / "results" / "retrieval.json"
    index_dir = tmp_path / "index"
    args = ["eval", "--corpus", str(three_articles), "--queries", str(queries), "--mode", "retrieval"]
    assert main([*args, "--index-dir", str(index_dir), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text(encoding="utf-8"))
    assert printed["retrievers"]["fused"]["hits@10"] == pytest.approx(0.6667)
    assert printed["retrievers"]["fused"]["evidence_recall@10"] == pytest.approx(0.6667)

    assert main(["search", "Dongfeng plant Italy", "--k", "2", "--json", "--index-dir", str(index_dir)]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2 and hits[0]["title"] == "Dongfeng in talks to build cars in Italy"
    assert main(["search", "Italy", "--source", "auto daily", "--index-dir", str(index_dir)]) == 0
    text = capsys.readouterr().out
    assert "Stellantis warns about Chinese rivals" in text and "Byline Wire" not in text
    assert main(["search", "Italy", "--index-dir", str(tmp_path / "none")]) == 1
    assert "byline index" in capsys.readouterr().err
