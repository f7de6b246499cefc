"""Reading the sources and dates a question names."""

import doctest

import index.query as query_module
from index.query import DateRange, find_dates, find_sources, read_hints, source_aliases

KNOWN = [
    "TechCrunch",
    "The Verge",
    "The Age",
    "Fortune",
    "The Independent - Life and Style",
    "The Independent - Sports",
    "Cnbc | World Business News Leader",
    "Live Science: The Most Interesting Articles",
    "Sporting News",
]


def test_doctests():
    assert doctest.testmod(query_module).failed == 0


def test_multihop_style_question():
    question = "Which company, as reported by both TechCrunch and The Verge, has spent billions on search deals?"
    assert find_sources(question, KNOWN) == ("TechCrunch", "The Verge")


def test_case_and_article_variants():
    assert find_sources("according to the Verge", KNOWN) == ("The Verge",)
    assert find_sources("per 'THE VERGE'", KNOWN) == ("The Verge",)
    assert find_sources("did techcrunch and Verge agree", KNOWN) == ("The Verge",)  # "techcrunch" isn't a name here


def test_outlet_part_of_sectioned_names():
    assert find_sources("as CNBC reported", KNOWN) == ("Cnbc | World Business News Leader",)
    assert find_sources("a Live Science article", KNOWN) == ("Live Science: The Most Interesting Articles",)
    assert find_sources("The Independent - Sports said", KNOWN) == ("The Independent - Sports",)
    assert set(find_sources("The Independent said", KNOWN)) == {"The Independent - Life and Style", "The Independent - Sports"}


def test_common_words_are_not_sources():
    assert find_sources("good fortune at the age of ten, sporting news", KNOWN) == ()
    assert source_aliases("The Age") == ["the age"]


def test_no_known_sources():
    assert find_sources("The Verge says", []) == ()


def test_dates_days_months_and_directions():
    assert find_dates("published on 2023-10-05") == (DateRange("2023-10-05", "2023-10-05"),)
    assert find_dates("in October 2023") == (DateRange("2023-10-01", "2023-10-31"),)
    assert find_dates("published after November 5, 2023") == (DateRange("2023-11-05", None),)
    assert find_dates("before 5 Nov 2023") == (DateRange(None, "2023-11-05"),)
    assert find_dates("in February 2024")[0].end == "2024-02-29"


def test_impossible_and_absent_dates():
    assert find_dates("on 2023-02-30 or 2023-13-01") == ()
    assert find_dates("Who won the cup?") == ()


def test_date_range_contains():
    assert DateRange("2023-10-01", None).contains("2023-12-25T00:00:00+00:00")
    assert not DateRange(None, "2023-10-01").contains("2023-10-02")
    assert not DateRange(None, None).contains("")


def test_read_hints_empty():
    assert read_hints("What is the capital of France?", KNOWN).empty
    assert not read_hints("What did Fortune say on 2023-10-04?", KNOWN).empty
