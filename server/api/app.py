"""The FastAPI app factory: load the index and models once in the lifespan, keep them on app.state,
turn domain errors into JSON, add the security headers, and mount the routers."""

from __future__ import annotations

from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from index.errors import BylineError, QueueFull
from server.api.auth import KeyWall, unauthorized
from server.api.limits import AnswerGate
from server.api.schemas import error_body, field_errors
from server.api.rebuild import Rebuilder, watch_corpus
from server.settings import REPO_ROOT, Settings

STATIC_DIR = REPO_ROOT / "static"
TEMPLATES_DIR = REPO_ROOT / "templates"

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# The /docs and /redoc pages (served offline by fastapi-offline, no CDN) bootstrap with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """Headers added to every response; the docs pages get a CSP that lets Swagger UI run.

    >>> dict(security_headers("/"))[b"x-content-type-options"]
    b'nosniff'
    """
    csp = DOCS_CSP if path.startswith(DOCS_PATHS) else STRICT_CSP
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    ]


class SecurityHeaders:
    """Pure ASGI middleware (not BaseHTTPMiddleware, which would buffer and break streaming)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = security_headers(scope.get("path", ""))

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def load_state(app: FastAPI, settings: Settings, embedder=None, llm=None, searcher=None, answerer=None) -> None:
    """Load whatever was not injected (embedder, index, LLM, answerer) onto app.state, once."""
    if embedder is None:
        from index.embed import load_embedder

        embedder = load_embedder(settings.embedder_spec())
    if searcher is None:
        from index.retrieve import Searcher
        from index.stores.base import store_backend

        searcher = Searcher(store_backend(settings), embedder, settings.chunk_settings(), check_every=settings.reload_check_s)
    if answerer is None:
        if llm is None:
            from server.llm import make_llm

            llm = make_llm(settings)
        from server.answering.answer import Answerer

        answerer = Answerer(searcher, llm, embedder, settings)
    app.state.embedder = embedder
    app.state.searcher = searcher
    app.state.llm = llm if llm is not None else getattr(answerer, "llm", None)
    app.state.answerer = answerer
    app.state.gate = AnswerGate(settings.queue_size)
    app.state.rebuilder = Rebuilder(settings, embedder, searcher)


async def byline_error(request: Request, error: BylineError) -> JSONResponse:
    """A domain error as JSON with its HTTP status; 429s say when to retry."""
    headers = {}
    if isinstance(error, QueueFull):
        headers["Retry-After"] = str(request.app.state.gate.retry_after())
    body = error_body(request.url.path, type(error).__name__, str(error), error.http_status)
    return JSONResponse(body, status_code=error.http_status, headers=headers)


async def http_error(request: Request, error: HTTPException):
    """An HTTP error as JSON; a 401 on a page is the login form instead."""
    if error.status_code == 401:
        return unauthorized(request, str(error.detail))
    name = HTTPStatus(error.status_code).phrase.replace(" ", "")
    body = error_body(request.url.path, name, str(error.detail), error.status_code)
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 listing each refused field with its location, without echoing the refused input."""
    body = error_body(request.url.path, "ValidationError", field_errors(error.errors()), 422)
    return JSONResponse(body, status_code=422)


def create_app(settings: Settings, *, embedder=None, llm=None, searcher=None, answerer=None) -> FastAPI:
    """Build the app; the lifespan loads what was not injected. Tests inject fakes here."""
    from server.api import admin, auth, openai_routes, pages, routes

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        load_state(app, settings, embedder, llm, searcher, answerer)
        stop_watching = watch_corpus(app.state.rebuilder, settings) if settings.watch else None
        yield
        if stop_watching is not None:
            stop_watching()

    app = FastAPIOffline(
        title="Byline",
        summary="Questions over a news archive, answered with cited passages.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(KeyWall, settings=settings)
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(BylineError, byline_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.include_router(routes.router)
    app.include_router(openai_routes.router)
    app.include_router(pages.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.mount("/static", StaticFiles(directory=Path(STATIC_DIR)), name="static")
    return app
