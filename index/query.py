"""Reading the sources and dates a question names. Pure functions over strings.

News questions often say where and when: "as reported by The Verge and TechCrunch", "published on
October 12, 2023", "after 2023-11-05". These become soft hints: the retriever boosts articles of those
sources and dates rather than filtering, because a question may also mention a source in passing.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
# "2023-10-05", "October 5, 2023", "5 October 2023", "October 2023", "Oct. 2023"
_DATE = re.compile(
    rf"\b(?:(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})"
    rf"|(?P<m1>{_MONTH})\.?\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y1>\d{{4}})"
    rf"|(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<m2>{_MONTH})\.?,?\s+(?P<y2>\d{{4}})"
    rf"|(?P<m3>{_MONTH})\.?,?\s+(?P<y3>\d{{4}}))\b",
    re.IGNORECASE,
)
_BEFORE = re.compile(r"\b(?:before|prior to|earlier than|until|by)\s+(?:the\s+)?$", re.IGNORECASE)
_AFTER = re.compile(r"\b(?:after|since|following|later than|from)\s+(?:the\s+)?$", re.IGNORECASE)
# Separators between an outlet's name and its section: "The Independent - Sports", "Cnbc | World ...".
_SECTION = re.compile(r"\s+[-|:–]\s+|:\s+")
_MIN_ALIAS = 4


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of ISO dates; None is open-ended."""

    start: str | None = None
    end: str | None = None

    def contains(self, date: str) -> bool:
        """Whether an ISO date (or datetime) falls in the range.

        >>> DateRange("2023-10-01", "2023-10-31").contains("2023-10-05T12:00:00+00:00")
        True
        """
        day = date[:10]
        if not day:
            return False
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class QueryHints:
    """What a question says about where and when: source names as the index knows them, and date ranges."""

    sources: tuple[str, ...] = ()
    dates: tuple[DateRange, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the question names no known source and no date."""
        return not self.sources and not self.dates


def source_aliases(source: str) -> list[str]:
    """Lower-case names a question may use for a source: the full name, its outlet part, without "The".

    >>> source_aliases("The Independent - Life and Style")
    ['the independent - life and style', 'independent - life and style', 'the independent', 'independent']
    >>> source_aliases("The Age")
    ['the age']
    """
    full = " ".join(source.split()).lower()
    outlet = " ".join(_SECTION.split(source, maxsplit=1)[0].split()).lower()
    aliases = [full]
    for alias in (_without_the(full), outlet, _without_the(outlet)):
        # "the age" without "the" would be the word "age": a shortened name must be distinctive enough.
        if alias not in aliases and len(alias) >= _MIN_ALIAS:
            aliases.append(alias)
    return aliases


def find_source_mentions(query: str, known_sources: Iterable[str]) -> list[tuple[int, int, tuple[str, ...]]]:
    """Where a question names known sources: (start, end, sources) per mention; a short name may mean several.

    >>> find_source_mentions("Did the Verge agree with Wired?", ["The Verge", "Wired"])
    [(4, 13, ('The Verge',)), (25, 30, ('Wired',))]
    """
    by_alias: dict[str, list[str]] = {}
    for source in sorted(set(known_sources)):
        for alias in source_aliases(source):
            by_alias.setdefault(alias, []).append(source)
    if not by_alias:
        return []
    pattern = re.compile(
        r"(?<![\w-])(?:" + "|".join(re.escape(a) for a in sorted(by_alias, key=len, reverse=True)) + r")(?![\w])"
    )
    mentions = []
    for match in pattern.finditer(query.lower()):
        alias = match.group()
        # Outlets are proper names: "the Verge" and "The Age" count, "at the age of" does not.
        name_start = match.start() + (4 if alias.startswith("the ") else 0)
        if query[name_start].isupper() or query[name_start].isdigit():
            mentions.append((match.start(), match.end(), tuple(by_alias[alias])))
    return mentions


def find_sources(query: str, known_sources: Iterable[str]) -> tuple[str, ...]:
    """The known sources a question names, in the order they first appear; a short name may mean several.

    >>> find_sources("As reported by the Verge and TechCrunch?", ["TechCrunch", "The Verge", "Wired"])
    ('The Verge', 'TechCrunch')
    >>> find_sources("Did The Independent say so?", ["The Independent - Sports", "The Independent - Travel"])
    ('The Independent - Sports', 'The Independent - Travel')
    >>> find_sources("at the age of ten", ["The Age"])
    ()
    """
    found: list[str] = []
    for _, _, sources in find_source_mentions(query, known_sources):
        found.extend(source for source in sources if source not in found)
    return tuple(found)


def source_clauses(query: str, sources: Iterable[str], min_words: int = 5) -> list[tuple[str, str]]:
    """Each named source with the part of the question about it: from its name up to the next source's name.

    A clause too short to search on (fewer than `min_words` words besides the name) is the whole question.

    >>> q = "Did the Verge say FTX hid losses, while Wired says SBF knew about the missing funds?"
    >>> source_clauses(q, ["The Verge", "Wired"])
    [('The Verge', 'Did the Verge say FTX hid losses, while'), ('Wired', 'Wired says SBF knew about the missing funds?')]
    >>> source_clauses("Which firm, per the Verge and Wired, won?", ["The Verge", "Wired"])[0][1]
    'Which firm, per the Verge and Wired, won?'
    """
    mentions = find_source_mentions(query, sources)
    parts: dict[str, list[str]] = {}
    for number, (start, end, named) in enumerate(mentions):
        clause_start = 0 if number == 0 else start
        clause_end = mentions[number + 1][0] if number + 1 < len(mentions) else len(query)
        clause = query[clause_start:clause_end].strip()
        words = len((query[clause_start:start] + query[end:clause_end]).split())
        for source in named:
            if words >= min_words:
                parts.setdefault(source, []).append(clause)
            else:
                parts.setdefault(source, [])
    return [(source, " ".join(clauses) if clauses else query) for source, clauses in parts.items()]


_PART_BREAK = re.compile(
    r",?\s+(?:and\s+(?:is\s+|was\s+|has\s+|had\s+)?also|while|whereas|but\s+also|and\s+(?=is|was|has|had|did|does))\s+",
    re.IGNORECASE,
)


def question_parts(query: str, min_words: int = 5) -> list[str]:
    """The clauses of a question that asks several things at once; [] when it asks one.

    >>> question_parts("Which firm spent billions on default search deals and is also accused of hurting publishers?")
    ['Which firm spent billions on default search deals', 'accused of hurting publishers?']
    >>> question_parts("Who won the final?")
    []
    """
    parts = [part.strip(" ,") for part in _PART_BREAK.split(query)]
    parts = [part for part in parts if len(part.split()) >= min_words - 2]
    return parts if len(parts) > 1 else []


def without_sources(text: str, known_sources: Iterable[str]) -> str:
    """The text with the source names it mentions cut out, so a name's words don't pull in unrelated chunks.

    >>> without_sources("Did The Verge report on Epic?", ["The Verge"])
    'Did report on Epic?'
    """
    kept, last = [], 0
    for start, end, _ in find_source_mentions(text, known_sources):
        kept.append(text[last:start])
        last = end
    kept.append(text[last:])
    return " ".join("".join(kept).split())


def find_dates(query: str) -> tuple[DateRange, ...]:
    """Date ranges a question names: a day, a month, or open-ended after "before"/"after".

    >>> find_dates("published on October 12, 2023 and in November 2023")
    (DateRange(start='2023-10-12', end='2023-10-12'), DateRange(start='2023-11-01', end='2023-11-30'))
    >>> find_dates("a report after 2023-11-05")
    (DateRange(start='2023-11-05', end=None),)
    >>> find_dates("before Nov. 5th, 2023")
    (DateRange(start=None, end='2023-11-05'),)
    """
    ranges: list[DateRange] = []
    for match in _DATE.finditer(query):
        day_range = _match_range(match)
        if day_range is None:
            continue
        prefix = query[max(0, match.start() - 20) : match.start()]
        if _BEFORE.search(prefix):
            day_range = DateRange(None, day_range.end)
        elif _AFTER.search(prefix):
            day_range = DateRange(day_range.start, None)
        if day_range not in ranges:
            ranges.append(day_range)
    return tuple(ranges)


def read_hints(query: str, known_sources: Iterable[str]) -> QueryHints:
    """Sources and dates named in a question.

    >>> read_hints("What did TechCrunch report on 2023-10-05?", ["TechCrunch"])
    QueryHints(sources=('TechCrunch',), dates=(DateRange(start='2023-10-05', end='2023-10-05'),))
    """
    return QueryHints(sources=find_sources(query, known_sources), dates=find_dates(query))


def _without_the(name: str) -> str:
    """A lower-case name without a leading "the "."""
    return name[4:] if name.startswith("the ") else name


def _match_range(match: re.Match) -> DateRange | None:
    """The day or month range of one date match; None for an impossible date."""
    groups = match.groupdict()
    try:
        if groups["iso"]:
            year, month, day = (int(part) for part in groups["iso"].split("-"))
        elif groups["y3"]:
            year, month = int(groups["y3"]), _MONTHS[groups["m3"].lower()]
            last = calendar.monthrange(year, month)[1]
            return DateRange(f"{year:04d}-{month:02d}-01", f"{year:04d}-{month:02d}-{last:02d}")
        else:
            year = int(groups["y1"] or groups["y2"])
            month = _MONTHS[(groups["m1"] or groups["m2"]).lower()]
            day = int(groups["d1"] or groups["d2"])
        if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
            return None
    except (ValueError, KeyError, calendar.IllegalMonthError):
        return None
    iso = f"{year:04d}-{month:02d}-{day:02d}"
    return DateRange(iso, iso)
