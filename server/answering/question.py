"""What a question asks for: its kind (who, when, how many, why, yes/no …), its parts, the outlets it names.

Pure functions over the question text. The kind decides which evidence sentences answer it ("when" wants a
date, "how many" a number, "why" a reason) and how the answer opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.answering.abstain import named_entities, named_publications

_MONTHS = "january february march april may june july august september october november december".split()
_DATE = re.compile(
    rf"\b(?:{'|'.join(_MONTHS)}|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|today|tomorrow|yesterday|tonight|spring|summer|autumn|winter|weekend|(?:19|20)\d\d|"
    r"(?:next|last|this|coming|following)\s+(?:week|month|year|season|decade)|within\s+(?:days|weeks|months)|"
    r"in\s+\w+\s+(?:days|weeks|months|years)|by\s+the\s+end\s+of|\d{1,2}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.)|o'clock|"
    r"(?:early|late|mid)[- ](?:\w+))\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"hundred|hundreds|thousand|thousands|million|millions|billion|billions|dozen|dozens|half|double|doubled|"
    r"tripled|percent|per cent)\b",
    re.IGNORECASE,
)
_CAUSAL = re.compile(
    r"\b(because|reasons?|wants?|wanted|would let|would give|so that|in order to|to keep|aims?|seeks?|hopes?|"
    r"due to|as a result|driven by|thanks to|since|after|caused?|blamed|citing|amid|over|said the|to help|to cut|"
    r"to protect|to avoid|to improve|to reduce)\b",
    re.IGNORECASE,
)
_YES_NO = re.compile(r"(?:^\W*|,\s*)(?:does|did|do|is|was|were|are|has|have|had|can|could|would|will|should)\b", re.IGNORECASE)
_PART = re.compile(r"(?:,\s*|\s+)(?:and|but)\s+(?=(?:why|when|how many|how much|who|where|which|what)\b)", re.IGNORECASE)
_PERSON = re.compile(
    r"\b(who|whom|individual|person|people|ceo|chief|founder|executive|player|coach|minister|leader|man|woman|star|artist|"
    r"singer|athlete|actor|actress|prodigy|entrepreneur|billionaire|politician|quarterback|driver|author|figure|celebrity|"
    r"personality|investor|journalist)\b",
    re.IGNORECASE,
)
_ORGANIZATION = re.compile(r"\b(company|companies|firm|organi[sz]ation|business|brand|platform|carmaker|maker|group|team|club|agency|bank|startup|network|service)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Intent:
    """What a question (or one part of it) asks for.

    `kind` is one of "entity" (who/which …), "describe" (who is <name>?), "when", "quantity", "why", "yes_no",
    "summary" and "what"; `entity_type` is "person", "organization" or "" for an entity question.
    """

    text: str
    kind: str
    entity_type: str = ""
    subject: str = ""  # the name a "Who is X?" question asks about


def intent_of(part: str) -> Intent:
    """The kind of one question part.

    >>> [intent_of(q).kind for q in ["When will the lanes be built?", "How much did sales fall?", "Why is Italy courting Dongfeng?"]]
    ['when', 'quantity', 'why']
    >>> intent_of("Who is Carlos Tavares?").subject, intent_of("Which company makes the Lumen chip?").entity_type
    ('Carlos Tavares', 'organization')
    >>> [intent_of(q).kind for q in ["Did Rome offer sites?", "Summarize the Dongfeng story", "What did Stellantis say?"]]
    ['yes_no', 'summary', 'what']
    """
    text = " ".join(part.split())
    lowered = text.lower().lstrip("\"'“ ")
    describe = re.match(r"(?:who|what)\s+(?:is|was|are|were)\s+(.+?)\??$", text, re.IGNORECASE)
    if describe:
        names = named_entities(describe.group(1)) if describe.group(1)[:1].isupper() else []
        if names and len(" ".join(names)) >= len(describe.group(1).strip(" ?")) - 4:
            return Intent(text, "describe", subject=names[0])
    if re.match(r"(?:when|what\s+(?:time|date|day|month|year))\b|(?:by|until|since)\s+when\b", lowered):
        return Intent(text, "when")
    if re.match(r"how\s+(?:many|much|long|far|big|large|often)\b|what\s+(?:percentage|share|number|amount)\b", lowered):
        return Intent(text, "quantity")
    if re.match(r"(?:why|how come|what\s+(?:caused|led|prompted|drove)|for what reason)\b", lowered):
        return Intent(text, "why")
    if re.match(r"(?:summari[sz]e|tell me (?:about|more)|describe|give (?:me )?an? (?:overview|summary)|what happened|what'?s new)\b", lowered):
        return Intent(text, "summary")
    if re.match(r"(?:who|whom|whose|which)\b|what\s+(?:is|was|are|were)\s+the\s+name|what\s+(?:\w+\s+){0,2}?(?:company|companies|firm|"
                r"individual|person|people|organi[sz]ation|team|club|country|city|town|place|entity|business|brand|platform|"
                r"player|group|type|kind|service|tool|app|product|model|device|event)\b", lowered):
        head = text.split(",")[0]
        kind = "person" if lowered.startswith("who") or _PERSON.search(head) else "organization" if _ORGANIZATION.search(head) else ""
        return Intent(text, "entity", entity_type=kind)
    if _YES_NO.search(text):
        return Intent(text, "yes_no")
    if re.match(r"where\b", lowered):
        return Intent(text, "entity", entity_type="place")
    return Intent(text, "what")


def question_parts(question: str) -> list[Intent]:
    """The parts of a question, each with its own kind: "When … and why?" asks two things.

    >>> [(i.kind, i.text) for i in question_parts("When will the ferry strike start and why?")]
    [('when', 'When will the ferry strike start'), ('why', 'why?')]
    >>> len(question_parts("Why did Stellantis and Dongfeng meet?"))
    1
    """
    pieces = [p.strip() for p in _PART.split(question) if p and p.strip()]
    return [intent_of(piece) for piece in pieces] or [intent_of(question)]


def outlets_named(question: str) -> list[str]:
    """The publications a question attributes reports to ("according to TechCrunch", "the Verge article").

    >>> outlets_named("Did the TechCrunch article and a report by The Verge agree?")
    ['TechCrunch', 'Verge']
    """
    names = named_publications(question)
    quoted = re.findall(r"['‘\"“]([A-Z][^'’\"”]{1,40})['’\"”]\s+(?:article|report|piece|story)", question)
    plain = re.findall(r"\b(?:the|a|an)\s+([A-Z][\w.&-]*(?:\s+[A-Z][\w.&-]*)*)\s+(?:article|report|piece|story)", question)
    found = [n.removeprefix("The ").strip() for n in [*quoted, *plain, *names]]
    return list(dict.fromkeys(n for n in found if n and not any(n != m and n in m for m in found)))


def has_date(text: str) -> bool:
    """Whether text states a date or time.

    >>> has_date("Work is expected to start in September."), has_date("The council voted.")
    (True, False)
    """
    return bool(_DATE.search(text))


def has_quantity(text: str) -> bool:
    """Whether text states a number or an amount.

    >>> has_quantity("Sales fell to 1.72 million."), has_quantity("Sales fell.")
    (True, False)
    """
    return bool(_QUANTITY.search(text))


def gives_reason(text: str) -> bool:
    """Whether text gives a reason or a purpose.

    >>> gives_reason("Italy wants a second carmaker."), gives_reason("Rome is in Italy.")
    (True, False)
    """
    return bool(_CAUSAL.search(text))


def answers_kind(kind: str, text: str) -> bool:
    """Whether a sentence has the kind of fact a question part asks for (a date for "when", …).

    >>> answers_kind("when", "It opens in June."), answers_kind("quantity", "It opens in June."), answers_kind("what", "x")
    (True, False, False)
    """
    check = {"when": has_date, "quantity": has_quantity, "why": gives_reason}.get(kind)
    return bool(check and check(text))


def is_yes_no(question: str) -> bool:
    """Whether a question asks for yes or no.

    >>> is_yes_no("Did Rome offer sites?"), is_yes_no("Between the two reports, was there a change?"), is_yes_no("Why?")
    (True, True, False)
    """
    return bool(_YES_NO.search(question))
