"""Citation parsing and support checking (pure)."""

from __future__ import annotations

from index.types import Hit
from server.answering.citations import (
    facts_match,
    parse_markers,
    render_answer,
    score_support,
    split_answer,
    verify_citations,
)
from server.answering.evidence import EvidenceSentence, Passage

ARTICLE = (
    "Dongfeng is in talks to build cars in Italy. Rome wants a second large carmaker. "
    "The group's sales fell to 1.72 million last year. Xie did not say how much the plant would cost."
)


def passage(n: int, sentences: list[str], article: str = ARTICLE, article_id: str = "dongfeng", title: str = "Dongfeng eyes Italy") -> Passage:
    hit = Hit(n * 10, article_id, 1.0, article, 0, len(article), title=title, source="Wire", url=f"https://x/{article_id}", published="2024-04-10")
    evidence = []
    for text in sentences:
        start = article.index(text)
        evidence.append(EvidenceSentence(text, start, start + len(text), 0, 1.0, hit))
    return Passage(n, hit, tuple(evidence), 1.0)


PASSAGES = [
    passage(1, ["Dongfeng is in talks to build cars in Italy.", "Rome wants a second large carmaker."]),
    passage(2, ["The group's sales fell to 1.72 million last year.", "Xie did not say how much the plant would cost."]),
]


def test_markers_in_every_form():
    assert parse_markers("A [1]. B [1, 2]. C [1][3]. D [2;4].")[1] == [1, 2, 3, 4]
    assert parse_markers("Rome [2-3] waits.") == ("Rome waits.", [2, 3])


def test_marker_after_full_stop_belongs_to_the_sentence_before():
    assert split_answer("Rome wants jobs. [2] Dongfeng talks [1].") == [("Rome wants jobs.", (2,)), ("Dongfeng talks.", (1,))]


def test_markers_pointing_nowhere_are_dropped_and_replaced():
    sentences, citations = verify_citations("Dongfeng is in talks to build cars in Italy [9].", PASSAGES)
    assert sentences[0].citations == (1,) and sentences[0].supported
    assert [c.n for c in citations] == [1]


def test_wrong_citation_is_replaced_by_the_supporting_passage():
    sentences, _ = verify_citations("Sales fell to 1.72 million last year [1].", PASSAGES)
    assert sentences[0].citations == (2,) and sentences[0].supported


def test_numbers_must_match():
    assert facts_match("Sales fell to 1.72 million.", "sales fell to 1.72 million last year")
    assert not facts_match("Sales fell to 1.8 million.", "sales fell to 1.72 million last year")
    sentences, _ = verify_citations("Sales fell to 2.5 million last year [2].", PASSAGES)
    assert not sentences[0].supported and sentences[0].citations == ()


def test_negations_must_match():
    sentences, _ = verify_citations("Rome does not want a second large carmaker [1].", PASSAGES)
    assert not sentences[0].supported
    sentences, _ = verify_citations("Xie did not say how much the plant would cost [2].", PASSAGES)
    assert sentences[0].supported


def test_talks_and_plans_are_no_support_for_a_plain_fact():
    sentences, _ = verify_citations("Dongfeng builds cars in Italy [1].", PASSAGES)
    assert not sentences[0].supported  # the passage says it is in talks to build them
    sentences, _ = verify_citations("Dongfeng plans to build cars in Italy [1].", PASSAGES)
    assert sentences[0].supported and sentences[0].citations == (1,)


def test_unsupported_sentence_is_flagged_or_dropped():
    text = "Dongfeng is in talks to build cars in Italy [1]. Pogacar won the Tour de France [1]."
    sentences, _ = verify_citations(text, PASSAGES)
    assert [s.supported for s in sentences] == [True, False]
    assert sentences[1].citations == ()
    sentences, _ = verify_citations(text, PASSAGES, drop_unsupported=True)
    assert len(sentences) == 1


def test_repeats_and_copied_headers_are_removed():
    text = (
        "Dongfeng is in talks to build cars in Italy [1]. Dongfeng eyes Italy (Wire, 2024-04-10). "
        "Dongfeng is in talks to build cars in Italy [1]. Dongfeng is in talks to build cars in Italy."
    )
    sentences, _ = verify_citations(text, PASSAGES)
    assert len(sentences) == 1


def test_citation_carries_metadata_and_exact_span():
    _, citations = verify_citations("Rome wants a second large carmaker [1].", PASSAGES)
    (c,) = citations
    assert (c.article_id, c.title, c.source, c.url, c.published) == ("dongfeng", "Dongfeng eyes Italy", "Wire", "https://x/dongfeng", "2024-04-10")
    assert ARTICLE[c.span_start:c.span_end] == "Rome wants a second large carmaker." == c.quote
    assert c.chunk_text == ARTICLE


def test_paraphrase_without_shared_words_is_not_support():
    assert score_support("Italy courts a new automaker.", PASSAGES[0], similarities=[0.2, 0.95]).score == 0.0


def test_embedding_similarity_counts_when_given():
    weak = score_support("Rome wants a new large carmaker.", PASSAGES[0], similarities=[0.2, 0.3])
    strong = score_support("Rome wants a new large carmaker.", PASSAGES[0], similarities=[0.2, 0.95])
    assert strong.score > weak.score
    assert strong.span.text == "Rome wants a second large carmaker."


def test_similarity_callable_is_used_once_for_all_sentences():
    calls = []

    def similarity(answers, evidence):
        calls.append((list(answers), list(evidence)))
        return [[0.9] * len(evidence) for _ in answers]

    verify_citations("Rome wants a second large carmaker [1]. Italy courts a new automaker [1].", PASSAGES, similarity=similarity)
    assert len(calls) == 1 and len(calls[0][0]) == 2 and len(calls[0][1]) == 4


def test_short_verdict_stays_with_its_reason():
    sentences, _ = verify_citations("Yes. Rome wants a second large carmaker [1].", PASSAGES)
    assert sentences[0].text.startswith("Yes.") and sentences[0].supported


def test_render_answer_puts_markers_before_the_stop():
    sentences, _ = verify_citations("Rome wants a second large carmaker [1].", PASSAGES)
    assert render_answer(sentences) == "Rome wants a second large carmaker [1]."
