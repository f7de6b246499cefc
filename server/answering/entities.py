"""Choosing the name that answers a who/which question from the evidence alone.

Pure functions over numbered `Passage`s. A multi-hop who/which question describes one entity through several
sources ("the individual who, according to Fortune …, and, as TechCrunch reports, …"), so the answer is the name
those sources all point to: the name that the most retrieved articles mention, among the names of the kind asked
for (a person, an organization) that the most relevant sentences carry. The forms a text uses for one entity
(a surname, a first name, an abbreviation) count for its full name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence

from server.answering.abstain import folded, named_entities
from server.answering.evidence import STOPWORDS, EvidenceSentence, Passage, content_words, ranked, source_of
from server.answering.question import Intent, outlets_named

STOPWORDS_CAPITALIZED = frozenset(w.capitalize() for w in STOPWORDS)
TITLES = frozenset(
    "manager coach striker substitute captain goalkeeper midfielder defender player runner governor minister president "
    "chief executive director leader mayor spokesman spokeswoman spokesperson economist analyst scientist researcher "
    "entomologist astronomer engineer professor founder chairman chair ceo cto cfo coo head officer member secretary "
    "senator judge lawyer prosecutor author writer actor singer dr mr mrs ms prof sir dame lord former".split()
)
_PERSON_HINT = re.compile(r"\b(said|says|told|who is|who was|aged)\b|,\s+\d{2},")
# Words that end or make up an organization's name: a person's name has none of them.
_ORG_WORD = re.compile(
    r"\b(Inc|Corp|Group|Motors?|Bank|Ltd|LLC|Company|Co|Holdings|Labs|Media|Games|Airlines|Athletic|United|City|FC|Rovers|"
    r"Council|University|Institute|Observatory|Agency|Authority|Review|Daily|Weekly|Ledger|Herald|Times|News|Party|"
    r"Government|Ministry|Association|Club|Semiconductor|Technologies|Systems|Energy|Foundation|Commission|Committee|"
    r"Court|Department|Bureau|Reserve|Fund|Research|Exchange|Capital|Partners|Ventures|Studios?|Entertainment|League|"
    r"Federation|Union|Board|Office|Services?|Center|Centre|Network|Sportsbook|Stadium|Tower|County|State|Street)\b"
)
MENTION_WEIGHT = 0.2  # per evidence sentence naming a candidate answer (up to five)
COVERAGE_WEIGHT = 0.5  # per further retrieved article that mentions a candidate (in any of its forms)


class CommonHere:
    """`word in words`: a word the archive writes in lower case and the evidence doesn't write capitalized more often
    inside a sentence (so "Google", which some article writes in a URL as "google", is still a name here, while a
    word capitalized only because it opens a sentence is not).

    >>> words = CommonHere({"google", "business", "laid", "openai"}, "Google won. Ask Google. Business groups said business was slow. Laid off. OpenAI shipped.")
    >>> "google" in words, "business" in words, "rome" in words, "laid" in words, "openai" in words
    (False, True, False, True, False)
    """

    def __init__(self, archive: Collection[str], text: str):
        self.archive = archive
        self.lower = Counter(re.findall(r"\b[a-z][a-z'’-]*\b", text))
        # Capitalized inside a sentence, or written in a way only names are ("OpenAI", "iPhone").
        inner = re.findall(r"(?<=[\w,;:’'\"”)]\s)([A-Z][\w'’-]*)", text)
        camel = re.findall(r"\b(\w*[a-z]\w*[A-Z][\w'’-]*)", text)
        self.capital = Counter(w.lower() for w in inner + camel)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self.archive and self.lower[word] >= self.capital[word]


def bare_name(name: str, common: Collection[str] = frozenset(), opens_sentence: bool = False) -> str:
    """A name without the titles, roles and common words a sentence put before it ("Manager Sandra Keane",
    "FTX Co-Founder Sam Bankman-Fried"), nor the connective a sentence opened with ("But Bankman-Fried").

    >>> bare_name("Entomologist Dr. Rafael Costa"), bare_name("Business", {"business"}), bare_name("But Bankman-Fried", opens_sentence=True)
    ('Rafael Costa', '', 'Bankman-Fried')
    >>> bare_name("FTX Co-Founder Sam Bankman-Fried"), bare_name("All Blacks")
    ('Sam Bankman-Fried', 'All Blacks')
    """
    words = name.split()
    titled = [i for i, w in enumerate(words[:-1]) if w.lower().rstrip(".") in TITLES or w.lower().split("-")[-1] in TITLES]
    if titled:
        words = words[titled[-1] + 1:]
    if opens_sentence and len(words) > 1 and words[0] in STOPWORDS_CAPITALIZED:
        words = words[1:]
    while words and (words[0].lower().rstrip(".") in TITLES or (words[0].lower() in common and len(words) > 1)):
        words = words[1:]
    if len(words) == 1 and words[0].lower() in common:
        return ""
    return " ".join(words)


def full_name(surname: str, texts: Sequence[str]) -> str:
    """The full name a surname stands for in the texts (the most frequent "First Last"), or the surname.

    >>> full_name("Swift", ["Taylor Swift sang.", "Swift waved.", "Taylor Swift left."]), full_name("Rome", ["Rome waits."])
    ('Taylor Swift', 'Rome')
    >>> full_name("Bankman-Fried", ["Is Sam Bankman-Fried a bad man?"]), full_name("Ellison", ["CEO Caroline Ellison"])
    ('Sam Bankman-Fried', 'Caroline Ellison')
    >>> full_name("Kelce", ["The Taylor Swift-Travis Kelce timeline", "Travis Kelce caught it."])
    'Travis Kelce'

    """
    found = (m.group(1).split() for text in texts for m in re.finditer(rf"\b((?:[A-Z][\w'’-]+\s+){{1,2}}{re.escape(surname)})\b", text))
    # "Is Sam Bankman-Fried …" (a headline) and "CEO Caroline Ellison" give the name after the function word or title.
    forms = Counter(" ".join(w[max((i + 1 for i, x in enumerate(w[:-1]) if x in STOPWORDS_CAPITALIZED or x.lower() in TITLES), default=0):]) for w in found)
    for form, _ in forms.most_common():
        if form != surname and not _ORG_WORD.search(form) and not re.search(r"-[A-Z]", form.rsplit(" ", 1)[0]):
            return form  # not "Taylor Swift-Travis Kelce" for Kelce
    return surname


def expanded(short: str, texts: Sequence[str]) -> str:
    """The long name an abbreviation or a clipped form stands for in the texts ("RA" for Rugby Australia, "Fed" for
    the Federal Reserve), or the name itself.

    >>> expanded("RA", ["Rugby Australia (RA) said so."]), expanded("Fed", ["The Federal Reserve met. The Fed waits."])
    ('Rugby Australia', 'Federal Reserve')
    >>> expanded("Apple", ["Apple Music grew."])
    'Apple'
    """
    if " " in short or not short.isalpha() or len(short) > 5:
        return short
    phrases = Counter(m.group(1) for text in texts for m in re.finditer(r"\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+){1,3})\b", text))
    fits = []
    for phrase, count in phrases.items():
        words = [w for w in phrase.split() if w not in STOPWORDS_CAPITALIZED]
        initials = "".join(w[0] for w in words)
        clipped = len(short) >= 3 and short[1:].islower() and words and words[0] != short and words[0].startswith(short)
        if len(words) >= 2 and (initials == short or clipped):
            fits.append((count, phrase if words == phrase.split() else " ".join(words)))
    return max(fits)[1] if fits else short


def candidate_names(sentence: str) -> list[str]:
    """The capitalized names of a sentence, split where a headline's capitalized function word ("Reveal After
    OpenAI") or a hyphen between two full names ("Taylor Swift-Travis Kelce") joins two of them, and where "of"
    follows a person's full name ("Lucia Moreno of Spain", but "Bank of Northland" stays whole).

    >>> candidate_names("Reveal After OpenAI drama, the All Blacks and the Taylor Swift-Travis Kelce romance.")
    ['Reveal', 'OpenAI', 'All Blacks', 'Taylor Swift', 'Travis Kelce']
    >>> candidate_names("The race was won by Lucia Moreno of Spain, the Bank of Northland said.")
    ['Lucia Moreno', 'Spain', 'Bank of Northland']
    """
    names: list[str] = []
    for name in named_entities(sentence):
        parts = re.split(r"(?<=[a-z])-(?=[A-Z][\w'’]*\s+[A-Z])", name) if " " in name.split("-")[0] else [name]
        for part in parts:
            words = part.split()
            piece: list[str] = []
            for i, word in enumerate(words):
                if i and word in STOPWORDS_CAPITALIZED:
                    names.extend([" ".join(piece)] if piece else [])
                    piece = []
                else:
                    piece.append(word)
            names.extend([" ".join(piece)] if piece else [])
    names = [part for name in names for part in _person_of_place(name)]
    return list(dict.fromkeys(n for n in names if len(n) >= 2))


def _person_of_place(name: str) -> list[str]:
    """A person's full name and the place after "of" as two names; any other name as it is."""
    person, of, place = name.partition(" of ")
    return [person, place] if of and _person_like(person) else [name]


