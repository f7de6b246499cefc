"""Evidence selection (pure): relevant sentences, exact offsets, a budget that is never exceeded."""

from __future__ import annotations

from index.types import Hit
from server.answering.evidence import evidence_budget, score_sentences, select_evidence

DONGFENG = (
    "Chinese carmaker Dongfeng is in early talks with the Italian government. "
    "The weather in Milan was mild. "
    "Rome wants a second large carmaker because Italy has clashed with Stellantis over jobs. "
    "Italy is one of Europe's biggest car markets."
)
WEATHER = "Heavy rain hit Leeds on Tuesday. Forecasters expect drier weather."


def hits() -> list[Hit]:
    return [
        Hit(1, "dongfeng", 0.9, DONGFENG[74:], 1000 + 74, 1000 + len(DONGFENG), title="Dongfeng eyes Italy", source="Wire"),
        Hit(2, "dongfeng", 0.8, DONGFENG, 1000, 1000 + len(DONGFENG), title="Dongfeng eyes Italy", source="Wire"),
        Hit(3, "weather", 0.1, WEATHER, 0, len(WEATHER), title="Rain", source="Desk"),
    ]


def words(text: str) -> int:
    return len(text.split())


def test_offsets_point_into_the_article():
    article = " " * 1000 + DONGFENG
    for sentence in score_sentences("Why is Italy courting Dongfeng?", hits()[:2]):
        assert article[sentence.start:sentence.end] == sentence.text


def test_overlapping_chunks_give_each_sentence_once():
    scored = score_sentences("Why is Italy courting Dongfeng?", hits())
    keys = [(s.hit.article_id, s.start) for s in scored]
    assert len(keys) == len(set(keys))


def test_relevant_sentences_first_and_irrelevant_left_out():
    scored = score_sentences("Why is Italy courting Dongfeng? Stellantis jobs", hits())
    passages = select_evidence(scored, hits(), budget=200, count_tokens=words)
    assert passages[0].hit.article_id == "dongfeng" and passages[0].n == 1
    text = " ".join(p.text for p in passages)
    assert "clashed with Stellantis" in text
    assert "Leeds" not in text and "weather in Milan" not in text


def test_budget_is_never_exceeded():
    scored = score_sentences("Why is Italy courting Dongfeng?", hits())
    for budget in (5, 20, 40, 80):
        passages = select_evidence(scored, hits(), budget=budget, count_tokens=words)
        used = sum(words(s.text) + 1 for p in passages for s in p.sentences) + sum(words(p.hit.title) + 6 for p in passages)
        assert used <= budget + 2 * len(passages)


def test_similarity_from_the_caller_changes_the_choice():
    scored = score_sentences("Why?", hits(), similarity=lambda texts: [1.0 if "biggest car markets" in t else 0.0 for t in texts])
    best = max(scored, key=lambda s: s.score)
    assert "biggest car markets" in best.text


def test_budget_fits_the_context():
    assert evidence_budget(700, 2048, 300, 160) == 700
    assert evidence_budget(100_000, 2048, 300, 160) + 300 + 160 <= 2048
    assert evidence_budget(700, 512, 400, 160) == 0


def test_passage_text_is_its_sentences_in_article_order():
    scored = score_sentences("Dongfeng talks Italian government; biggest car markets", hits()[1:2])
    (passage,) = select_evidence(scored, hits()[1:2], budget=200, count_tokens=words, min_relative=0.9)
    assert passage.text == " ".join(s.text for s in passage.sentences)
    assert [s.start for s in passage.sentences] == sorted(s.start for s in passage.sentences)
