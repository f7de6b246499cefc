"""Checking an answer against its passages: parse [n] markers, score each sentence's support, fix citations.

Pure functions. A sentence is supported by a passage when enough of its words (and, if the caller passes
one, its embedding) match the passage, and every number and any negation it states appear there too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from index.chunking import split_sentences
from server.answering.evidence import STOPWORDS, EvidenceSentence, Passage, content_words, has_negation, numbers_in, overlap, passage_header
from server.answering.types import Citation, Sentence

# Conditionals and hedges, and what hasn't happened yet: talks, plans and intentions ("in early talks about
# building cars in Italy" does not say "it is building a factory in Italy").
_HEDGES = re.compile(
    r"\b(?:if|would|could|may|might|whether|unless|talk(?:s|ing|ed)?\s+(?:about|on|over|with|to)|"
    r"(?:plan|aim|intend|hope|seek|want|expect)(?:s|ed|ing)?\s+to|consider(?:s|ed|ing)?|propos(?:e|es|ed|al|als))\b",
    re.IGNORECASE,
)

# [1], [1, 2], [1;2], [1-2] and runs like [1][2]
_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;\-–]\s*\d+)*)\s*\]")
SUPPORT_THRESHOLD = 0.5
MIN_LEXICAL = 0.6  # share of a sentence's content words its supporting span must contain, whatever the embedding says
MIN_SHARED_WORDS = 2  # content words an answer sentence must share with a passage to be supported...
PARAPHRASE_SIMILARITY = 0.75  # ...unless it is this close in embedding space (then one shared word will do)

Similarity = Callable[[list[str], list[str]], Sequence[Sequence[float]]]


def parse_markers(text: str) -> tuple[str, list[int]]:
    """Remove the [n] markers from text; return the clean text and the numbers in order of appearance.

    >>> parse_markers("Rome wants jobs [1, 2][3].")
    ('Rome wants jobs.', [1, 2, 3])
    """
    numbers: list[int] = []
    for match in _MARKER.finditer(text):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            if re.fullmatch(r"\d+\s*[\-–]\s*\d+", part):
                low, high = (int(x) for x in re.split(r"\s*[\-–]\s*", part))
                numbers.extend(range(low, min(high, low + 20) + 1))
            else:
                numbers.append(int(part))
    clean = _MARKER.sub("", text)
    clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
    return " ".join(clean.split()), list(dict.fromkeys(numbers))


def split_answer(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """Split an answer into sentences with the passage numbers each cites (markers after a full stop count for it).

    >>> split_answer("Yes. Rome wants jobs [1]. [2] It offers sites.")
    [('Yes. Rome wants jobs.', (1, 2)), ('It offers sites.', ())]
    """
    text = re.sub(r"([.!?])\s*((?:\[[\d,;\s\-–]+\]\s*)+)", r"\2\1 ", text)  # "jobs. [2]" -> "jobs [2]."
    pieces: list[tuple[str, tuple[int, ...]]] = []
    pending = ""
    for start, end in split_sentences(text):
        raw = pending + " " + text[start:end] if pending else text[start:end]
        clean, numbers = parse_markers(raw)
        if not clean:
            continue
        if len(content_words(clean)) < 2 and not numbers:
            pending = raw  # "Yes." alone: keep it with the sentence that explains it
            continue
        pending = ""
        pieces.append((clean, tuple(numbers)))
    if pending:
        clean, numbers = parse_markers(pending)
        if clean:
            pieces.append((clean, tuple(numbers)))
    return pieces


def names_in(text: str) -> set[str]:
    """The lower-cased capitalized words of text, possessives dropped; a sentence's first word only if it isn't a stopword.

    >>> sorted(names_in("The plant serves Europe's buyers, Stellantis said. Stellantis waits."))
    ['europe', 'stellantis']
    """
    names = set()
    for match in re.finditer(r"\b[A-Z][\w-]+", text.strip()):
        name = re.sub(r"['’]s$", "", match.group()).lower()
        opens_sentence = match.start() == 0 or re.search(r"[.!?:\"“]\s*$", text.strip()[: match.start()])
        if not (opens_sentence and (name in STOPWORDS or name == "yes")):
            names.add(name)
    return names


def facts_match(sentence: str, evidence: str) -> bool:
    """Whether sentence states nothing its evidence doesn't: same numbers and names, negated only together,
    and no plain claim drawn from a conditional or hedged one.

    >>> facts_match("Sales fell 1.72 million.", "Sales fell by 1.72 million units.")
    True
    >>> facts_match("Sales fell 2 million.", "Sales fell by 1.72 million units."), facts_match("Rome did not answer.", "Rome answered.")
    (False, False)
    >>> facts_match("Rome answered.", "Rome did not answer."), facts_match("Then Stellantis would build in Italy.", "Dongfeng would build in Italy.")
    (False, False)
    >>> facts_match("Dongfeng is building a plant in Italy.", "If it builds a plant in Italy, Dongfeng would make hybrids.")
    False
    >>> facts_match("Dongfeng is building cars in Italy.", "Dongfeng is in talks about building cars in Italy.")
    False
    """
    if not numbers_in(sentence) <= numbers_in(evidence):
        return False
    if not names_in(sentence) <= {word.lower() for word in re.findall(r"[\w-]+", evidence)}:
        return False
    if has_hedge(evidence) and not has_hedge(sentence):
        return False
    return has_negation(sentence) == has_negation(evidence)


def has_hedge(text: str) -> bool:
    """Whether text is conditional or hedged ("if", "would", "could", "may", "might", "whether", "unless") or
    speaks of what hasn't happened yet ("talks about", "plans to", "is considering", "proposed").

    >>> has_hedge("If it builds a plant, it would make hybrids."), has_hedge("It builds hybrids.")
    (True, False)
    >>> has_hedge("Dongfeng is in early talks with Rome about building cars."), has_hedge("It plans to expand."), has_hedge("It expanded.")
    (True, True, False)
    """
    return bool(_HEDGES.search(text))


@dataclass(frozen=True)
class Support:
    """How well one passage supports one answer sentence, and the passage sentence that does it best."""

    n: int
    score: float
    span: EvidenceSentence


def score_support(sentence: str, passage: Passage, similarities: Sequence[float] | None = None) -> Support:
    """Score how well passage supports sentence (0..1): word overlap, plus embedding similarity when given.

    `similarities` holds the embedding similarity of the sentence to each of the passage's sentences.

    >>> from index.types import Hit
    >>> p = Passage(1, Hit(1, "a", 1.0, "", 0, 0), (EvidenceSentence("Rome offered sites to Dongfeng.", 0, 31, 0, 1.0),), 1.0)
    >>> score_support("Rome offered Dongfeng sites.", p).score
    1.0
    >>> score_support("Rome offered Dongfeng 3 sites.", p).score
    0.0
    """
    terms = content_words(sentence)
    units = [content_words(s.text) for s in passage.sentences]
    # A claim must rest on one passage sentence, or two neighbouring ones: a bag of words from all over the
    # passage is how a small model stitches a false sentence together. Its numbers, names and negations must
    # be in that same span, so "Stellantis said …" can't borrow a span about Dongfeng.
    per_sentence, spans = [], []
    for i, words in enumerate(units):
        joined = i + 1 < len(units) and passage.sentences[i + 1].start - passage.sentences[i].end <= 3
        pair_text = f"{passage.sentences[i].text} {passage.sentences[i + 1].text}" if joined else passage.sentences[i].text
        single, pair = overlap(terms, words), (0.9 * overlap(terms, words | units[i + 1]) if joined else 0.0)
        per_sentence.append(max(single, pair))
        spans.append(passage.sentences[i].text if single >= pair else pair_text)
    lexical = per_sentence
    if similarities is not None:
        per_sentence = [0.5 * lex + 0.5 * max(0.0, float(sim)) for lex, sim in zip(lexical, similarities)]
    # A similar topic is not support: most of the sentence's words must be in the supporting span.
    eligible = [i for i in range(len(passage.sentences)) if lexical[i] >= MIN_LEXICAL and facts_match(sentence, spans[i])]
    if not eligible:
        return Support(passage.n, 0.0, passage.sentences[max(range(len(lexical)), key=lambda i: lexical[i])])
    best = max(eligible, key=lambda i: per_sentence[i])
    score = per_sentence[best]
    shared = len(terms & content_words(passage.text))
    close = similarities is not None and max((float(s) for s in similarities), default=0.0) >= PARAPHRASE_SIMILARITY
    if shared < (1 if close else MIN_SHARED_WORDS):
        score = 0.0  # too little shared to check it ("I AM HACKED.") counts as unsupported
    return Support(passage.n, score, passage.sentences[best])


def is_near_duplicate(a: str, b: str, threshold: float = 0.8) -> bool:
    """Whether two sentences share most of their words (Jaccard over content words).

    >>> is_near_duplicate("Rome wants the jobs.", "Rome wants jobs!"), is_near_duplicate("Rome wants jobs.", "Rome offers sites.")
    (True, False)
    """
    x, y = content_words(a), content_words(b)
    if not x or not y:
        return a.strip().lower() == b.strip().lower()
    return len(x & y) / len(x | y) >= threshold


def copies_header(sentence: str, passages: Sequence[Passage]) -> bool:
    """Whether a sentence merely repeats a passage's header (title, source, date).

    >>> from index.types import Hit
    >>> p = Passage(1, Hit(1, "a", 1.0, "", 0, 0, title="Dongfeng eyes Italy", source="Wire"), (), 1.0)
    >>> copies_header("Dongfeng eyes Italy (Wire)", [p]), copies_header("Dongfeng eyes an Italian plant.", [p])
    (True, False)
    """
    terms = content_words(sentence)
    return bool(terms) and any(terms <= content_words(passage_header(p.hit)) for p in passages)


def verify_citations(
    answer: str,
    passages: Sequence[Passage],
    *,
    similarity: Similarity | None = None,
    threshold: float = SUPPORT_THRESHOLD,
    drop_unsupported: bool = False,
) -> tuple[list[Sentence], list[Citation]]:
    """Check every sentence of a generated answer against the passages; return sentences and the citations they use.

    Markers pointing to no passage are dropped. A sentence keeps the cited passages that support it; if none
    does, the best-supporting passage is attached instead; if no passage supports it, it is unsupported (and
    removed when `drop_unsupported`). Repeated sentences and copied passage headers are removed.

    >>> from index.types import Hit
    >>> p = Passage(1, Hit(1, "a", 1.0, "", 0, 0), (EvidenceSentence("Rome offered sites to Dongfeng.", 0, 31, 0, 1.0),), 1.0)
    >>> sentences, cites = verify_citations("Rome offered Dongfeng sites [7]. The moon is cheese [1].", [p])
    >>> [(s.text, s.citations, s.supported) for s in sentences], [c.n for c in cites]
    ([('Rome offered Dongfeng sites.', (1,), True), ('The moon is cheese.', (), False)], [1])
    """
    by_n = {p.n: p for p in passages}
    pieces: list[tuple[str, tuple[int, ...]]] = []
    for text, numbers in split_answer(answer):
        if copies_header(text, passages) or any(is_near_duplicate(text, earlier) for earlier, _ in pieces):
            continue
        pieces.append((text, tuple(n for n in numbers if n in by_n)))
    matrix = _similarities(similarity, [text for text, _ in pieces], passages)
    sentences: list[Sentence] = []
    spans: dict[int, tuple[float, EvidenceSentence]] = {}
    for i, (text, cited) in enumerate(pieces):
        supports = [score_support(text, p, matrix[i][p.n] if matrix else None) for p in passages]
        keep = [s for s in supports if s.n in cited and s.score >= threshold]
        if not keep:
            best = max(supports, key=lambda s: s.score, default=None)
            keep = [best] if best is not None and best.score >= threshold else []
        if not keep and drop_unsupported:
            continue
        for support in keep:
            if support.n not in spans or support.score > spans[support.n][0]:
                spans[support.n] = (support.score, support.span)
        score = max((s.score for s in keep), default=max((s.score for s in supports), default=0.0))
        sentences.append(Sentence(text, tuple(s.n for s in keep), bool(keep), round(score, 3)))
    citations = [make_citation(by_n[n], span) for n, (_, span) in sorted(spans.items())]
    return sentences, citations


def join_checked(
    answer: Sequence[Sentence], citations: Sequence[Citation], extra: Sequence[Sentence], extra_citations: Sequence[Citation]
) -> tuple[list[Sentence], list[Citation]]:
    """The checked sentences of `extra` (the model's) that say something `answer` doesn't, with their citations
    merged into `citations`: a span already cited keeps its number, a new span gets the next free number.

    >>> c1 = Citation(1, "a", "T", "S", "", "", 0, "", 0, 10, "Rome waits")
    >>> c1b = Citation(1, "a", "T", "S", "", "", 0, "", 20, 30, "It sells.")
    >>> new, merged = join_checked([Sentence("Rome waits.", (1,), True)], [c1], [Sentence("Rome waits!", (1,), True), Sentence("It sells cars.", (1,), True)], [c1b])
    >>> [(s.text, s.citations) for s in new], [(c.n, c.span_start) for c in merged]
    ([('It sells cars.', (2,))], [(1, 0), (2, 20)])
    """
    merged = list(citations)
    number: dict[int, int] = {}
    for citation in extra_citations:
        same = next((c for c in merged if (c.article_id, c.span_start, c.span_end) == (citation.article_id, citation.span_start, citation.span_end)), None)
        if same is None:
            same = replace(citation, n=max((c.n for c in merged), default=0) + 1)
            merged.append(same)
        number[citation.n] = same.n
    said = [s.text for s in answer]
    joined = []
    for sentence in extra:
        if not sentence.supported or any(is_near_duplicate(sentence.text, earlier, 0.5) for earlier in said):
            continue
        said.append(sentence.text)
        joined.append(replace(sentence, citations=tuple(number[n] for n in sentence.citations if n in number)))
    used = {n for s in [*answer, *joined] for n in s.citations}
    return joined, [c for c in merged if c.n in used or c in citations]


def _similarities(similarity: Similarity | None, texts: list[str], passages: Sequence[Passage]) -> list[dict[int, list[float]]] | None:
    """Per answer sentence, per passage number, the similarity to each of the passage's sentences."""
    if similarity is None or not texts or not passages:
        return None
    evidence = [s.text for p in passages for s in p.sentences]
    rows = similarity(texts, evidence)
    result = []
    for row in rows:
        values, offset = {}, 0
        for p in passages:
            values[p.n] = [float(v) for v in row[offset:offset + len(p.sentences)]]
            offset += len(p.sentences)
        result.append(values)
    return result


def make_citation(passage: Passage, span: EvidenceSentence) -> Citation:
    """The citation of a passage, pointing at the span that supports the sentence.

    >>> from index.types import Hit
    >>> h = Hit(4, "a", 1.0, "Rome waits.", 10, 21, title="T")
    >>> c = make_citation(Passage(2, h, (EvidenceSentence("Rome waits.", 10, 21, 0, 1.0, h),), 1.0), EvidenceSentence("Rome waits.", 10, 21, 0, 1.0, h))
    >>> (c.n, c.chunk_id, c.span_start, c.span_end)
    (2, 4, 10, 21)
    """
    hit = span.hit or passage.hit
    return Citation(
        n=passage.n,
        article_id=hit.article_id,
        title=hit.title,
        source=hit.source,
        url=hit.url,
        published=hit.published,
        chunk_id=hit.chunk_id,
        chunk_text=hit.text,
        span_start=span.start,
        span_end=span.end,
        quote=span.text,
    )


def render_answer(sentences: Sequence[Sentence]) -> str:
    """The answer text: each sentence followed by its citation markers.

    >>> render_answer([Sentence("Rome wants jobs.", (1, 2), True), Sentence("Unclear.", (), False)])
    'Rome wants jobs [1][2]. Unclear.'
    """
    parts = []
    for sentence in sentences:
        text = sentence.text
        if sentence.citations:
            marks = "".join(f"[{n}]" for n in sentence.citations)
            end = len(text.rstrip(".!?")) if text[-1:] in ".!?" else len(text)
            text = f"{text[:end]} {marks}{text[end:]}"
        parts.append(text)
    return " ".join(parts)