def _person_like(name: str) -> bool:
    """Whether a name is written as a person's full name: two or three capitalized words, no organization word."""
    words = name.split()
    return 2 <= len(words) <= 3 and not _ORG_WORD.search(name) and all(w[:1].isupper() and w not in STOPWORDS_CAPITALIZED for w in words)


def _titled(name: str, sentence: str) -> bool:
    """Whether the sentence gives the name a person's title or role ("striker Kofi Mensah", "Tavares, 65,")."""
    before = re.search(rf"(\w+)\.?\s+(?:Dr\.?\s+)?{re.escape(name)}", sentence)
    return bool(before and before.group(1).lower() in TITLES) or bool(_PERSON_HINT.search(sentence))


def type_weight(entity_type: str, name: str, sentence: str) -> float:
    """How well a name fits the kind of entity asked for (a person, an organization).

    >>> type_weight("person", "Alameda Research", "x"), type_weight("person", "Kofi Mensah", "striker Kofi Mensah scored")
    (0.3, 1.5)
    >>> type_weight("person", "Alameda", "x"), type_weight("organization", "Alameda Research", "x")
    (0.3, 1.3)
    """
    words = name.split()
    if entity_type == "person":
        if _ORG_WORD.search(name) or not all(w[:1].isupper() and not w.isupper() for w in words):
            return 0.3
        # One word that the evidence never writes after a first name ("Alameda") is seldom the person asked for.
        return 1.5 if len(words) >= 2 and _titled(name, sentence) else 1.0 if len(words) >= 2 else 0.3
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


