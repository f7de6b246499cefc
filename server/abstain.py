"""Deciding from the question and the evidence alone whether the archive can answer. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable

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
