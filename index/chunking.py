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


@dataclass(frozen=True)
class ChunkSettings:
    """How articles are cut and what text is embedded; stored in the index manifest."""

    words: int = 200
    overlap_words: int = 40
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


def _word_spans(text: str, start: int, end: int, words: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence into pieces of at most `words` words."""
    tokens = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    return [(tokens[i][0], tokens[min(i + words, len(tokens)) - 1][1]) for i in range(0, len(tokens), words)]


def chunk_spans(text: str, words: int = 200, overlap_words: int = 40) -> list[tuple[int, int]]:
    """Spans of chunks of about `words` words made of whole sentences, neighbours sharing up to `overlap_words`.

    >>> chunk_spans("One two. Three four. Five six.", words=4, overlap_words=2)
    [(0, 20), (9, 30)]
    """
    units: list[tuple[int, int, int]] = []  # start, end, word count
    for start, end in split_sentences(text):
        count = len(_WORD.findall(text, start, end))
        if count > words:
            units.extend((s, e, len(_WORD.findall(text, s, e))) for s, e in _word_spans(text, start, end, words))
        else:
            units.append((start, end, count))
    chunks: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        last, total = first, units[first][2]
        while last + 1 < len(units) and total + units[last + 1][2] <= words:
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
    """Cheap (lower, upper) bounds on len(chunk_spans(text, words, ...)) for any overlap, from two C-speed scans.

    Chunks hold at most `words` words, and each starts at a new sentence or piece of an over-long one.

    >>> chunk_count_bounds("One two. Three four. Five six.", words=4)
    (2, 4)
    """
    word_count = len(text.split())
    sentences = len(_SENTENCE_END.findall(text)) + 1
    return -(-word_count // words), sentences + word_count // words
