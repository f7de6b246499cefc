"""The model's limits: its time budget (how much evidence it can read and how much it can write before the
answer is due), its sentences and its tokens.

Pure functions over measured speeds. A small CPU model reads a 700-token prompt in about 4 s here, and most of
what it writes then fails the support check, so an answer that waited for it would take 4–5 s. With a budget,
the prompt holds only as much evidence as the model can read in half the time left, it writes for the rest, and
its checked sentences written by then join the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from server.answering.citations import render_answer
from server.answering.types import Sentence

MIN_EVIDENCE_TOKENS = 60  # less evidence than this (about two sentences) isn't worth a model call
MIN_WRITTEN_TOKENS = 16  # nor is room for fewer tokens than a short sentence
READ_SHARE = 0.5  # of the time left, the share the prompt's evidence may take to read
RECHECK_AFTER = 10  # answers the model sits out as too slow before it gets the smallest plan, to be measured again
SENTENCE_END = re.compile(r"[.!?](?:\s*\[[\d,;\s\-–]+\])*[\"')\]]*(?=\s)")


@dataclass
class ModelPace:
    """How fast the model reads a prompt and writes, in tokens per second: a running mean of what was measured.

    The first guesses are this 2-core machine's figures for the bundled model under load (results/bench_llm.json).
    A pace measured while the machine was busy would keep the model out of every later answer, so after
    RECHECK_AFTER answers without it the model runs once more with the smallest plan (`stale`).

    >>> pace = ModelPace()
    >>> pace.measure(read_tokens=300, read_s=1.0, written_tokens=35, write_s=1.0)
    >>> round(pace.read_tps), round(pace.write_tps), pace.measured, pace.stale()
    (250, 30, True, False)
    >>> pace.skipped = RECHECK_AFTER
    >>> pace.stale()
    True
    """

    read_tps: float = 200.0
    write_tps: float = 25.0
    weight: float = 0.5  # of each new measurement in the mean
    measured: bool = False  # until a generation was timed, the first guesses stand
    skipped: int = 0  # answers the model sat out since it last ran

    def measure(self, *, read_tokens: int, read_s: float, written_tokens: int, write_s: float) -> None:
        """Fold in one generation's speeds (a part too short to time is left out)."""
        self.skipped = 0
        if read_tokens > 0 and read_s > 0.01:
            self.read_tps += self.weight * (read_tokens / read_s - self.read_tps)
            self.measured = True
        if written_tokens > 1 and write_s > 0.01:
            self.write_tps += self.weight * (written_tokens / write_s - self.write_tps)

    def stale(self) -> bool:
        """Whether the model should run on the smallest plan to be measured: never timed, or left out long enough."""
        return not self.measured or self.skipped >= RECHECK_AFTER


def plan_generation(seconds_left: float, pace: ModelPace, question_tokens: int, max_tokens: int, evidence_tokens: int) -> tuple[int, int] | None:
    """The evidence tokens the prompt may hold and the tokens the model may write within `seconds_left`, or None
    when not even a short prompt and a short sentence fit (the caller counts that in `pace.skipped`). A model
    whose pace is stale (never measured, or left out RECHECK_AFTER times) gets the smallest plan, to be measured.

    `question_tokens` are read whatever the evidence; `max_tokens` and `evidence_tokens` are the caps without a budget.

    >>> plan_generation(2.0, ModelPace(read_tps=200, write_tps=20, measured=True), 40, 160, 700)
    (160, 20)
    >>> plan_generation(0.3, ModelPace(measured=True), 40, 160, 700), plan_generation(0.3, ModelPace(), 40, 160, 700)
    (None, (60, 16))
    >>> plan_generation(0.3, ModelPace(measured=True, skipped=RECHECK_AFTER), 40, 160, 700)
    (60, 16)
    """
    smallest = (min(MIN_EVIDENCE_TOKENS, evidence_tokens), min(MIN_WRITTEN_TOKENS, max_tokens))
    evidence = min(evidence_tokens, int(seconds_left * READ_SHARE * pace.read_tps) - question_tokens)
    reading = (evidence + question_tokens) / pace.read_tps
    written = min(max_tokens, int((seconds_left - reading) * pace.write_tps))
    if evidence >= smallest[0] and written >= smallest[1]:
        return evidence, written
    return smallest if pace.stale() else None


def stop_after_sentences(pieces: Iterator[str], limit: int) -> Iterator[str]:
    """Pass text pieces through until `limit` sentences are complete, then close the source.

    >>> list(stop_after_sentences(iter(["One [1]. Two", ". Three", " 1.", "5 m. Four."]), 2))
    ['One [1]. Two', '.']
    >>> "".join(stop_after_sentences(iter(["It fell 1.", "72 million [2]. More. Yet more."]), 2))
    'It fell 1.72 million [2]. More.'
    """
    text = ""
    try:
        for piece in pieces:
            before = len(text)
            text += piece
            ends = [m.end() for m in SENTENCE_END.finditer(text)]
            if len(ends) >= limit:
                cut = ends[limit - 1]
                if cut > before:
                    yield text[before:cut].rstrip()
                return
            yield piece
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def fit_tokens(sentences: list[Sentence], max_tokens: int | None, count_tokens) -> list[Sentence]:
    """The leading sentences whose rendered text fits in `max_tokens` (all of them when it is None).

    >>> s = [Sentence("Rome waits.", (1,)), Sentence("Dongfeng talks.", (2,))]
    >>> [x.text for x in fit_tokens(s, 4, lambda t: len(t.split()))], len(fit_tokens(s, None, len))
    (['Rome waits.'], 2)
    """
    if max_tokens is None:
        return sentences
    kept: list[Sentence] = []
    for sentence in sentences:
        if count_tokens(render_answer([*kept, sentence])) > max_tokens:
            break
        kept.append(sentence)
    return kept


def prompt_tokens(count_tokens, body: str | list[dict]) -> int:
    """Tokens of a prompt: the completion text, or the chat messages' contents.

    >>> prompt_tokens(lambda t: len(t.split()), [{"role": "user", "content": "Why now?"}]), prompt_tokens(len, "abc")
    (2, 3)
    """
    if isinstance(body, str):
        return count_tokens(body)
    return sum(count_tokens(message["content"]) for message in body)
