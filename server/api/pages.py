"""Server-rendered pages (the chat page and the local article view) and the health probes.

Templates are jinja2 with autoescape on: article text is untrusted and only ever reaches the page
escaped (here) or through textContent (in static/chat.js).
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from server.api.html import templates
from server.api.routes import find_article

router = APIRouter(include_in_schema=False)


def split_span(text: str, start: int | None, end: int | None) -> tuple[str, str, str]:
    """Cut text into (before, span, after), clamping the span to the text; no span when it is empty.

    >>> split_span("Rome offers sites.", 5, 11)
    ('Rome ', 'offers', ' sites.')
    >>> split_span("abc", None, None)
    ('abc', '', '')
    """
    if start is None or end is None:
        return text, "", ""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if start >= end:
        return text, "", ""
    return text[:start], text[start:end], text[end:]


def safe_url(url: str) -> str:
    """The URL if it is http(s), else "" (a `javascript:` link from an article must never render).

    >>> safe_url("javascript:alert(1)"), safe_url("https://example.com/a")
    ('', 'https://example.com/a')
    """
    return url if url.lower().startswith(("http://", "https://")) else ""


def index_facts(state) -> dict:
    """What /readyz reports about the loaded index and models."""
    store = state.searcher.store
    manifest = store.manifest
    articles, chunks = store.counts()
    return {
        "generation": store.version,
        "articles": articles,
        "chunks": chunks,
        "built_at": manifest.built_at,
        "embedding_model": manifest.embedding_model,
        "llm": getattr(state.llm, "name", None),
    }


def known_sources(searcher) -> list[str]:
    """The distinct article sources of the loaded index, for the chat page's filter."""
    return searcher.store.sources()


@router.get("/", response_class=HTMLResponse)
async def chat_page(request: Request):
    sources = known_sources(request.app.state.searcher)
    context = {"sources": sources, "max_question_chars": request.app.state.settings.max_question_chars}
    return templates.TemplateResponse(request, "chat.html", context)


@router.get("/articles/{article_id}", response_class=HTMLResponse)
async def article_page(
    request: Request, article_id: str, start: int | None = Query(None, ge=0), end: int | None = Query(None, ge=0)
):
    article = find_article(request.app.state.searcher, article_id)
    before, span, after = split_span(article.text, start, end)
    context = {"article": article, "url": safe_url(article.url), "before": before, "span": span, "after": after}
    return templates.TemplateResponse(request, "article.html", context)


@router.get("/healthz")
async def healthz():
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request):
    state = request.app.state
    if getattr(state, "answerer", None) is None or getattr(state, "searcher", None) is None:
        return JSONResponse({"ready": False, "detail": "index or models not loaded yet"}, status_code=503)
    return {"ready": True, **index_facts(state)}
