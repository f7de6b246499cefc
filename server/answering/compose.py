"""Composing an answer from the evidence alone: a direct answer first, then what each source reports.

Pure functions over numbered `Passage`s. Every sentence is an evidence sentence in the reader's words around
it ("Eastbrook Daily reports that work is expected to start in September [1]."), so it is checked by
construction: its claim is the cited span, word for word. The opening sentence answers what was asked: the
name for who/which, the date for when, the number for how many, the reason for why; a yes/no verdict only
when `verdict.check_claims` can check it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence

from server.answering.abstain import folded, named_entities
from server.answering.citations import is_near_duplicate, make_citation
from server.answering.evidence import STOPWORDS, EvidenceSentence, Passage, content_words, sources_named
from server.answering.question import Intent, answers_kind, outlets_named, question_parts
from server.answering.types import Citation, Sentence
from server.answering.verdict import check_claims

STOPWORDS_CAPITALIZED = frozenset(w.capitalize() for w in STOPWORDS)
_ARTICLE_MARKER = re.compile(r"\s*\[\s*\d+(?:\s*[,;\-–]\s*\d+)*\s*\]")
_TITLES = frozenset(
    "manager coach striker substitute captain goalkeeper midfielder defender player runner governor minister president "
    "chief executive director leader mayor spokesman spokeswoman spokesperson economist analyst scientist researcher "
    "entomologist astronomer engineer professor founder chairman chair ceo head officer member secretary senator judge "
    "lawyer prosecutor author writer actor singer dr mr mrs ms prof sir dame lord".split()
)
_PERSON_HINT = re.compile(r"\b(said|says|told|who is|who was|aged)\b|,\s+\d{2},")
_ORG_WORD = re.compile(
    r"\b(Inc|Corp|Group|Motors?|Bank|Ltd|Company|Co|Holdings|Labs|Media|Games|Airlines|Athletic|United|City|FC|Rovers|"
    r"Council|University|Institute|Observatory|Agency|Authority|Review|Daily|Weekly|Ledger|Herald|Times|News|Party|"
    r"Government|Ministry|Association|Club|Semiconductor|Technologies|Systems|Energy|Foundation)\b"
)
MAX_SENTENCES = 6
MENTION_WEIGHT = 0.2  # per evidence sentence naming a candidate answer (up to five)
REFERRING_PENALTY = 0.7  # "His comments came days after …" leans on a sentence the reader doesn't see
_REFERRING = re.compile(r"\W*(he|she|his|her|they|their|it|its|this|that|these|those|such|the move|the decision)\b", re.IGNORECASE)
TYPED_FLOOR = 0.6  # a sentence with the kind of fact asked for opens the answer only if it scores this share of the best


def strip_markers(text: str) -> str:
    """Sentence text without the article's own citation-like markers, so only Byline's [n] reach the answer.

    >>> strip_markers("Answer: PWNED [1]. Rome waits [12][3].")
    'Answer: PWNED. Rome waits.'
    """
    return " ".join(_ARTICLE_MARKER.sub("", text).split())


def source_of(passage: Passage) -> str:
    """The outlet a passage comes from, or "" when its article names none.

    >>> from index.types import Hit
    >>> source_of(Passage(1, Hit(1, "a", 1.0, "", 0, 0, source="The Verge"), (), 1.0))
    'The Verge'
    """
    return (passage.hit.source or "").strip()


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
    if word == "I" or (lowered not in STOPWORDS and lowered not in _TITLES and lowered not in common and word[0].isupper()):
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


def ranked(passages: Sequence[Passage]) -> list[tuple[EvidenceSentence, Passage]]:
    """Every evidence sentence with its passage, best first (questions, which restate, are left out).

    >>> from index.types import Hit
    >>> p = Passage(1, Hit(1, "a", 1.0, "", 0, 0), (EvidenceSentence("A b.", 0, 4, 0, 0.2), EvidenceSentence("C d.", 5, 9, 0, 0.9)), 0.9)
    >>> [s.text for s, _ in ranked([p])]
    ['C d.', 'A b.']
    """
    pairs = [(s, p) for p in passages for s in p.sentences if not s.text.rstrip(" \"'”’").endswith("?")]
    return sorted(pairs, key=lambda pair: (-pair[0].score * (REFERRING_PENALTY if _REFERRING.match(pair[0].text) else 1.0), pair[1].n))


def best_entity(
    intent: Intent, question: str, passages: Sequence[Passage], common: Collection[str] = frozenset()
) -> tuple[str, list[tuple[EvidenceSentence, Passage]]]:
    """The name that best answers a who/which question, and the evidence sentences that name it.

    Names the question itself uses, and outlet names, don't count. A name scores the best question-relevance of
    a sentence naming it in each article, summed over articles, so a name several sources give wins.

    >>> from index.types import Hit
    >>> h = Hit(1, "a", 1.0, "", 0, 0, source="Wire")
    >>> p = Passage(1, h, (EvidenceSentence("Lumen Labs designs the chip in Eastbrook.", 0, 40, 0, 1.0, h),), 1.0)
    >>> best_entity(Intent("Which company designs the chip?", "entity", "organization"), "Which company designs the chip?", [p])[0]
    'Lumen Labs'
    """
    asked = folded(question)
    outlets = {folded(source_of(p)) for p in passages} | {folded(o) for o in outlets_named(question)}
    scores: dict[str, dict[int, float]] = {}
    support: dict[str, list[tuple[EvidenceSentence, Passage]]] = {}
    asked_terms = content_words(question)
    texts = [p.hit.text for p in passages]
    common = CommonHere(common, " ".join(texts))
    for sentence, passage in ranked(passages):
        for raw in named_entities(sentence.text):
            name = bare_name(raw, common)
            if intent.entity_type == "person" and len(name.split()) == 1:
                name = full_name(name, texts)  # "Altman" is "Sam Altman" where the evidence says so
            key = folded(name)
            if not name or key in asked or any(key in o or o in key for o in outlets if o) or all(w in asked.split() for w in key.split()):
                continue
            weight = _type_weight(intent.entity_type, name, sentence.text) * _nearness(name, sentence.text, asked_terms)
            per_article = scores.setdefault(name, {})
            per_article[passage.n] = max(per_article.get(passage.n, 0.0), sentence.score * weight)
            support.setdefault(name, []).append((sentence, passage))
    # A surname ("Tavares", "Bankman-Fried") counts for the full name it ends ("Carlos Tavares"); a name that
    # opens a longer one ("Google" in "Google Play") gets the longer one's mentions too.
    for short in sorted(scores, key=lambda n: len(n.split())):
        if short not in scores:
            continue
        words = short.split()
        ending = [n for n in scores if n != short and n.split()[-len(words):] == words]
        if ending:
            full = max(ending, key=lambda n: sum(scores[n].values()))
            for n, value in scores.pop(short).items():
                scores[full][n] = max(scores[full].get(n, 0.0), value)
            support[full] += support.pop(short)
            continue
        for longer in [n for n in scores if n != short and n.split()[: len(words)] == words]:
            # "Google" gets the mentions of "Google Play" when it is named alone as often; "Beeper" is "Beeper Mini".
            keep, fold = (short, longer) if len(support[short]) >= len(support[longer]) else (longer, short)
            for n, value in scores[fold].items():
                scores[keep][n] = max(scores[keep].get(n, 0.0), value)
            support[keep] += support[fold]
            if keep == longer:
                scores.pop(short)
                support.pop(short)
                break
    if not scores:
        return "", []
    # The best sentence per article, summed over articles, plus how often the evidence names it.
    name = max(scores, key=lambda n: (sum(scores[n].values()) + MENTION_WEIGHT * min(5, len(support[n])), len(scores[n])))
    return name, support[name]


def full_name(surname: str, texts: Sequence[str]) -> str:
    """The full name a surname stands for in the texts (the most frequent "First Last"), or the surname.

    >>> full_name("Swift", ["Taylor Swift sang.", "Swift waved.", "Taylor Swift left."]), full_name("Rome", ["Rome waits."])
    ('Taylor Swift', 'Rome')
    """
    forms = Counter(m.group(1) for text in texts for m in re.finditer(rf"\b((?:[A-Z][\w'’-]+\s+){{1,2}}{re.escape(surname)})\b", text))
    for form, _ in forms.most_common():
        if form.split()[0] not in STOPWORDS_CAPITALIZED:
            return form
    return surname


class CommonHere:
    """`word in words`: a word the archive writes in lower case and the evidence doesn't write capitalized more often
    (so "Google", which some article writes in a URL as "google", is still a name here).

    >>> words = CommonHere({"google", "business"}, "Google won. Google sued. Business groups said business was slow.")
    >>> "google" in words, "business" in words, "rome" in words
    (False, True, False)
    """

    def __init__(self, archive: Collection[str], text: str):
        self.archive = archive
        self.lower = Counter(re.findall(r"\b[a-z][a-z'’-]*\b", text))
        self.capital = Counter(w.lower() for w in re.findall(r"\b[A-Z][a-z'’-]*\b", text))

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self.archive and self.lower[word] >= self.capital[word]


def bare_name(name: str, common: Collection[str] = frozenset()) -> str:
    """A name without the titles and common words a sentence opened it with ("Manager Sandra Keane").

    >>> bare_name("Entomologist Dr. Rafael Costa"), bare_name("Business", {"business"}), bare_name("Lucia Moreno")
    ('Rafael Costa', '', 'Lucia Moreno')
    """
    words = name.split()
    while words and (words[0].lower().rstrip(".") in _TITLES or (words[0].lower() in common and len(words) > 1)):
        words = words[1:]
    if len(words) == 1 and words[0].lower() in common:
        return ""
    return " ".join(words)


def _titled(name: str, sentence: str) -> bool:
    """Whether the sentence gives the name a person's title or role ("striker Kofi Mensah", "Tavares, 65,")."""
    before = re.search(rf"(\w+)\.?\s+(?:Dr\.?\s+)?{re.escape(name)}", sentence)
    return bool(before and before.group(1).lower() in _TITLES) or bool(_PERSON_HINT.search(sentence))


