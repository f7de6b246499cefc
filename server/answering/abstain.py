"""Deciding from the question and the evidence alone whether the archive can answer. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

_NAME = r"(?:[A-Z][\w&.'’-]*|of|and|&)(?:\s+(?:[A-Z][\w&.'’-]*|of|and|&))*"
_KIND = r"(?:article|report|piece|review|story|analysis|coverage|column|feature|post|op-ed|editorial|interview|investigation|forecast)"
# "an article from Bloomberg", "a report by Reuters", "according to Forbes", "a CNN report", "The Verge article"
_PUBLICATION = re.compile(
    rf"\b{_KIND}s?\s+(?:from|by|in|published by|published in)\s+(?:the\s+|The\s+)?(?P<after>{_NAME})"
    rf"|\baccording\s+to\s+(?:the\s+|The\s+)?(?P<according>{_NAME})"
    rf"|\banother\s+(?:from|by|in)\s+(?:the\s+|The\s+)?(?P<another>{_NAME})"
    rf"|\b(?:from|by|in|of|an?|and)\s+(?:an?\s+|the\s+|The\s+)?(?P<before>{_NAME})\s+{_KIND}",
)


_NOT_NAMES = frozenset(
    "January February March April May June July August September October November December Monday Tuesday "
    "Wednesday Thursday Friday Saturday Sunday A An The Both Each".split()
)


def named_publications(question: str) -> list[str]:
    """The publication names a question attributes articles to.

    >>> named_publications("Considering an article from Bloomberg and a Reuters report, according to The Wall Street Journal, who won?")
    ['Bloomberg', 'Reuters', 'Wall Street Journal']
    """
    names = []
    for match in _PUBLICATION.finditer(question):
        name = next(group for group in match.groups() if group)
        name = re.sub(r"^(?:of|and|&)\s+|\s+(?:of|and|&)$", "", name).strip(" '’")
        if name.endswith(("'s", "’s")):
            continue  # "Meta's report" names an owner, not a publication
        if name and name[0].isupper() and name.split()[0] not in _NOT_NAMES and name not in names:
            names.append(name)
    return names


def unknown_publications(question: str, known_sources: Iterable[str]) -> list[str]:
    """The publications a question names that no source of the archive matches (by name or outlet).

    >>> unknown_publications("What did an article from Bloomberg and a report by The Verge say?", ["The Verge", "BBC News - Arts"])
    ['Bloomberg']
    >>> unknown_publications("According to the BBC, who?", ["BBC News - Arts"])
    []
    """
    known = [" ".join(s.lower().replace("the ", " ").split()) for s in known_sources]
    unknown = []
    for name in named_publications(question):
        key = " ".join(name.lower().replace("the ", " ").split())
        if not any(key in source or source in key for source in known if source):
            unknown.append(name)
    return unknown


_ENTITY = re.compile(r"(?<![\w])([A-Z][\w'’.-]*(?:\s+(?:de|of|the|van|von|da|la|le|&)?\s*[A-Z][\w'’.-]*)*)")
_NOT_ENTITY_START = frozenset(
    "Considering Which Who What Whose When Where Why How Does Did Do Is Was Were Are Has Have Had Between After "
    "Before Both Based According The A An In On Of And For To From By As At If While Although Given Among "
    "Yes No".split()
) | _NOT_NAMES


def folded(text: str) -> str:
    """Lower-cased, curly apostrophes and possessive 's removed, whitespace collapsed: the form names are compared in.

    >>> folded("Italy’s  Dongfeng's plant")
    'italy dongfeng plant'
    """
    return " ".join(text.lower().replace("’", "'").replace("'s", "").split())


def named_entities(question: str) -> list[str]:
    """Capitalized names in a question (split at possessives), leaving out question words and publications.

    >>> named_entities("Who won the Tour de France after Pogacar's crash, according to an article from Reuters?")
    ['Tour de France', 'Pogacar']
    """
    publications = set(named_publications(question))
    names: list[str] = []
    for match in _ENTITY.finditer(question):
        for part in re.split(r"['’]s\s+", match.group(1)):
            words = part.strip(".'’ -").split()
            while words and (words[0] in _NOT_ENTITY_START or words[0].islower()):
                words = words[1:]
            name = re.sub(r"-[a-z]+$", "", " ".join(words).removesuffix("'s").removesuffix("’s"))  # "OpenAI-developed"
            if len(name) < 3 or any(name in p or p in name for p in publications) or name in names:
                continue
            names.append(name)
    return names


# Words that open a request rather than name something ("Summarize the Dongfeng story", "Tell me about …").
_OPENERS = frozenset(
    "summarize summarise tell explain describe list give show compare find name outline recap discuss define "
    "please can could would should will did does do is are was were has have had what who why when where which how".split()
)


def name_forms(name: str, opens_question: bool) -> list[str]:
    """The forms under which a name counts as mentioned: itself, and, for a name the question opens with, the
    name without its first word (a capitalized "Players" or "Summarize" need not be part of it).

    >>> name_forms("Players of Baldur", True), name_forms("Summarize the Dongfeng", True), name_forms("Tour de France", False)
    (['Players of Baldur', 'Baldur'], ['Summarize the Dongfeng', 'Dongfeng'], ['Tour de France'])
    """
    forms = [name]
    words = name.split()
    if opens_question and len(words) > 1:
        rest = words[1:]
        while rest and rest[0].islower():
            rest = rest[1:]
        if rest:
            forms.append(" ".join(rest))
    return forms


def names_to_check(question: str) -> list[list[str]]:
    """The question's names, each as the list of forms any of which the archive must mention.

    >>> names_to_check("Summarize the Dongfeng story"), names_to_check("Tell me about Carlos Tavares")
    ([['Dongfeng']], [['Carlos Tavares']])
    >>> names_to_check("Players of Baldur’s Gate 3 got a patch?")
    [['Players of Baldur', 'Baldur'], ['Gate']]
    """
    first = re.match(r"\W*([\w'’-]+)", question)
    opener = first.group(1) if first else ""
    checks = []
    for name in named_entities(question):
        words = name.split()
        if words[0] == opener and words[0].lower() in _OPENERS:
            words = words[1:]
            while words and words[0].islower():
                words = words[1:]
            if not words:
                continue
        checks.append(name_forms(" ".join(words), question.lstrip(" \"'“").startswith(name)))
    return checks


def missing_entities(question: str, mentioned: Callable[[str], bool]) -> list[str]:
    """The names of a question that the archive never mentions; `mentioned(name)` asks the archive.

    >>> archive = folded("Dongfeng talks in France. Tour dates. Baldur's Gate 3 patch.")
    >>> mentioned = lambda name: folded(name) in archive
    >>> missing_entities("Who won the Tour de France?", mentioned), missing_entities("Players of Baldur’s Gate 3?", mentioned)
    (['Tour de France'], [])
    """
    return [forms[0] for forms in names_to_check(question) if not any(mentioned(form) for form in forms)]
