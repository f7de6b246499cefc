"""Yes/no verdicts: given only when the evidence checks them (dates, a denied claim, a claim word for word)."""

from __future__ import annotations

import numpy as np
import pytest

from index.types import Hit
from server.answering.compose import compose
from server.answering.evaluate import verdict_of
from server.answering.evidence import EvidenceSentence, Passage
from server.answering.types import Sentence
from server.answering.verdict import check_claims, check_order, claim_text, denied, order_sides

from conftest import FakeEmbedder


def passage(n: int, source: str, published: str, *sentences: str) -> Passage:
    text = " ".join(sentences)
    hit = Hit(n, f"article-{n}", 1.0, text, 0, len(text), title=f"Story {n}", source=source, published=published)
    spans, at = [], 0
    for sentence in sentences:
        spans.append(EvidenceSentence(sentence, at, at + len(sentence), 0, 1.0, hit))
        at += len(sentence) + 1
    return Passage(n, hit, tuple(spans), 1.0)


def similarity(claims: list[str], texts: list[str]) -> np.ndarray:
    embedder = FakeEmbedder()
    return embedder.embed(claims) @ embedder.embed(texts).T


REPORTS = [
    passage(1, "TechCrunch", "2023-12-18T09:00:00", "Flipboard is integrating the ActivityPub protocol into its magazines."),
    passage(2, "The Verge", "2023-12-19T10:00:00", "The ActivityPub protocol links social networks such as Mastodon and Threads."),
    passage(3, "TechCrunch", "2023-11-30T08:00:00", "OpenAI debuts GPT-4 Turbo at its first developer day."),
]


@pytest.mark.parametrize(
    ("question", "verdict"),
    [
        ("Did TechCrunch report on Flipboard's integration of ActivityPub before The Verge discussed the ActivityPub protocol?", "Yes"),
        ("Did TechCrunch report on Flipboard's integration of ActivityPub after The Verge discussed the ActivityPub protocol?", "No"),
        ("Did TechCrunch fail to report on Flipboard's integration of ActivityPub before The Verge discussed the ActivityPub protocol?", "No"),
        ("After The Verge discussed the ActivityPub protocol, did TechCrunch report on Flipboard and ActivityPub?", "No"),
        ("Before The Verge discussed the ActivityPub protocol, did TechCrunch report on Flipboard and ActivityPub?", "Yes"),
    ],
)
def test_before_and_after_are_read_from_the_published_dates(question, verdict):
    result = check_order(question, REPORTS, similarity)
    assert result.word == verdict
    assert result.reason == "TechCrunch published its article on 2023-12-18, before The Verge's on 2023-12-19"
    assert [p.n for p in result.dated] == [1, 2]  # the Flipboard article, not TechCrunch's other one


def test_an_order_question_without_both_outlets_or_about_consistency_gets_no_date_verdict():
    assert check_order("Did TechCrunch report on Flipboard before Christmas?", REPORTS).word == ""
    assert check_order("Was TechCrunch's reporting before The Verge's consistent?", REPORTS).word == ""
    assert order_sides("Did the team improve before and after the break?") is None


def test_the_same_day_is_neither_before_nor_after():
    same_day = [REPORTS[0], passage(2, "The Verge", "2023-12-18T20:00:00", "The ActivityPub protocol links networks.")]
    assert check_order("Did TechCrunch report on Flipboard after The Verge discussed ActivityPub?", same_day).word == "No"


def test_a_denied_claim_that_the_outlet_states_is_answered_no():
    question = "Did the TechCrunch article fail to mention that OpenAI debuts GPT-4 Turbo at its developer day?"
    result = check_claims(question, REPORTS, similarity)
    assert result.word == "No" and result.found[0][0].text.startswith("OpenAI debuts GPT-4 Turbo")
    # The same denial about an outlet that says nothing of it can't be checked.
    assert check_claims("Did The Verge fail to mention that OpenAI debuts GPT-4 Turbo?", REPORTS, similarity).word == ""


def test_claims_found_word_for_word_give_yes_and_paraphrased_judgements_none():
    evidence = [passage(1, "Wire", "2023-10-01", "The council approved the bike lanes on Market Road.", "Rain fell.")]
    assert check_claims("Did the council approve the bike lanes on Market Road?", evidence, similarity).word == "Yes"
    assert check_claims("Did the council never approve the bike lanes on Market Road?", evidence, similarity).word == "No"
    assert check_claims("Was the council's portrayal of the bike lanes on Market Road consistent?", evidence, similarity).word == ""
    assert check_claims("Did the council approve the bike lanes on Market Road, or did it reject them?", evidence).word == ""
    assert check_claims("Did the mayor resign over the tram budget?", evidence, similarity).word == ""


def test_claim_text_and_denial():
    assert claim_text("Does the 'TechCrunch' article suggest that Apple cut prices", "TechCrunch") == "Apple cut prices"
    assert denied("Valve is not launching a product") == "Valve is launching a product"
    assert denied("Valve is launching a product") == ""


def test_a_dated_verdict_opens_the_answer_and_cites_both_articles():
    question = "Did TechCrunch report on Flipboard's integration of ActivityPub before The Verge discussed the ActivityPub protocol?"
    sentences, citations = compose(question, REPORTS, similarity=similarity)
    opening = sentences[0]
    assert opening == Sentence("Yes: TechCrunch published its article on 2023-12-18, before The Verge's on 2023-12-19.", (1, 2), True, 1.0)
    assert verdict_of(opening.text) == "Yes"
    assert {c.n for c in citations} == {1, 2} and all(s.supported for s in sentences)
    assert any("Flipboard" in s.text for s in sentences[1:]) and any("Mastodon" in s.text for s in sentences[1:])


def test_without_a_verdict_the_answer_says_what_each_source_reports():
    question = "Does the TechCrunch article suggest Flipboard's ActivityPub plan is consistent with The Verge's view of the protocol?"
    sentences, _ = compose(question, REPORTS[:2], similarity=similarity)
    assert verdict_of(sentences[0].text) == ""
    text = " ".join(s.text for s in sentences)
    assert "TechCrunch reports" in text and "The Verge reports" in text
