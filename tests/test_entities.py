"""Choosing the name that answers a who/which question: the name the sources point to, in its full form."""

from __future__ import annotations

from index.types import Hit
from server.answering.entities import (
    CommonHere,
    bare_name,
    best_entity,
    candidate_names,
    expanded,
)
from server.answering.evidence import Passage, score_sentences, select_evidence
from server.answering.question import question_parts


def passages_for(question: str, articles: list[tuple[str, str, str]]) -> list[Passage]:
    """The evidence passages the answerer would build over these (source, title, text) articles."""
    hits = [Hit(i, f"a{i}", 1.0, text, 0, len(text), title=title, source=source) for i, (source, title, text) in enumerate(articles)]
    scored = score_sentences(question, hits)
    return select_evidence(scored, hits, budget=1000, count_tokens=lambda t: len(t.split()), min_relative=0.0)


def entity(question: str, articles: list[tuple[str, str, str]], common=frozenset()) -> str:
    intent = question_parts(question)[0]
    return best_entity(intent, question, passages_for(question, articles), common)[0]


def test_the_name_several_sources_point_to_beats_a_person_quoted_beside_it():
    question = "Who is the executive accused of not being candid with the board, as reported by Fortune and TechCrunch?"
    articles = [
        ("Fortune", "Board fires chief", "The board said Sam Altman was not candid with the board, said analyst Arun Chandrasekaran."),
        ("TechCrunch", "Altman ousted", "Altman was ousted after the board review. Investors backed Altman."),
        ("TechCrunch", "What next for OpenAI", "Employees asked for Altman to return as chief executive."),
    ]
    assert entity(question, articles) == "Sam Altman"


def test_a_person_question_skips_an_organization_named_more_often():
    question = "Who is the individual accused of fraud at the trial reported by The Verge?"
    articles = [
        ("The Verge", "Trial opens", "Alameda lost billions. Alameda borrowed customer money. Sam Bankman-Fried is accused of fraud at the trial."),
        ("The Verge", "Jury hears", "Prosecutors said Bankman-Fried took customer money for Alameda."),
    ]
    assert entity(question, articles) == "Sam Bankman-Fried"


def test_titles_roles_and_headline_words_are_not_part_of_the_name():
    assert bare_name("FTX Co-Founder Sam Bankman-Fried") == "Sam Bankman-Fried"
    assert bare_name("But Bankman-Fried", opens_sentence=True) == "Bankman-Fried"
    assert bare_name("All Blacks") == "All Blacks"
    assert candidate_names("Reveal After OpenAI drama hit the Taylor Swift-Travis Kelce romance.") == [
        "Reveal", "OpenAI", "Taylor Swift", "Travis Kelce"
    ]


def test_an_abbreviation_answers_as_the_name_it_stands_for():
    assert expanded("RA", ["Rugby Australia (RA) is broke."]) == "Rugby Australia"
    assert expanded("Fed", ["The Federal Reserve held rates. The Fed waits."]) == "Federal Reserve"
    question = "Which institution, according to Fortune, is expected to hold interest rates?"
    articles = [("Fortune", "Rates", "The Federal Reserve raised rates last year. The Fed is expected to hold interest rates in June.")]
    assert entity(question, articles, {"fed"}) == "Federal Reserve"


def test_a_capitalized_sentence_opener_is_no_name_but_a_camel_case_name_is():
    text = "Laid off staff protested. OpenAI shipped a model. Ask OpenAI."
    words = CommonHere({"laid", "openai"}, text)
    assert "laid" in words and "openai" not in words


def test_a_common_word_opening_a_sentence_is_never_the_answer():
    question = "Which company cut jobs across departments, according to TechCrunch?"
    articles = [("TechCrunch", "Layoffs", "Jodo\n\nReportedly cut jobs across departments. Flexport cut 20 percent of its staff.")]
    assert entity(question, articles, {"reportedly"}) == "Flexport"
