"""The shell behind `byline ask`: load the models (concurrently), build a missing index, render an Answer as text."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from index.chunking import headline
from server.settings import Settings
from server.answering.types import Answer


def load_answerer(settings: Settings, *, progress: Callable[[str, int, int], None] | None = None):
    """An Answerer over settings.index_dir, building the index from settings.corpus_dir first if there is none.

    The LLM loads in a thread while the embedder (and torch) import, since both take seconds.
    """
    from index.embed import load_embedder
    from index.stores.base import store_backend
    from server.answering.answer import Answerer
    from server.llm import make_llm

    with ThreadPoolExecutor(max_workers=1) as pool:
        llm_future = pool.submit(make_llm, settings)
        embedder = load_embedder(settings.embedder_spec())
        backend = store_backend(settings)
        if backend.version() is None:
            from index.build import build_from_settings

            print(f"no index in {settings.index_dir}: building it from {settings.corpus_dir}", file=sys.stderr)
            build_from_settings(settings, embedder, progress=progress)
        from index.retrieve import Searcher

        searcher = Searcher(backend, embedder, settings.chunk_settings())
        llm = llm_future.result()
    return Answerer(searcher, llm, embedder, settings)


def format_answer(answer: Answer) -> str:
    """An Answer as terminal text: the answer, a note if any, then the numbered sources with their quoted spans.

    >>> from server.answering.types import Citation, Sentence
    >>> c = Citation(1, "a", "Dongfeng eyes Italy", "Wire", "https://x", "2024-04-10", 3, "…", 0, 11, "Rome waits.")
    >>> print(format_answer(Answer("Why?", "Rome waits [1].", (Sentence("Rome waits.", (1,), True),), (c,))))
    Rome waits [1].
    <BLANKLINE>
    Sources:
    [1] Dongfeng eyes Italy (Wire, 2024-04-10) https://x
        "Rome waits."
    """
    lines = [answer.answer]
    unsupported = [s.text for s in answer.sentences if not s.supported]
    if answer.message and answer.message != answer.answer:
        lines += ["", f"({answer.message})"]
    if unsupported:
        lines += ["", f"({len(unsupported)} sentence(s) not supported by any source: marked without a citation)"]
    if answer.citations:
        lines += ["", "Sources:"]
        for c in answer.citations:
            lines.append(f"[{c.n}] {headline(c.title, c.source, c.published)}" + (f" {c.url}" if c.url else ""))
            if c.quote:
                lines.append(f'    "{" ".join(c.quote.split())}"')
    elif answer.nearest:
        lines += ["", "Nearest articles:"]
        for hit in answer.nearest:
            lines.append(f"- {headline(hit.title or hit.article_id, hit.source, hit.published)}")
    return "\n".join(lines)
