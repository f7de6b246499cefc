"""Checking a yes/no question's claims against the evidence, so a verdict is shown only when it can be checked.

Pure functions. A question is split into its claims (one per clause, each tied to the outlet it names). A
claim is found when one evidence sentence (from that outlet, if it names one) holds most of its words; it is
supported when both say it plainly or both negate it, contradicted when only one negates it. "Yes" needs every
claim supported, "No" a contradicted claim and the rest supported; anything else gets no verdict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from server.answering.abstain import folded
from server.answering.evidence import EvidenceSentence, Passage, content_words, has_negation, overlap, sources_named
from server.answering.question import outlets_named

CLAIM_MATCH = 0.8  # share of a claim's words one evidence sentence (from its outlet) must hold for the claim to count as found
SHOWN_MATCH = 0.35  # below this, the best sentence isn't shown as what the source reports on the claim
_CLAUSE = re.compile(r",?\s+(?:while|whereas)\s+|,\s+(?:and|but)\s+|;\s*|,\s+with\s+")
_SCAFFOLD = content_words(
    "article articles report reports reported suggest suggests mention mentions mentioned discuss discusses discussed "
    "indicate indicates state states claim claims describe describes highlight highlights portray portrays note notes "
    "publish published regarding concerning compared consistent inconsistent both also"
)


def claims_of(question: str, sources: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The claims of a yes/no question, each with the outlet its clause names ("" when none).

    >>> claims_of("Did TechCrunch report that Apple cut prices, while The Verge said sales fell?", ["The Verge", "TechCrunch"])
    [('Did TechCrunch report that Apple cut prices', 'TechCrunch'), ('The Verge said sales fell?', 'The Verge')]
    """
    result = []
    for clause in _CLAUSE.split(question):
        clause = clause.strip()
        if clause:
            named = sources_named(clause, sources) or outlets_named(clause)
            result.append((clause, named[0] if named else ""))
    return result


def claim_terms(clause: str, outlet: str) -> set[str]:
    """The words a claim must be found with: its content words less the outlet's name and reporting verbs.

    >>> sorted(claim_terms("Did TechCrunch report that Apple cut prices", "TechCrunch"))
    ['appl', 'cut', 'price']
    """
    return content_words(clause) - _SCAFFOLD - content_words(outlet)


def check_claims(question: str, passages: Sequence[Passage]) -> tuple[str, list[tuple[EvidenceSentence, Passage]]]:
    """The verdict ("Yes", "No" or "" when it can't be checked) and the sentence found for each claim.

    >>> from index.types import Hit
    >>> h = Hit(1, "a", 1.0, "", 0, 0, source="Wire")
    >>> p = Passage(1, h, (EvidenceSentence("The council did not approve the bike lanes.", 0, 43, 0, 1.0, h),), 1.0)
    >>> check_claims("Did the council approve the bike lanes?", [p])[0], check_claims("Did the council reject the tram?", [p])[0]
    ('No', '')
    """
    statuses, found = [], []
    for clause, outlet in claims_of(question, [p.hit.source for p in passages]):
        terms = claim_terms(clause, outlet)
        if len(terms) < 2:
            continue
        pool = [(s, p) for p in passages if not outlet or folded(outlet) in folded(p.hit.source or "") for s in p.sentences]
        if not pool:
            statuses.append("unknown")
            continue
        sentence, passage = max(pool, key=lambda pair: (overlap(terms, content_words(pair[0].text)), pair[0].score))
        share = overlap(terms, content_words(sentence.text))
        if share >= SHOWN_MATCH:
            found.append((sentence, passage))
        if share < CLAIM_MATCH:
            statuses.append("unknown")
        else:
            statuses.append("supported" if has_negation(clause) == has_negation(sentence.text) else "contradicted")
    if not statuses or "unknown" in statuses:
        return "", found
    return ("No" if "contradicted" in statuses else "Yes"), found
