"""Chunking on hostile text: no chunk is ever megabytes long, and the cheap chunk-count bounds always hold."""

from __future__ import annotations

import random

from index.chunking import CHARS_PER_WORD, chunk_count_bounds, chunk_spans

PIECES = ["a", "bb", "x" * 50, "y" * 500, "z" * 5000, " ", "  ", "\n", ". ", ". A", "! ", "\n\n", "Mr. ", "Q"]


def hostile_texts(count: int):
    """Seeded random texts mixing short words, very long tokens, sentence ends, abbreviations and blank lines."""
    rng = random.Random(0)
    for _ in range(count):
        yield "".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 300))), rng.choice([1, 2, 5, 20, 200])


def test_chunks_stay_short_cover_the_text_and_fit_the_bounds():
    for case, (text, words) in enumerate(hostile_texts(300)):
        spans = chunk_spans(text, words, words // 2)
        lower, upper = chunk_count_bounds(text, words)
        assert lower <= len(spans) <= upper, case
        assert all(end - start <= words * CHARS_PER_WORD for start, end in spans), case
        reached = 0  # everything between the chunks is whitespace
        for start, end in sorted(spans):
            assert not text[reached:start].strip(), case
            reached = max(reached, end)
        assert not text[reached:].strip(), case


def test_one_huge_token_is_cut_into_slices():
    spans = chunk_spans("x" * 10_000, words=10, overlap_words=0)
    assert spans == [(start, min(start + 200, 10_000)) for start in range(0, 10_000, 200)]


def test_prose_is_cut_by_words_not_by_the_character_cap():
    text = " ".join(["Harbour"] * 30)
    assert chunk_spans(text, words=10, overlap_words=0) == [(0, 79), (80, 159), (160, 239)]