def coverage(forms: Collection[str], passages: Sequence[Passage]) -> int:
    """How many passages' articles (their retrieved text and title) mention any of the forms of a name.

    >>> from index.types import Hit
    >>> ps = [Passage(n, Hit(n, str(n), 1.0, text, 0, 9), (), 1.0) for n, text in enumerate(["Sam Altman left.", "Altman spoke.", "Rome."], 1)]
    >>> coverage({"Sam Altman", "Altman"}, ps)
    2
    """
    patterns = [re.compile(rf"(?<![\w-]){re.escape(form)}(?![\w-])") for form in forms if form]
    return sum(1 for p in passages if any(pattern.search(f"{p.hit.title or ''}\n{p.hit.text}") for pattern in patterns))


def best_entity(
    intent: Intent, question: str, passages: Sequence[Passage], common: Collection[str] = frozenset()
) -> tuple[str, list[tuple[EvidenceSentence, Passage]]]:
    """The name that best answers a who/which question, and the evidence sentences that name it.

    Names the question itself uses, and outlet names, don't count. A name scores the best question-relevance of
    a sentence naming it in each article, summed over articles, and more for each further article that mentions
    it in any of its forms, so the name several sources point to wins over a person quoted beside it.

    >>> from index.types import Hit
    >>> h = Hit(1, "a", 1.0, "", 0, 0, source="Wire")
    >>> p = Passage(1, h, (EvidenceSentence("Lumen Labs designs the chip in Eastbrook.", 0, 40, 0, 1.0, h),), 1.0)
    >>> best_entity(Intent("Which company designs the chip?", "entity", "organization"), "Which company designs the chip?", [p])[0]
    'Lumen Labs'
    """
    asked = folded(question)
    outlets = {folded(source_of(p)) for p in passages} | {folded(o) for o in outlets_named(question)}
    asked_terms = content_words(question)
    texts = [f"{p.hit.title or ''}. {p.hit.text}" for p in passages]
    common = CommonHere(common, " ".join(p.hit.text for p in passages))  # not the titles: headlines capitalize every word
    scores: dict[str, dict[int, float]] = {}
    support: dict[str, list[tuple[EvidenceSentence, Passage]]] = {}
    forms: dict[str, set[str]] = {}
    for sentence, passage in ranked(passages):
        for raw in candidate_names(sentence.text):
            written = bare_name(raw, common, opens_sentence=sentence.text.lstrip(" \"'“‘").startswith(raw))
            name = expanded(written or raw, texts)  # "Fed", a common word too, still stands for the Federal Reserve
            if not written:
                if name == raw:
                    continue
                written = raw
            if intent.entity_type == "person" and len(name.split()) == 1:
                name = full_name(name, texts)  # "Altman" is "Sam Altman" where the evidence says so
            key = folded(name)
            if not name or key in asked or any(key in o or o in key for o in outlets if o) or all(w in asked.split() for w in key.split()):
                continue
            weight = type_weight(intent.entity_type, name, sentence.text) * _nearness(written, sentence.text, asked_terms)
            per_article = scores.setdefault(name, {})
            per_article[passage.n] = max(per_article.get(passage.n, 0.0), sentence.score * weight)
            support.setdefault(name, []).append((sentence, passage))
            forms.setdefault(name, {name}).add(written)
    _merge_forms(scores, support, forms, intent.entity_type == "person")
    if not scores:
        return "", []
    for name, written_as in forms.items():
        if len(name.split()) >= 2 and intent.entity_type == "person":
            written_as.add(name.split()[-1])  # a person is referred to by surname
    covered = {name: coverage(forms[name], passages) for name in scores}

    def score(name: str) -> tuple[float, int]:
        relevance = sum(scores[name].values()) + MENTION_WEIGHT * min(5, len(support[name]))
        return relevance * (1.0 + COVERAGE_WEIGHT * max(0, covered[name] - 1)), len(scores[name])

    name = max(scores, key=score)
    return name, support[name]


