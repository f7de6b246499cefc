"""Sentence-aware chunking with character offsets. Pure functions over strings."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? (optionally followed by closing quotes or brackets) before whitespace and
# an upper-case letter, digit or opening quote — or at a line break. Common abbreviations don't end one.
_SENTENCE_END = re.compile(r"""[.!?]['"”’)\]]*(?=\s+['"“‘(\[]?[A-Z0-9])|\n+""")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr inc ltd co corp gov sen rep gen lt col sgt capt vs etc no jan feb mar apr "
    "jun jul aug sep sept oct nov dec u.s u.k e.g i.e a.m p.m".split()
)
_WORD = re.compile(r"\S+")
# A chunk of n words spans at most n * CHARS_PER_WORD characters. Prose averages about 6 a word, so only runs of
# long tokens (base64, minified data, a letter repeated for megabytes) are cut by it, and no chunk handed to the
# tokenizer is ever megabytes long.
CHARS_PER_WORD = 20


@dataclass(frozen=True)
class ChunkSettings:
    """How articles are cut and what text is embedded; stored in the index manifest."""

    words: int = 200
    overlap_words: int = 0
    embed_metadata: bool = True


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in text, whitespace trimmed.

    >>> split_sentences("Dr. Xie spoke. Rome will answer.")
    [(0, 14), (15, 32)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end() if match.group().strip() else match.start()
        last_word = text[start:match.start()].rsplit(None, 1)[-1:] or [""]
        if match.group().startswith(".") and last_word[0].lower().rstrip(".") in _ABBREVIATIONS:
            continue
        if match.group().startswith(".") and len(last_word[0]) == 1 and last_word[0].isupper():
            continue  # an initial, as in "Carlos T. Tavares"
        spans.append((start, end))
        start = match.end()
    spans.append((start, len(text)))
    return [_trim(text, s, e) for s, e in spans if text[s:e].strip()]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(text: str, start: int, end: int, words: int, max_chars: int) -> list[tuple[int, int, int]]:
    """Cut an over-long sentence into (start, end, words) pieces of at most `words` words and `max_chars` characters.

    A token longer than `max_chars` is itself cut, each slice counting as a word.

    >>> _pieces("one two three four", 0, 18, 2, 100), _pieces("abcdefgh ij", 0, 11, 5, 3)
    ([(0, 7, 2), (8, 18, 2)], [(0, 3, 1), (3, 6, 1), (6, 8, 1), (9, 11, 1)])
    """
    pieces: list[tuple[int, int, int]] = []
    first, last, count = -1, -1, 0
    for match in _WORD.finditer(text, start, end):
        for slice_start in range(match.start(), match.end(), max_chars):
            slice_end = min(slice_start + max_chars, match.end())
            if count and (count == words or slice_end - first > max_chars):
                pieces.append((first, last, count))
                count = 0
            if not count:
                first = slice_start
            last, count = slice_end, count + 1
    if count:
        pieces.append((first, last, count))
    return pieces


def chunk_spans(text: str, words: int = 200, overlap_words: int = 0) -> list[tuple[int, int]]:
    """Spans of chunks of about `words` words made of whole sentences, neighbours sharing up to `overlap_words`.

    >>> chunk_spans("One two. Three four. Five six.", words=4, overlap_words=2)
    [(0, 20), (9, 30)]
    """
    max_chars = words * CHARS_PER_WORD
    units: list[tuple[int, int, int]] = []  # start, end, word count
    for start, end in split_sentences(text):
        count = len(_WORD.findall(text, start, end))
        if count > words or end - start > max_chars:
            units.extend(_pieces(text, start, end, words, max_chars))
        else:
            units.append((start, end, count))
    chunks: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        last, total = first, units[first][2]
        while (
            last + 1 < len(units)
            and total + units[last + 1][2] <= words
            and units[last + 1][1] - units[first][0] <= max_chars
        ):
            last += 1
            total += units[last][2]
        chunks.append((units[first][0], units[last][1]))
        if last + 1 >= len(units):
            break
        # Step back over whole sentences that fit in the overlap, but always move forward.
        next_first, shared = last + 1, 0
        while next_first - 1 > first and shared + units[next_first - 1][2] <= overlap_words:
            next_first -= 1
            shared += units[next_first][2]
        first = next_first
    return chunks


def headline(title: str, source: str = "", published: str = "") -> str:
    """A title with its source and date, as passages, embeddings and sources lists show it.

    >>> headline("Dongfeng in Italy", "Wire", "2024-04-10T08:00"), headline("Dongfeng in Italy"), headline("", "wire")
    ('Dongfeng in Italy (Wire, 2024-04-10)', 'Dongfeng in Italy', '(wire)')
    """
    byline = ", ".join(part for part in (source, published[:10]) if part)
    return f"{title} ({byline})".lstrip() if byline else title


def embedding_text(chunk_text: str, title: str = "", source: str = "", published: str = "", with_metadata: bool = True) -> str:
    """The text embedded for a chunk: optionally its article's title, source and date first.

    >>> embedding_text("Rome will answer.", "Dongfeng in Italy", "Wire", "2024-04-10")
    'Dongfeng in Italy (Wire, 2024-04-10)\\nRome will answer.'
    """
    if not with_metadata:
        return chunk_text
    header = headline(title, source, published)
    return f"{header}\n{chunk_text}" if header else chunk_text


def chunk_count_bounds(text: str, words: int = 200) -> tuple[int, int]:
    """Cheap (lower, upper) bounds on len(chunk_spans(text, words, ...)) for any overlap, from C-speed scans.

    A chunk holds at most `words` words and `words * CHARS_PER_WORD` characters, and starts at a new
    sentence or a new piece of an over-long one.

    >>> chunk_count_bounds("One two. Three four. Five six.", words=4)
    (2, 10)
    """
    max_chars = words * CHARS_PER_WORD
    tokens = text.split()
    word_count, token_chars = len(tokens), sum(map(len, tokens))
    sentences = len(_SENTENCE_END.findall(text)) + 1
    slices = len(text) // max_chars  # extra words made by cutting tokens longer than max_chars
    lower = max(-(-word_count // words), -(-token_chars // max_chars))
    return lower, 3 * sentences + (word_count + slices) // words + 2 * slices
