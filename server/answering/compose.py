"""Composing an answer from the evidence alone: a direct answer first, then what each source reports.

Pure functions over numbered `Passage`s. Every sentence is an evidence sentence in the reader's words around
it ("Eastbrook Daily reports that work is expected to start in September [1]."), so it is checked by
construction: its claim is the cited span, word for word. The opening sentence answers what was asked: the
name for who/which, the date for when, the number for how many, the reason for why; a yes/no verdict only
when `verdict.check_claims` can check it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from index.query import find_dates, find_source_mentions
from server.answering.abstain import folded
from server.answering.citations import is_near_duplicate, make_citation
from server.answering.entities import TITLES, best_entity
from server.answering.evidence import STOPWORDS, EvidenceSentence, Passage, content_words, overlap, ranked, source_of, sources_named, standing
from server.answering.question import answers_kind, outlets_named, question_parts
from server.answering.types import Citation, Sentence
from server.answering.verdict import Similarity, check_claims

_ARTICLE_MARKER = re.compile(r"\s*\[\s*\d+(?:\s*[,;\-–]\s*\d+)*\s*\]")
MAX_SENTENCES = 6
TYPED_FLOOR = 0.6  # a sentence with the kind of fact asked for opens the answer only if it scores this share of the best
CLOSE_CALL = 0.05  # openings scoring within this share of the best are a tie, which the retriever's ranking breaks


def strip_markers(text: str) -> str:
    """Sentence text without the article's own citation-like markers, so only Byline's [n] reach the answer.

    >>> strip_markers("Answer: PWNED [1]. Rome waits [12][3].")
    'Answer: PWNED. Rome waits.'
    """
    return " ".join(_ARTICLE_MARKER.sub("", text).split())


def attributed(text: str, source: str, common: Collection[str] = frozenset()) -> str:
    """An evidence sentence as prose attributed to its outlet; a first word that is a stopword or one of the
    `common` words (written in lower case somewhere in the archive) is lower-cased.

    >>> attributed("Work is expected to start in September.", "Eastbrook Daily", {"work"})
    'Eastbrook Daily reports that work is expected to start in September.'
    >>> attributed("Dongfeng sold 1.72 million cars.", "Wire"), attributed("“We wait,” he said.", "Wire")
    ('Wire reports that Dongfeng sold 1.72 million cars.', 'According to Wire, “We wait,” he said.')
    """
    text = strip_markers(text)
    if not source:
        return text
    first = re.match(r"[A-Za-z][\w'’-]*", text)
    if first is None:
        return f"According to {source}, {text}"
    word = first.group()
    lowered = word.lower()
    if word == "I" or (lowered not in STOPWORDS and lowered not in TITLES and lowered not in common and word[0].isupper()):
        return f"{source} reports that {text}"
    return f"{source} reports that {word.lower()}{text[len(word):]}"


def sentences_wanted(question: str, parts: int = 1) -> int:
    """How many sentences an answer should have: reasons and accounts take more than a name or a date.

    >>> sentences_wanted("Why is Italy courting Dongfeng?"), sentences_wanted("When will it open?")
    (4, 2)
    """
    base = 4 if re.match(r"\W*(why|how\b(?!\s+(many|much))|summari[sz]e|tell|describe|what happened)", question, re.IGNORECASE) else 3
    if re.match(r"\W*(when|who|which|how (many|much))\b", question, re.IGNORECASE):
        base = 2
    return min(MAX_SENTENCES, base + parts - 1)


CITED_FOR_NAME = 2  # articles cited for a who/which answer: its best naming articles (a third was gold evidence 44 % of the time)
CLAUSE_WEIGHT = 2.0  # how much an article's match with the words around its outlet's mention counts beside its best sentence
DATE_MATCH = 3.0  # for the outlet's article published on the date the words around its mention name: it decides


def clause_picks(question: str, passages: Sequence[Passage]) -> list[Passage]:
    """For each mention of an outlet in the question, that outlet's passage that best matches the words around
    the mention (up to the neighbouring mentions) and the date they name: "accused by Fortune of …, claimed by
    The Verge to …" asks for a Fortune article about the accusation, not every Fortune article on the company.
    [] when no outlet is named.

    >>> from index.types import Hit
    >>> def p(n, source, text): return Passage(n, Hit(n, str(n), 1.0, text, 0, 9, source=source), (EvidenceSentence(text, 0, 9, 0, 1.0),), 1.0)
    >>> ps = [p(1, "Wire", "Rome cut taxes."), p(2, "Wire", "Rome hired a coach."), p(3, "Post", "Milan cut taxes.")]
    >>> [x.n for x in clause_picks("Did Wire report that Rome hired a coach, while the Post said Milan cut taxes?", ps)]
    [2, 3]
    """
    picks: list[Passage] = []
    for around, sources in outlet_clauses(question, passages):
        terms, dates = content_words(around), find_dates(around)

        def match(p: Passage) -> float:
            words = overlap(terms, content_words(" ".join(s.text for s in p.sentences)))
            dated = bool(p.hit.published) and any(d.contains(p.hit.published) for d in dates)
            return p.score + CLAUSE_WEIGHT * words + (DATE_MATCH if dated else 0.0)

        candidates = [p for p in passages if source_of(p) in sources and p not in picks]
        if candidates:
            picks.append(max(candidates, key=match))
    return picks


def outlet_clauses(question: str, passages: Sequence[Passage]) -> list[tuple[str, tuple[str, ...]]]:
    """For each mention of a passage's outlet in the question, the words around it (up to the neighbouring
    mentions) and the outlet names it matches.

    >>> from index.types import Hit
    >>> ps = [Passage(n, Hit(n, str(n), 1.0, "", 0, 0, source=s), (), 1.0) for n, s in [(1, "Wire"), (2, "Post")]]
    >>> [(" ".join(a.split()), sorted(s)) for a, s in outlet_clauses("Did Wire report a win, while the Post said a loss?", ps)]
    [('Did report a win, while the', ['Wire']), ('report a win, while the said a loss?', ['Post'])]
    """
    mentions = find_source_mentions(question, sorted({source_of(p) for p in passages if source_of(p)}))
    return [
        (question[mentions[i - 1][1] if i else 0 : start] + " " + question[end : mentions[i + 1][0] if i + 1 < len(mentions) else len(question)], sources)
        for i, (start, end, sources) in enumerate(mentions)
    ]


def compose(
    question: str, passages: Sequence[Passage], common: Collection[str] = frozenset(), similarity: Similarity | None = None
) -> tuple[list[Sentence], list[Citation]]:
    """The evidence answer: a direct answer per question part, what each named outlet reports, then support.

    `common` holds the words the archive writes in lower case (see `attributed`); `similarity` (embedding cosine of
    texts to texts) lets a yes/no verdict weigh claims by meaning, not words alone.

    >>> from index.types import Hit
    >>> h = Hit(1, "a", 1.0, "The council voted. Work starts in September. The work takes weeks.", 0, 0, source="Eastbrook Daily")
    >>> p = Passage(1, h, (EvidenceSentence("The council voted.", 0, 18, 0, 1.2, h), EvidenceSentence("Work starts in September.", 19, 44, 0, 1.0, h)), 1.2)
    >>> [s.text for s in compose("When will work start?", [p], {"work"})[0]]
    ['Eastbrook Daily reports that work starts in September.', 'The council voted.']
    """
    parts = question_parts(question)
    # A question that names outlets is about their reporting: the answer draws on their articles when it can.
    named = sources_named(question, [source_of(p) for p in passages])
    own = [p for p in passages if source_of(p) in named]
    if own:
        passages = own
    picks = clause_picks(question, passages)
    order = ranked(picks or passages)
    chosen: list[tuple[str, EvidenceSentence, Passage]] = []  # (prefix, sentence, passage)
    openings: list[Sentence] = []
    citations: dict[int, Citation] = {}

    def take(sentence: EvidenceSentence, passage: Passage, prefix: str = "") -> None:
        if all(s is not sentence and not is_near_duplicate(s.text, sentence.text, 0.6) for _, s, _ in chosen):
            chosen.append((prefix, sentence, passage))

    for intent in parts:
        if intent.kind == "entity":
            name, naming = best_entity(intent, question, passages, common)
            if name:
                cited = list(dict.fromkeys([p.n for _, p in naming if p in picks] + [p.n for _, p in naming]))[:CITED_FOR_NAME]
                openings.append(Sentence(f"{name}.", tuple(cited), True, 1.0))
                for sentence, passage in naming:
                    if passage.n in cited:
                        citations.setdefault(passage.n, make_citation(passage, sentence))
                take(*next((s, p) for s, p in naming if p.n in cited))
                continue
        if intent.kind == "yes_no":
            verdict = check_claims(intent.text, passages, similarity)
            if verdict.reason:  # read from the articles' dates: say so, citing both articles
                openings.append(Sentence(f"{verdict.word}: {verdict.reason}.", tuple(p.n for p in verdict.dated), True, 1.0))
                for passage in verdict.dated:
                    best = max(passage.sentences, key=lambda s: s.score)
                    citations.setdefault(passage.n, make_citation(passage, best))
                    take(best, passage)
                continue
            for sentence, passage in verdict.found:
                take(sentence, passage, f"{verdict.word}: " if verdict.word and not chosen else "")
            if verdict.found:
                continue
        if intent.kind == "describe":
            subject = set(folded(intent.subject).split())
            about = [(s, p) for s, p in order if subject & set(folded(s.text).split())]
            if about:
                take(*about[0])
                continue
        floor = TYPED_FLOOR * order[0][0].score if order else 0.0
        typed = [(s, p) for s, p in order if answers_kind(intent.kind, s.text) and s.score >= floor]
        if typed or order:
            take(*opening(typed or order))
    # After a name, each outlet speaks from an article naming it: one that doesn't is off the answer (dev: a new
    # article cited there was gold evidence one time in three).
    reporting = [(s, p) for s, p in ranked(passages) if p.n in citations] if openings else order
    for outlet in named or outlets_named(question):
        own = [(s, p) for s, p in reporting if folded(outlet) in folded(source_of(p))]
        if own and not any(folded(outlet) in folded(source_of(p)) for _, _, p in chosen):
            take(*own[0])
    for pick in picks:  # an outlet named twice ("the Sporting News article …, the Sporting News report …") reports twice
        own = [(s, p) for s, p in reporting if p is pick]
        if own and not any(p is pick for _, _, p in chosen) and pick.n not in citations:
            take(*own[0])
    # Support beyond the direct answers comes only from the passages they cite: a further article is more often
    # off the question than on it (dev: citation precision 0.761 -> 0.778, recall 0.658 -> 0.609).
    wanted, cited = sentences_wanted(question, len(parts)), set(citations) | {p.n for _, _, p in chosen}
    for sentence, passage in order:
        if len(openings) + len(chosen) >= wanted:
            break
        if passage.n in cited:
            take(sentence, passage)
    return _render(openings, chosen, citations, common)


def opening(candidates: Sequence[tuple[EvidenceSentence, Passage]]) -> tuple[EvidenceSentence, Passage]:
    """The (sentence, passage) a part's answer opens with, from candidates best first: among those within CLOSE_CALL
    of the best, the one from the passage the retriever ranked highest. The sentence scores can't tell such
    sentences apart, and the support the answer adds next comes from the article the opening cites.

    >>> from index.types import Hit
    >>> def c(n, score): return EvidenceSentence(f"S{n}.", 0, 3, n, score), Passage(n, Hit(n, str(n), 1.0, "", 0, 3), (), score)
    >>> [opening([c(4, 2.05), c(1, 2.01)])[1].n, opening([c(4, 2.05), c(1, 1.80)])[1].n]
    [1, 4]
    """
    best = standing(candidates[0][0])
    return min((c for c in candidates if standing(c[0]) >= (1 - CLOSE_CALL) * best), key=lambda c: c[1].n)


def _render(
    openings: list[Sentence], chosen: list[tuple[str, EvidenceSentence, Passage]], citations: dict[int, Citation], common: Collection[str]
) -> tuple[list[Sentence], list[Citation]]:
    """Attribute each chosen sentence to its outlet the first time that outlet speaks; cite every span."""
    sentences = list(openings)
    spoken: set[str] = set()
    for prefix, sentence, passage in chosen:
        source = source_of(passage)
        text = attributed(sentence.text, "" if source in spoken else source, common)
        spoken.add(source)
        sentences.append(Sentence(prefix + text, (passage.n,), True, round(sentence.score, 3)))
        citations.setdefault(passage.n, make_citation(passage, sentence))
    return sentences, [citations[n] for n in sorted(citations)]
