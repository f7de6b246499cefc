"""The model's time budget: a short prompt the model can read in time, writing stopped at the budget."""

from __future__ import annotations

import time

import pytest

from server.answering.budget import RECHECK_AFTER, ModelPace, plan_generation
from server.settings import Settings
from conftest import ScriptedLLM
from test_answer import FakeSearcher, make


class SlowLLM(ScriptedLLM):
    """Writes one supported sentence at once, then stalls before the next; records whether it was closed."""

    def __init__(self, stall_s: float):
        super().__init__()
        self.stall_s = stall_s
        self.closed = False

    def generate(self, prompt_or_messages, **limits):
        self.prompts.append(prompt_or_messages)
        try:
            yield "Dongfeng Motor Group is talking to the Italian government about building cars in Italy [1]. "
            time.sleep(self.stall_s)
            yield "Rome is expected "
            yield "to offer site options within weeks [1]."
        finally:
            self.closed = True


def test_writing_stops_at_the_budget_and_keeps_the_checked_sentences_written_by_then():
    answerer, llm = make(llm=SlowLLM(stall_s=1.5), llm_budget_s=0.8)
    answerer.pace = ModelPace(read_tps=100_000, write_tps=10_000, measured=True)  # a fast model: the whole budget is for writing
    result = answerer.answer("Who warned about a Chinese factory in Italy?")
    assert "is talking to the Italian government" in result.answer and result.mode == "generated"
    assert "Rome is expected" not in result.answer  # cut off mid-sentence by the budget: never checked, never shown
    assert llm.closed and result.message == ""  # the budget is no failure: no "took too long" note


def test_a_slow_model_reads_less_evidence_and_no_model_runs_when_nothing_fits():
    story = " ".join(f"Dongfeng may build plant number {i} in Italy near Rome." for i in range(40))
    searcher = {"long": ("Dongfeng plans", "Byline Wire", story)}
    question = "Where may Dongfeng build a plant in Italy?"
    slow = ScriptedLLM("")
    answerer, _ = make(llm=slow, llm_budget_s=2.0, searcher=FakeSearcher(searcher))
    answerer.pace = ModelPace(read_tps=70, write_tps=20, measured=True)  # reads 70 tokens a second: about 60 of evidence in half the time
    answerer.answer(question)
    unbudgeted, _ = make(llm=ScriptedLLM(""), llm_budget_s=0, searcher=FakeSearcher(searcher))
    unbudgeted.answer(question)
    assert len(slow.prompts[0].split()) < len(unbudgeted.llm.prompts[0].split()) - 100
    silent = ScriptedLLM("Italy wants local production [1].")
    answerer, _ = make(llm=silent, llm_budget_s=0.05)
    answerer.pace = ModelPace(measured=True)
    assert answerer.answer("Why is Italy courting Dongfeng?").mode == "evidence" and silent.prompts == []


def test_an_unmeasured_model_runs_once_to_be_measured():
    llm = ScriptedLLM("Dongfeng Motor Group is talking to the Italian government about building cars in Italy [1].")
    answerer, _ = make(llm=llm, llm_budget_s=0.05)
    answerer.answer("Who warned about a Chinese factory in Italy?")
    assert len(llm.prompts) == 1  # the smallest plan, although nothing fits the budget by the first guesses


def test_a_model_measured_too_slow_is_measured_again_after_sitting_out_answers():
    """One slow measurement (a rebuild hogging the CPU) doesn't keep the model out of every later answer."""
    llm = ScriptedLLM("Dongfeng Motor Group is talking to the Italian government about building cars in Italy [1].")
    answerer, _ = make(llm=llm, llm_budget_s=0.05)
    answerer.pace = ModelPace(read_tps=5, write_tps=1, measured=True)  # measured while the machine was busy
    for _ in range(RECHECK_AFTER):
        answerer.answer("Who warned about a Chinese factory in Italy?")
    assert llm.prompts == [] and answerer.pace.skipped == RECHECK_AFTER
    answerer.answer("Who warned about a Chinese factory in Italy?")
    assert len(llm.prompts) == 1 and answerer.pace.skipped == 0  # run on the smallest plan, to be timed again


@pytest.mark.parametrize(
    ("backend", "path", "budget", "expected"),
    [("llama_cpp", None, None, 2.3), ("llama_cpp", "big.gguf", None, 0.0), ("openai", None, None, 0.0), ("openai", None, 5.0, 5.0),
     ("llama_cpp", None, 0, 0.0)],
)
def test_the_budget_is_for_the_bundled_model_unless_set(backend, path, budget, expected):
    settings = Settings(llm_backend=backend, llm_model_path=path, llm_budget_s=budget)
    assert settings.model_budget_s() == expected


def test_the_plan_shares_the_time_left_between_reading_and_writing():
    pace = ModelPace(read_tps=200, write_tps=20, measured=True)
    assert plan_generation(2.0, pace, question_tokens=40, max_tokens=160, evidence_tokens=700) == (160, 20)
    assert plan_generation(60.0, pace, question_tokens=40, max_tokens=160, evidence_tokens=700) == (700, 160)
    assert plan_generation(2.0, pace, question_tokens=40, max_tokens=12, evidence_tokens=700) == (160, 12)
    assert plan_generation(0.5, pace, question_tokens=40, max_tokens=160, evidence_tokens=700) is None
    assert plan_generation(0.5, ModelPace(), question_tokens=40, max_tokens=160, evidence_tokens=700) == (60, 16)  # once, to measure
    pace.measure(read_tokens=100, read_s=0.0, written_tokens=1, write_s=1.0)  # too short to time: unchanged
    assert (pace.read_tps, pace.write_tps) == (200, 20)
