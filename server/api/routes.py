"""The JSON API under /api: ask (JSON or server-sent events), search, articles, index rebuild and status.

Routes validate, make one call into the core, and render. Answers stream as SSE events: `delta`
({"text", "citations"}: checked sentences with their [n] markers and the citations they introduce), then
`citations` (all of them), then `final` (the whole Answer); a failure mid-stream becomes an `error` event.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import asdict, dataclass
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from index.errors import ArticleNotFound, BylineError
from index.types import Article, Hit
from server.api.auth import require_admin
from server.api.limits import GatedStreamingResponse, run_in_gate, stream_in_thread
from server.api.rebuild import RebuildStatus
from server.api.schemas import AskRequest, CheckedRoute, SearchQuery, check_lengths, error_responses, sse_event
from server.answering.types import Answer, Delta

router = APIRouter(tags=["api"], route_class=CheckedRoute, responses=error_responses(401))
log = logging.getLogger(__name__)

ARTICLE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
ANSWER_OR_EVENTS = {200: {"model": Answer, "description": "The Answer as JSON, or with `stream: true` server-sent events: `delta`*, "
                                         "`citations`, `final` (the Answer), or `error` if it fails midway.",
                          "content": {"text/event-stream": {"schema": sse_event(["delta", "citations", "final", "error"])}}}}


@dataclass(frozen=True)
class SearchResult:
    """GET /api/search: the query and its passages, best first."""

    query: str
    hits: list[Hit]


def find_article(searcher, article_id: str) -> Article:
    """Look an id up in the loaded index only; anything that is not a plain id is simply not found."""
    if not ARTICLE_ID.fullmatch(article_id):
        raise ArticleNotFound(f"no article with id {article_id[:80]!r}")
    return searcher.article(article_id)


def sse(event: str, data) -> str:
    """One server-sent event with a JSON payload.

    >>> sse("delta", {"text": "Hi"})
    'event: delta\\ndata: {"text": "Hi"}\\n\\n'
    """
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def answer_body(answer: Answer) -> dict:
    """An Answer as JSON; `draft` (the model's unchecked text) only when BYLINE_SHOW_DRAFT filled it."""
    body = answer.to_dict()
    if not body.get("draft"):
        body.pop("draft", None)
    return body


def stream_failure(error: Exception) -> tuple[str, str, int]:
    """(error name, message, HTTP status) for an exception that ended an answer stream; unexpected ones are logged.

    >>> from index.errors import LLMUnavailable
    >>> stream_failure(LLMUnavailable("the model crashed"))
    ('LLMUnavailable', 'the model crashed', 503)
    """
    if isinstance(error, BylineError):
        return type(error).__name__, str(error), error.http_status
    log.exception("answer stream failed", exc_info=error)
    return "InternalError", "the answer failed on the server; see its log", 500


async def answer_events(items: AsyncIterator) -> AsyncIterator[str]:
    """Render the core's Delta/Answer stream as SSE: delta*, citations, final; any failure ends it with `error`."""
    async with aclosing(items):
        try:
            async for item in items:
                if isinstance(item, Delta) and item.text:  # an empty Delta only marks model progress
                    yield sse("delta", {"text": item.text, "citations": [asdict(c) for c in item.citations]})
                elif isinstance(item, Answer):
                    yield sse("citations", [asdict(c) for c in item.citations])
                    yield sse("final", answer_body(item))
        except Exception as error:  # noqa: BLE001 - the stream has begun: the client gets an error event, never a cut-off
            name, detail, status = stream_failure(error)
            yield sse("error", {"error": name, "detail": detail, "status": status})


@router.post("/api/ask", summary="Answer a question with numbered, checked citations",
             responses={**ANSWER_OR_EVENTS, **error_responses(400, 413, 422, 429, 503)})
async def ask(body: AskRequest, request: Request):
    state = request.app.state
    history = [turn.model_dump() for turn in body.history]
    check_lengths(body.question, [turn["content"] for turn in history], state.settings)
    filters = body.filters.to_filters() if body.filters else None
    call = partial(state.answerer.stream, body.question, history, body.k, filters)
    if not body.stream:
        return answer_body(await run_in_gate(state.gate, call))
    state.gate.admit()
    events = answer_events(stream_in_thread(state.gate, call))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return GatedStreamingResponse(events, state.gate, media_type="text/event-stream", headers=headers)


@router.get("/api/search", summary="Retrieve passages (no LLM)",
            responses={200: {"model": SearchResult}, **error_responses(413, 422, 503)})
async def search(query: Annotated[SearchQuery, Query()], request: Request):
    state = request.app.state
    check_lengths(query.q, [], state.settings)
    hits = await run_in_threadpool(state.searcher.search, query.q, query.k or state.settings.k, query.to_filters())
    return {"query": query.q, "hits": [asdict(hit) for hit in hits]}


@router.get("/api/articles/{article_id}", summary="One article from the loaded index",
            responses={200: {"model": Article}, **error_responses(404, 422, 503)})
async def article(article_id: str, request: Request):
    return asdict(find_article(request.app.state.searcher, article_id))


@router.post("/api/index/rebuild", status_code=202, dependencies=[Depends(require_admin)],
             responses={202: {"model": RebuildStatus}, **error_responses(403, 409)})
async def rebuild(request: Request):
    """Start an incremental rebuild of BYLINE_CORPUS_DIR in the background (needs the admin token)."""
    return request.app.state.rebuilder.start().to_dict()


@router.get("/api/index/status", summary="Progress of a rebuild and the last build's summary",
            responses={200: {"model": RebuildStatus}})
async def index_status(request: Request):
    return request.app.state.rebuilder.status().to_dict()
