"""Checking a yes/no question against the evidence, so a verdict is shown only when it can be checked.

Pure functions. Three checks, each of which speaks only on evidence it can read:

- **Order in time.** "Did TechCrunch report on X before The Verge discussed Y?" names an outlet on each side of
  "before"/"after": the side's article is that outlet's passage that best matches the side's words, and the
  articles' published dates decide. "Did X fail to report …" turns the answer round.
- **A claim the question denies.** "Did the TechCrunch article fail to mention GPT-4 Turbo?" is answered No when
  one sentence of that outlet's articles states the claim plainly (embedding similarity and most of its words).
- **A claim stated word for word.** Yes when every claim of the question is found in one sentence of its outlet's
  articles (nearly all its words and, with an embedder, high similarity), No when such a sentence negates it.

Anything else gets no verdict: paraphrased judgements ("Was the portrayal consistent?", "Does A suggest a
different perspective than B?") can't be checked this way, and a choice ("A, or B?") is no yes/no question.
The thresholds are set on dev yes/no questions outside the evaluation sample (results/answer.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from server.answering.abstain import folded
from server.answering.evidence import EvidenceSentence, Passage, content_words, overlap, sources_named
from server.answering.question import outlets_named

Similarity = Callable[[list[str], list[str]], np.ndarray]  # (claims, sentences) -> cosine matrix

CLAIM_MATCH = 0.8  # share of a claim's words one evidence sentence (from its outlet) must hold for the claim to count as found
CLAIM_SIMILARITY = 0.7  # and, with an embedder, the claim's similarity to that sentence
DENIED_SIMILARITY = 0.7  # a claim the question denies counts as stated when a sentence is this similar to it …
DENIED_MATCH = 0.2  # … and holds this share of its words
SHOWN_MATCH = 0.35  # below this, the best sentence isn't shown as what the source reports on the claim
_CLAUSE = re.compile(r",?\s+(?:while|whereas)\s+|,\s+(?:and|but)\s+|;\s*|,\s+with\s+")
_SCAFFOLD = content_words(
    "article articles report reports reported suggest suggests mention mentions mentioned discuss discusses discussed "
    "indicate indicates state states claim claims describe describes highlight highlights portray portrays note notes "
    "publish published regarding concerning compared consistent inconsistent both also"
)
_ORDER = re.compile(r"\b(before|after)\b", re.IGNORECASE)
# Judgements of tone or consistency: the evidence can't be checked against them word by word.
_JUDGEMENT = re.compile(
    r"\b(?:consisten|chang|agree|differ|align|similar|same|shift|maintain|contradict|conflict|compar|contrast|discrepan|"
    r"portray|narrative|perspective|approach|tone|focus)",
    re.IGNORECASE,
)
_CHOICE = re.compile(r"\bor\b", re.IGNORECASE)  # "larger or smaller?", "A, or B?": a choice, not yes or no
_DENIAL = re.compile(r"\bfail(?:s|ed|ing)?\s+to\s+|\b(?:not|never)\s+|(?<=\w)n['’]t\s+", re.IGNORECASE)
_NOT = re.compile(r"\b(?:not|never)\b|n['’]t\b", re.IGNORECASE)
_LEAD = re.compile(
    r"^\W*(?:does|did|do|is|was|were|are|has|have|had)\s+(?:the\s+)?(?:(?:article|report|piece)\s+(?:from|by|in)\s+)?",
    re.IGNORECASE,
)
_REPORTING = re.compile(
    r"^\W*(?:(?:the\s+)?(?:article|report|piece|story)s?\s+)?(?:suggest|report|claim|indicate|imply|mention|discuss|state|"
    r"allege|highlight|assert|note|identify|describe|credit|attribute|confirm|cover)(?:s|ed)?\s+(?:on\s+|that\s+)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    """A checked verdict ("Yes", "No", or "" for none), the sentences found for the question's claims, and, for
    a verdict read from publication dates, the reason in words with the passages it rests on."""

    word: str
    found: list[tuple[EvidenceSentence, Passage]] = field(default_factory=list)
    reason: str = ""
    dated: tuple[Passage, ...] = ()


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


def claim_text(clause: str, outlet: str) -> str:
    """What a clause claims, without the question's scaffolding and the outlet's name (for embedding).

    >>> claim_text("Did the TechCrunch article fail to mention a new GPT-4 Turbo model", "TechCrunch")
    'fail to mention a new GPT-4 Turbo model'
    """
    text = clause
    if outlet:
        name = re.escape(re.sub(r"^The\s+", "", outlet))
        text = re.sub(rf"['‘’\"“”]?(?:the\s+)?{name}['‘’\"“”]?", " ", clause, flags=re.IGNORECASE)
    text = _LEAD.sub("", " ".join(text.split()))
    text = _REPORTING.sub("", re.sub(r"^\W*(?:the\s+)?(?:article|report|piece|story)s?\b\s*", "", text, flags=re.IGNORECASE))
    return text.strip(" ?,'‘’\"“”")


def denied(text: str) -> str:
    """The claim a clause denies ("fail to mention X", "did not report X" deny "mention X", "report X"), or "".

    >>> denied("fail to mention a new GPT-4 Turbo model"), denied("mention a new model")
    ('mention a new GPT-4 Turbo model', '')
    """
    match = _DENIAL.search(text)
    return (text[: match.start()] + text[match.end():]).strip() if match else ""


def order_sides(question: str) -> tuple[str, str, str] | None:
    """A question about which report came first, as (this side, "before"/"after", the other side), or None.

    >>> order_sides("Did TechCrunch report on Gemini before The Verge covered Bard?")
    ('Did TechCrunch report on Gemini', 'before', 'The Verge covered Bard?')
    >>> order_sides("Before The Age reported on Swift, did Wire cover Kelce?")
    (' did Wire cover Kelce?', 'before', 'The Age reported on Swift')
    >>> order_sides("Was the reporting consistent before and after the trial?") is None
    True
    """
    matches = list(_ORDER.finditer(question))
    if len(matches) != 1 or _JUDGEMENT.search(question):
        return None
    match = matches[0]
    side, other = question[: match.start()], question[match.end():]
    if not side.strip(" ,'\"“‘"):  # "Before A, did B …?": B is the side asked about
        other, _, side = other.partition(",")
    return side.rstrip(" ,"), match.group(1).lower(), other.strip()


def check_order(question: str, passages: Sequence[Passage], similarity: Similarity | None = None) -> Verdict:
    """The verdict of a before/after question from the published dates of each side's article.

    >>> from index.types import Hit
    >>> def p(n, source, day, text):
    ...     hit = Hit(n, f"a{n}", 1.0, text, 0, len(text), source=source, published=f"2023-12-{day}")
    ...     return Passage(n, hit, (EvidenceSentence(text, 0, len(text), 0, 1.0, hit),), 1.0)
    >>> ps = [p(1, "TechCrunch", "18", "Flipboard adopts ActivityPub."), p(2, "The Verge", "19", "How ActivityPub works.")]
    >>> check_order("Did TechCrunch report on Flipboard and ActivityPub before The Verge explained ActivityPub?", ps).word
    'Yes'
    >>> check_order("Did TechCrunch fail to report on Flipboard before The Verge explained ActivityPub?", ps).word
    'No'
    """
    sides = order_sides(question)
    if sides is None:
        return Verdict("")
    side, relation, other = sides
    sources = [p.hit.source or "" for p in passages]
    named, other_named = sources_named(side, sources), sources_named(other, sources)
    # "… before The Verge discussed …" orders two reports; "… after a 1-4 start …" is about something else.
    if not named or not other_named or not sources_named(" ".join(other.split()[: 3 + len(other_named[0].split())]), sources):
        return Verdict("")
    first = _best_passage(side, named[0], passages, similarity)
    second = _best_passage(other, other_named[0], [p for p in passages if p is not first], similarity)
    if first is None or second is None or not first.hit.published or not second.hit.published:
        return Verdict("")
    day, other_day = first.hit.published[:10], second.hit.published[:10]
    holds = day < other_day if relation == "before" else day > other_day  # the same day is neither
    word = "Yes" if holds != bool(_DENIAL.search(side)) else "No"
    order = "the same day as" if day == other_day else "before" if day < other_day else "after"
    reason = f"{first.hit.source} published its article on {day}, {order} {second.hit.source}'s on {other_day}"
    return Verdict(word, [], reason, (first, second))


def check_claims(question: str, passages: Sequence[Passage], similarity: Similarity | None = None) -> Verdict:
    """The verdict ("Yes", "No" or "" when it can't be checked) and the sentence found for each claim.

    >>> from index.types import Hit
    >>> h = Hit(1, "a", 1.0, "", 0, 0, source="Wire")
    >>> p = Passage(1, h, (EvidenceSentence("The council did not approve the bike lanes.", 0, 43, 0, 1.0, h),), 1.0)
    >>> check_claims("Did the council approve the bike lanes?", [p]).word, check_claims("Did the council reject the tram?", [p]).word
    ('No', '')
    """
    if _CHOICE.search(question):
        return Verdict("")
    by_date = check_order(question, passages, similarity)
    if by_date.word:
        return by_date
    statuses, found = [], []
    for clause, outlet in claims_of(question, [p.hit.source or "" for p in passages]):
        terms = claim_terms(clause, outlet)
        if len(terms) < 2:
            continue
        pool = [(s, p) for p in passages if not outlet or folded(outlet) in folded(p.hit.source or "") for s in p.sentences]
        if not pool:
            statuses.append("unknown")
            continue
        text = claim_text(clause, outlet)
        positive = denied(text)
        claimed = claim_terms(positive or text, outlet)
        shares = [overlap(claimed, content_words(s.text)) for s, _ in pool]
        cosines = similarity([positive or text], [s.text for s, _ in pool])[0] if similarity else None
        best = int(np.argmax(cosines)) if cosines is not None else int(np.argmax(shares))
        sentence, passage = pool[best]
        cosine = float(cosines[best]) if cosines is not None else None
        status = _status(positive, shares[best], cosine, negates(sentence.text, claimed))
        statuses.append(status)
        # Without a verdict, what the source reports is the sentence sharing most of the claim's words.
        shown = best if status != "unknown" else max(range(len(pool)), key=lambda i: (shares[i], pool[i][0].score))
        if shares[shown] >= SHOWN_MATCH:
            found.append(pool[shown])
    if "contradicted" in statuses:
        return Verdict("No", found)
    if not statuses or "unknown" in statuses or _JUDGEMENT.search(question):
        return Verdict("", found)
    return Verdict("Yes", found)


def negates(sentence: str, terms: set[str]) -> bool:
    """Whether a sentence puts "not", "n't" or "never" within three words before one of a claim's words.

    >>> negates("The council did not approve the lanes.", {"approv", "lane"}), negates("It is not a series, but a loss.", {"loss"})
    (True, False)
    """
    words = re.findall(r"[\w'’]+", sentence)
    for i, word in enumerate(words):
        if _NOT.search(word) and terms & content_words(" ".join(words[i + 1 : i + 4])):
            return True
    return False


def _status(positive: str, share: float, cosine: float | None, sentence_negates: bool) -> str:
    """"supported", "contradicted" or "unknown" for one claim and the sentence found for it."""
    if positive:  # the question denies the claim: a sentence stating it plainly contradicts the denial
        stated = share >= DENIED_MATCH and (cosine is None or cosine >= DENIED_SIMILARITY) and not sentence_negates
        return "contradicted" if stated else "unknown"
    if share < CLAIM_MATCH or (cosine is not None and cosine < CLAIM_SIMILARITY):
        return "unknown"
    return "contradicted" if sentence_negates else "supported"


def _best_passage(side: str, outlet: str, passages: Sequence[Passage], similarity: Similarity | None) -> Passage | None:
    """The passage of `outlet` whose best sentence is closest to one side of a before/after question."""
    own = [p for p in passages if (p.hit.source or "") == outlet]
    if len(own) <= 1:
        return own[0] if own else None
    terms = content_words(side) - content_words(outlet)

    def closeness(passage: Passage) -> float:
        texts = [s.text for s in passage.sentences]
        if similarity is not None:
            return float(np.max(similarity([side], texts)))
        return max(overlap(terms, content_words(t)) for t in texts)

    return max(own, key=closeness)