def _merge_forms(scores: dict, support: dict, forms: dict, persons: bool) -> None:
    """Count a surname ("Tavares") for the full name it ends ("Carlos Tavares"), and a name that opens a longer
    one ("Google" in "Google Play") together with it, under the form named more often (the full one for a person)."""
    for short in sorted(scores, key=lambda n: len(n.split())):
        if short not in scores:
            continue
        words = short.split()
        ending = [n for n in scores if n != short and n.split()[-len(words):] == words and _person_like(n)]
        if ending:
            _fold(max(ending, key=lambda n: sum(scores[n].values())), short, scores, support, forms)
            continue
        for longer in [n for n in scores if n != short and n.split()[: len(words)] == words]:
            # A person's full name, and an organization's formal name ("Epic Games" for "Epic"), answer best.
            prefer_long = persons or bool(_ORG_WORD.search(longer)) or len(support[longer]) > len(support[short])
            keep, fold = (longer, short) if prefer_long else (short, longer)
            _fold(keep, fold, scores, support, forms)
            if keep == longer:
                break


def _fold(keep: str, fold: str, scores: dict, support: dict, forms: dict) -> None:
    """Move the scores, support and forms of name `fold` onto name `keep`."""
    for n, value in scores.pop(fold).items():
        scores[keep][n] = max(scores[keep].get(n, 0.0), value)
    support[keep] += support.pop(fold)
    forms[keep] |= forms.pop(fold)
