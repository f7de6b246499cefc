"""Answering a question: retrieve, abstain or choose evidence, answer from it, let the model add checked sentences.

`Answerer` is the shell around the pure steps in `evidence`, `compose`, `prompt` and `citations`. Only checked
text is yielded: the evidence answer (a direct answer first) streams at once, sentence by sentence; the model's
sentences that pass the support check join after it; then exactly one final `Answer`.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Container, Iterator, Sequence
from dataclasses import replace

import numpy as np

from index.embed import FewThreads
from index.errors import LLMUnavailable
from index.types import Filters, Hit
from server.answering.abstain import folded, missing_entities, named_entities, unknown_publications
from server.answering.budget import SENTENCE_END, ModelPace, fit_tokens, plan_generation, prompt_tokens, stop_after_sentences
from server.answering.citations import SUPPORT_THRESHOLD, join_checked, render_answer, verify_citations
from server.answering.compose import compose
from server.answering.evidence import EvidenceSentence, evidence_budget, score_sentences, select_evidence
from server.answering.prompt import build_prompt, clean_question, prompt_overhead
from server.answering.question import Intent, question_parts
from server.answering.types import Answer, Citation, Delta, Sentence, token_usage
from server.llm.streaming import stop_on_repeats
from server.settings import Settings

ABSTAIN_MESSAGE = "The archive doesn't hold enough to answer this. These are the nearest articles."
NO_EVIDENCE_MESSAGE = "The passages found don't answer this. These are the nearest articles."
MODEL_MESSAGES = {
    "unavailable": "The language model is unavailable, so this answer comes from the evidence alone.",
    "timeout": "The language model took too long, so this answer comes from the evidence alone.",
}
MAX_SENTENCES = 3  # "a few sentences": the small model's later sentences are mostly repeats or inventions


def retrieval_query(question: str, history: Sequence[dict] | None = None, turns: int = 1) -> str:
    """The text to search for: the question plus the last user question(s), so a follow-up keeps its topic.

    >>> retrieval_query("What did Stellantis say?", [{"role": "user", "content": "Why is Italy courting Dongfeng?"},
    ...                                              {"role": "assistant", "content": "To build cars [1]."}])
    'What did Stellantis say? Why is Italy courting Dongfeng?'
    >>> retrieval_query("Why?", None)
    'Why?'
    """
    return " ".join([question, *history_questions(history, turns)])


def history_questions(history: Sequence[dict] | None, turns: int = 1) -> list[str]:
    """The last `turns` user messages of a conversation, newest first, on one line each.

    >>> history_questions([{"role": "user", "content": "A?"}, {"role": "user", "content": "B?"}], 1)
    ['B?']
    """
    asked = [clean_question(str(m.get("content", ""))) for m in history or () if m.get("role") == "user"]
    return [q for q in reversed(asked) if q][:turns]


def evidence_strength(scored: Sequence[EvidenceSentence], similarities: Sequence[float] | None) -> float:
    """How strongly the retrieved evidence bears on the question: the best sentence's embedding similarity.

    >>> evidence_strength([], None), evidence_strength([EvidenceSentence("a", 0, 1, 0, 0.8)], [0.42])
    (0.0, 0.42)
    """
    if similarities is not None and len(similarities):
        return float(max(similarities))
    return max((s.score for s in scored), default=0.0)


def nearest_articles(hits: Sequence[Hit], limit: int = 5) -> tuple[Hit, ...]:
    """The best hit of each of the first `limit` distinct articles.

    >>> hits = [Hit(1, "a", 0.9, "x", 0, 1), Hit(2, "a", 0.8, "y", 0, 1), Hit(3, "b", 0.7, "z", 0, 1)]
    >>> [h.chunk_id for h in nearest_articles(hits)]
    [1, 3]
    """
    seen: dict[str, Hit] = {}
    for hit in hits:
        seen.setdefault(hit.article_id, hit)
    return tuple(seen.values())[:limit]


class Numbering:
    """Shows citations numbered 1, 2, 3 ... in the order the answer first uses them, whatever numbers the
    evidence gave its passages, so a reader never sees [2] with no [1]."""

    def __init__(self) -> None:
        self.shown: dict[int, int] = {}

    def sentence(self, sentence: Sentence) -> Sentence:
        """The sentence with its citations renumbered (a citation seen for the first time takes the next number)."""
        for n in sentence.citations:
            self.shown.setdefault(n, len(self.shown) + 1)
        return replace(sentence, citations=tuple(self.shown[n] for n in sentence.citations))

    def citations(self, citations: Sequence[Citation]) -> tuple[Citation, ...]:
        """The citations already used, renumbered, in number order."""
        return tuple(sorted((replace(c, n=self.shown[c.n]) for c in citations if c.n in self.shown), key=lambda c: c.n))


def release(sentences: Sequence[Sentence], citations: Sequence[Citation], released: list[Sentence], numbering: Numbering) -> Iterator[Delta]:
    """One Delta per checked sentence, numbered as `numbering` shows them, each carrying the citations it is the
    first to use; appends the sentences (as numbered inside the answerer) to `released`.

    >>> out: list[Sentence] = []
    >>> [d.text for d in release([Sentence("Rome waits.", (3,), True), Sentence("It sells.", (3,), True)], [], out, Numbering())]
    ['Rome waits [1].', ' It sells [1].']
    """
    used = {n for s in released for n in s.citations}
    for sentence in sentences:
        new = [c for c in citations if c.n in sentence.citations and c.n not in used]
        used.update(sentence.citations)
        shown = numbering.sentence(sentence)
        yield Delta((" " if released else "") + render_answer([shown]), numbering.citations(new))
        released.append(sentence)


def asks_about_named(parts: Sequence[Intent], scored: Sequence[EvidenceSentence]) -> bool:
    """Whether a question asks about a name ("Who is Carlos Tavares?", "Summarize the Dongfeng story") that the
    retrieved evidence names: then it can be answered however loosely the sentences match its wording.

    >>> s = [EvidenceSentence("Stellantis chief Carlos Tavares spoke.", 0, 38, 0, 0.2)]
    >>> asks_about_named([Intent("Who is Carlos Tavares?", "describe", subject="Carlos Tavares")], s)
    True
    >>> asks_about_named([Intent("Who won?", "entity")], s)
    False
    """
    for part in parts:
        names = [part.subject] if part.subject else named_entities(part.text) if part.kind == "summary" else []
        if names and all(any(folded(name) in folded(s.text) for s in scored) for name in names):
            return True
    return False


class Answerer:
    """Answers questions from the index with an LLM, citing and checking every sentence."""

    def __init__(self, searcher, llm, embedder, settings: Settings):
        self.searcher = searcher
        self.llm = llm
        self.embedder = FewThreads(embedder, settings.query_embedding_threads)
        self.settings = settings
        self.pace = ModelPace()  # the model's measured reading and writing speed, for its time budget

    def answer(self, question: str, history: list[dict] | None = None, k: int | None = None, filters: Filters | None = None, **options) -> Answer:
        """The final Answer (consumes `stream`; `options` are stream's keyword-only ones)."""
        final = None
        for item in self.stream(question, history, k, filters, **options):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream(
        self,
        question: str,
        history: list[dict] | None = None,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[Delta | Answer]:
        """Yield checked text as `Delta`s (whole sentences that passed the support check), then one final `Answer`.

        `system` is extra instruction for a chat model (an OpenAI system message), `max_tokens` caps the model's
        generation and the answer's length, `temperature` goes to the model (default 0).
        """
        settings, started = self.settings, time.perf_counter()
        timings: dict[str, float] = {}
        hits = self.searcher.search(retrieval_query(question, history), k=k or settings.k, filters=filters)
        timings["retrieval_s"] = round(time.perf_counter() - started, 3)
        refusal = self._refusal(question)
        if refusal:
            yield from self._abstain(question, hits, refusal, timings, started)
            return

        question_vector = self.embedder.embed([question])[0]
        vectors: dict[str, np.ndarray] = {}  # evidence sentences embedded once, reused to check the answer
        similarities: list[float] = []

        def similarity(texts: list[str]) -> list[float]:
            embedded = self.embedder.embed(texts)
            vectors.update(zip(texts, embedded))
            similarities.extend((embedded @ question_vector).tolist())
            return similarities

        parts = question_parts(question)
        context = " ".join(history_questions(history))
        scored = score_sentences(question, hits, context=context, similarity=similarity, kinds=[p.kind for p in parts])
        strength = evidence_strength(scored, similarities)
        timings["evidence_s"] = round(time.perf_counter() - started - timings["retrieval_s"], 3)
        if not scored or (strength < settings.abstain_threshold and not asks_about_named(parts, scored)):
            yield from self._abstain(question, hits, ABSTAIN_MESSAGE, timings, started, strength)
            return

        chat = bool(getattr(self.llm, "is_chat", False))
        limit = min(max_tokens or settings.max_answer_tokens, settings.max_answer_tokens)
        overhead = prompt_overhead(self.llm.count_tokens, chat=chat) + self.llm.count_tokens(question + (system or ""))
        budget = evidence_budget(settings.evidence_tokens, self.llm.context_tokens, overhead, limit)
        passages = select_evidence(scored, hits, budget=budget, count_tokens=self.llm.count_tokens)

        pairs = functools.partial(self._pair_similarity, known=vectors)
        sentences, citations = compose(question, passages, self._common_words(), pairs)
        sentences = fit_tokens(sentences, max_tokens, self.llm.count_tokens)
        released: list[Sentence] = []
        numbering = Numbering()
        for delta in release(sentences, citations, released, numbering):
            timings.setdefault("first_sentence_s", round(time.perf_counter() - started, 3))
            yield delta

        text, used, failure = "", token_usage(), None
        plan = self._plan_model(question + (system or ""), started, limit, budget) if settings.use_llm else None
        if plan is not None:
            # The model reads only the evidence it can read in time, writes until the budget, and its sentences are
            # checked as each one is complete, joining the answer at once if they pass.
            evidence_tokens, write = plan
            if evidence_tokens < budget:
                passages = select_evidence(scored, hits, budget=evidence_tokens, count_tokens=self.llm.count_tokens)
            prompt = build_prompt(question, passages, chat=chat, system=system)
            checked_upto = 0
            for piece in itertools.chain(self._generate(prompt, timings, started, write, temperature or 0.0), [None]):
                if isinstance(piece, _Failure):
                    failure = str(piece)
                    continue
                if piece is not None:
                    yield Delta("")  # no text: it only lets a closed stream close the model at once, mid-generation
                text += piece or ""
                # At the end the unfinished last sentence is checked too, unless the budget cut it off mid-way.
                end = [len(text)] if failure != "budget" else []
                ends = [m.end() for m in SENTENCE_END.finditer(text, checked_upto)] if piece is not None else end
                if not ends or ends[-1] <= checked_upto:
                    continue
                joined, citations = self._check_model_text(text[checked_upto:ends[-1]], passages, vectors, citations, released, max_tokens)
                checked_upto = ends[-1]
                for delta in release(joined, citations, released, numbering):
                    timings.setdefault("first_sentence_s", round(time.perf_counter() - started, 3))
                    yield delta
            used = token_usage(prompt_tokens(self.llm.count_tokens, prompt.body), self.llm.count_tokens(text) if text else 0)
        if not released:
            yield from self._abstain(question, hits, NO_EVIDENCE_MESSAGE, timings, started, strength, used)
            return
        model_joined = len(released) > len(sentences)
        timings["total_s"] = round(time.perf_counter() - started, 3)
        shown = [numbering.sentence(s) for s in released]
        yield Answer(
            question=question,
            answer=render_answer(shown),
            sentences=tuple(shown),
            citations=numbering.citations(citations),
            mode="generated" if model_joined else "evidence",
            message=MODEL_MESSAGES.get(failure or "", ""),
            nearest=nearest_articles(hits),
            timings=timings,
            evidence_score=round(strength, 4),
            usage=used,
            draft=text.strip() if settings.show_draft else "",
        )

    def _check_model_text(self, text, passages, vectors, citations, released, max_tokens) -> tuple[list[Sentence], list[Citation]]:
        """The model's sentences in `text` that pass the support check and add to what was `released`, within
        `max_tokens`, with the citations merged."""
        checked, model_citations = verify_citations(
            text, passages, similarity=lambda a, b: self._pair_similarity(a, b, vectors), threshold=SUPPORT_THRESHOLD, drop_unsupported=True
        )
        joined, citations = join_checked(released, citations, checked, model_citations)
        return fit_tokens([*released, *joined], max_tokens, self.llm.count_tokens)[len(released):], citations

    def _refusal(self, question: str) -> str:
        """Why the archive can't answer a question whatever the evidence (a publication or a name it lacks), or ""."""
        known = self._known_sources()
        missing = unknown_publications(question, known) if known else []
        if missing:
            return f"The archive holds no articles from {', '.join(missing)}, so it can't answer this. These are the nearest articles."
        store = self._store()
        if store is None or not store.counts()[0]:
            return ""
        absent = missing_entities(question, lambda name: store.mentions(folded(name)))
        if absent:
            return f"The archive never mentions {', '.join(absent)}, so it can't answer this. These are the nearest articles."
        return ""

    def _plan_model(self, asked: str, started: float, limit: int, evidence_tokens: int) -> tuple[int, int] | None:
        """The evidence tokens the model may read and the tokens it may write: all of them without a time budget;
        with one, what fits in the time left at the model's measured pace (None: nothing useful fits)."""
        budget_s = self.settings.model_budget_s()
        if not budget_s:
            return evidence_tokens, limit
        left = budget_s - (time.perf_counter() - started)
        plan = plan_generation(left, self.pace, self.llm.count_tokens(asked), limit, evidence_tokens)
        if plan is None:
            self.pace.skipped += 1
        return plan

    def _generate(self, prompt, timings: dict[str, float], started: float, max_tokens: int, temperature: float) -> Iterator[str]:
        """Model text pieces, stopped at repeats, new blocks and the time budget; a stop other than the text's own
        end is the last item, a `_Failure`. Each generation's reading and writing speeds go into `self.pace`."""
        settings, generation_started = self.settings, time.perf_counter()
        budget_s = settings.model_budget_s()
        times: list[float] = []
        try:
            pieces = self.llm.generate(
                prompt.body,
                max_tokens=max_tokens,
                stop=list(prompt.stop),
                temperature=temperature,
                repeat_penalty=settings.repeat_penalty,
            )
            stream = stop_after_sentences(
                stop_on_repeats(pieces, markers=("Question:", "<<<", "PASSAGES", "\n\n")), MAX_SENTENCES
            )
            for piece in stream:
                times.append(time.perf_counter())
                if "first_token_s" not in timings:
                    timings["first_token_s"] = round(times[0] - started, 3)
                yield piece
                stop = "timeout" if time.perf_counter() - generation_started > settings.llm_timeout else ""
                if budget_s and time.perf_counter() - started > budget_s:
                    stop = "budget"
                if stop:
                    stream.close()
                    yield _Failure(stop)
                    return
        except LLMUnavailable:
            yield _Failure("unavailable")
        finally:
            if times:
                read = prompt_tokens(self.llm.count_tokens, prompt.body) - prompt_overhead(self.llm.count_tokens, chat=isinstance(prompt.body, list))
                self.pace.measure(read_tokens=read, read_s=times[0] - generation_started, written_tokens=len(times) - 1, write_s=times[-1] - times[0])

    def _store(self):
        """The store version the searcher answers from (index/stores/base.py); None for a searcher without one."""
        return getattr(self.searcher, "store", None)

    def _common_words(self) -> Container[str]:
        """The words the archive writes in lower case somewhere (see compose.attributed)."""
        store = self._store()
        return store.common_words() if store is not None else frozenset()

    def _known_sources(self) -> list[str]:
        """The sources of the articles in the current index."""
        store = self._store()
        return store.sources() if store is not None else []

    def _pair_similarity(self, answers: list[str], evidence: list[str], known: dict[str, np.ndarray]) -> np.ndarray:
        """Embedding similarity of each answer sentence to each evidence sentence (reusing `known` vectors)."""
        missing = list(dict.fromkeys(t for t in list(answers) + list(evidence) if t not in known))
        if missing:
            known.update(zip(missing, self.embedder.embed(missing)))
        answer_vectors = np.stack([known[t] for t in answers])
        evidence_vectors = np.stack([known[t] for t in evidence])
        return answer_vectors @ evidence_vectors.T

    def _abstain(
        self, question: str, hits: Sequence[Hit], message: str, timings: dict[str, float], started: float, strength: float = 0.0, used: dict | None = None
    ) -> Iterator[Delta | Answer]:
        """The abstention's message as the one Delta (so Deltas joined stay the answer), then its Answer."""
        timings["total_s"] = round(time.perf_counter() - started, 3)
        yield Delta(message)
        yield Answer(
            question=question,
            answer=message,
            abstained=True,
            mode="abstained",
            message=message,
            nearest=nearest_articles(hits),
            timings=timings,
            evidence_score=round(strength, 4),
            usage=used or token_usage(),
        )


class _Failure(str):
    """Why generation stopped early ("unavailable", "timeout", or "budget": the time budget ran out, which leaves no
    message); not answer text."""