def _type_weight(entity_type: str, name: str, sentence: str) -> float:
    """How well a name fits the kind of entity asked for (a person, an organization)."""
    words = name.split()
    if entity_type == "person":
        if _ORG_WORD.search(name):
            return 0.4
        return 1.5 if len(words) >= 2 and _titled(name, sentence) else 1.0 if len(words) >= 2 else 0.6
    if entity_type == "organization":
        return 1.3 if _ORG_WORD.search(name) or len(words) == 1 else 0.8
    return 1.0


def _nearness(name: str, sentence: str, asked: set[str]) -> float:
    """More weight when the question's own words stand next to the name (within six words either side)."""
    at = sentence.find(name)
    if at < 0:
        return 1.0
    window = " ".join(sentence[:at].split()[-6:] + sentence[at + len(name):].split()[:6])
    return 1.0 + 0.5 * min(2, len(asked & content_words(window)))


def compose(question: str, passages: Sequence[Passage], common: Collection[str] = frozenset()) -> tuple[list[Sentence], list[Citation]]:
    """The evidence answer: a direct answer per question part, what each named outlet reports, then support.

    `common` holds the words the archive writes in lower case (see `attributed`).

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
    order = ranked(passages)
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
                cited = list(dict.fromkeys(p.n for _, p in naming))[:3]
                openings.append(Sentence(f"{name}.", tuple(cited), True, 1.0))
                for sentence, passage in naming:
                    if passage.n in cited:
                        citations.setdefault(passage.n, make_citation(passage, sentence))
                take(*naming[0])
                continue
        if intent.kind == "yes_no":
            verdict, claims = check_claims(intent.text, passages)
            for sentence, passage in claims:
                take(sentence, passage, f"{verdict}: " if verdict and not chosen else "")
            if claims:
                continue
        if intent.kind == "describe":
            subject = set(folded(intent.subject).split())
            about = [(s, p) for s, p in order if subject & set(folded(s.text).split())]
            if about:
                take(*about[0])
                continue
        floor = TYPED_FLOOR * order[0][0].score if order else 0.0
        typed = [(s, p) for s, p in order if answers_kind(intent.kind, s.text) and s.score >= floor]
        if typed:
            take(*typed[0])
        elif order:
            take(*order[0])
    for outlet in named or outlets_named(question):
        own = [(s, p) for s, p in order if folded(outlet) in folded(source_of(p))]
        if own and not any(folded(outlet) in folded(source_of(p)) for _, _, p in chosen):
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
