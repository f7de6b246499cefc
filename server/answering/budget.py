"""The model's time budget: how much evidence it can read and how much it can write before the answer is due.

Pure functions over measured speeds. A small CPU model reads a 700-token prompt in about 4 s here, and most of
what it writes then fails the support check, so an answer that waited for it would take 4–5 s. With a budget,
the prompt holds only as much evidence as the model can read in half the time left, it writes for the rest, and
its checked sentences written by then join the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_EVIDENCE_TOKENS = 60  # less evidence than this (about two sentences) isn't worth a model call
MIN_WRITTEN_TOKENS = 16  # nor is room for fewer tokens than a short sentence
READ_SHARE = 0.5  # of the time left, the share the prompt's evidence may take to read


@dataclass
class ModelPace:
    """How fast the model reads a prompt and writes, in tokens per second: a running mean of what was measured.

    The first guesses are this 2-core machine's figures for the bundled model under load (results/bench_llm.json).

    >>> pace = ModelPace()
    >>> pace.measure(read_tokens=300, read_s=1.0, written_tokens=35, write_s=1.0)
    >>> round(pace.read_tps), round(pace.write_tps), pace.measured
    (250, 30, True)
    """

    read_tps: float = 200.0
    write_tps: float = 25.0
    weight: float = 0.5  # of each new measurement in the mean
    measured: bool = False  # until a generation was timed, the first guesses stand

    def measure(self, *, read_tokens: int, read_s: float, written_tokens: int, write_s: float) -> None:
        """Fold in one generation's speeds (a part too short to time is left out)."""
        if read_tokens > 0 and read_s > 0.01:
            self.read_tps += self.weight * (read_tokens / read_s - self.read_tps)
            self.measured = True
        if written_tokens > 1 and write_s > 0.01:
            self.write_tps += self.weight * (written_tokens / write_s - self.write_tps)


def plan_generation(seconds_left: float, pace: ModelPace, question_tokens: int, max_tokens: int, evidence_tokens: int) -> tuple[int, int] | None:
    """The evidence tokens the prompt may hold and the tokens the model may write within `seconds_left`, or None
    when not even a short prompt and a short sentence fit. A model whose pace was never measured gets the
    smallest plan at least, once, so that it is measured.

    `question_tokens` are read whatever the evidence; `max_tokens` and `evidence_tokens` are the caps without a budget.

    >>> plan_generation(2.0, ModelPace(read_tps=200, write_tps=20, measured=True), 40, 160, 700)
    (160, 20)
    >>> plan_generation(0.3, ModelPace(measured=True), 40, 160, 700), plan_generation(0.3, ModelPace(), 40, 160, 700)
    (None, (60, 16))
    """
    smallest = (min(MIN_EVIDENCE_TOKENS, evidence_tokens), min(MIN_WRITTEN_TOKENS, max_tokens))
    evidence = min(evidence_tokens, int(seconds_left * READ_SHARE * pace.read_tps) - question_tokens)
    reading = (evidence + question_tokens) / pace.read_tps
    written = min(max_tokens, int((seconds_left - reading) * pace.write_tps))
    if evidence >= smallest[0] and written >= smallest[1]:
        return evidence, written
    return None if pace.measured else smallest
