"""Who may read the archive: a key in a header, or the login cookie a browser gets for one.

With BYLINE_API_KEYS set, `KeyWall` answers 401 to every request that carries neither, except
`/healthz`, the login form's POST and `/static/` (the app's own script and style files, no archive
content). A browser asking for a page gets the login form as that 401 page; posting a key to
`/login` sets `byline_session`, an HttpOnly, SameSite=Strict cookie (Secure over https) holding an
expiry and its HMAC-SHA256 under the key. It never holds the key, outlives a restart, and dies with
its key. The admin token works wherever an API key does; `require_admin` accepts only the admin
token, from a header or from a session signed with it, so an admin page can reuse the same login.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from server.api.html import templates
from server.api.schemas import error_body
from server.settings import Settings

SESSION_COOKIE = "byline_session"
LOGIN_PATH = "/login"
OPEN_PATHS = frozenset({"/healthz"})
OPEN_PREFIXES = ("/static/",)
MAX_SESSION_CHARS = 100


def presented_key(request: Request) -> str:
    """The key a client sent: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def key_matches(key: str, accepted: list[str]) -> bool:
    """Constant-time membership test, so timing does not leak key prefixes.

    >>> key_matches("k2", ["k1", "k2"]), key_matches("", [""])
    (True, False)
    """
    found = False
    for candidate in accepted:
        found |= bool(candidate) and hmac.compare_digest(key.encode(), candidate.encode())
    return found


def sign_session(key: str, expires: int) -> str:
    """A session cookie value: the expiry (Unix seconds) and its HMAC-SHA256 under `key`.

    >>> sign_session("k", 100)[:4]
    '100.'
    """
    mac = hmac.new(key.encode(), f"byline-session|{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def session_matches(value: str, accepted: list[str], now: float) -> bool:
    """True when `value` is an unexpired session signed with one of `accepted` (each compared in constant time).

    >>> session_matches(sign_session("k", 200), ["x", "k"], now=100), session_matches(sign_session("k", 50), ["k"], now=100)
    (True, False)
    """
    expires = value.partition(".")[0]
    if len(value) > MAX_SESSION_CHARS or not (expires.isascii() and expires.isdigit()) or int(expires) <= now:
        return False
    found = False
    for key in accepted:
        found |= bool(key) and hmac.compare_digest(value.encode(), sign_session(key, int(expires)).encode())
    return found


def api_keys(settings: Settings) -> list[str]:
    """The keys that open the archive: BYLINE_API_KEYS and the admin token."""
    return [key for key in [*settings.api_keys, settings.admin_token] if key]


def holds_key(request: Request, accepted: list[str]) -> bool:
    """True when the request presents one of `accepted` in a header or in an unexpired session cookie."""
    session = request.cookies.get(SESSION_COOKIE, "")
    return key_matches(presented_key(request), accepted) or session_matches(session, accepted, time.time())


def local_path(target: str) -> str:
    """`target` if it is a path on this site, else "/" (the login form must not redirect elsewhere).

    >>> local_path("/articles/a1?start=3"), local_path("//evil.example"), local_path("https://evil.example")
    ('/articles/a1?start=3', '/', '/')
    """
    if not target.startswith("/") or target.startswith(("//", "/\\")) or any(c in target for c in "\r\n\\"):
        return "/"
    return target


def login_page(request: Request, message: str, back: str) -> HTMLResponse:
    """The login form, as a 401 page, that posts a key to /login and then goes back to `back`."""
    context = {"message": message, "next": local_path(back)}
    return templates.TemplateResponse(request, "login.html", context, status_code=401)


def unauthorized(request: Request, detail: str) -> Response:
    """401: the login form for a browser asking for a page, a JSON error for everything else."""
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        query = request.url.query
        return login_page(request, detail, request.url.path + (f"?{query}" if query else ""))
    body = error_body(request.url.path, "Unauthorized", detail, 401)
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


class KeyWall:
    """Pure ASGI middleware: with BYLINE_API_KEYS set, every request but the open ones needs a key (401)."""

    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.settings.api_keys or is_open(scope["method"], scope["path"]):
            return await self.app(scope, receive, send)
        request = Request(scope)
        if holds_key(request, api_keys(self.settings)):
            return await self.app(scope, receive, send)
        detail = "missing or wrong API key: send `Authorization: Bearer <key>` with one of BYLINE_API_KEYS, or log in"
        await unauthorized(request, detail)(scope, receive, send)


def is_open(method: str, path: str) -> bool:
    """What needs no key even when keys are set: /healthz, the login form's POST and the static files.

    >>> is_open("GET", "/healthz"), is_open("POST", "/login"), is_open("GET", "/readyz")
    (True, True, False)
    """
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or (method == "POST" and path == LOGIN_PATH)


def require_admin(request: Request) -> None:
    """Dependency for admin routes: 403 when no BYLINE_ADMIN_TOKEN is set, 401 without the token (header or session)."""
    settings: Settings = request.app.state.settings
    if not settings.admin_token:
        raise HTTPException(status_code=403, detail="admin actions are disabled: set BYLINE_ADMIN_TOKEN to enable them")
    if not holds_key(request, [settings.admin_token]):
        raise HTTPException(
            status_code=401,
            detail="needs the admin token: `Authorization: Bearer <BYLINE_ADMIN_TOKEN>`, or log in with it",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(include_in_schema=False)


@router.post(LOGIN_PATH)
async def log_in(request: Request):
    """Check the posted key; on success set the session cookie and go back to the page asked for."""
    form = await request.form(max_fields=4, max_part_size=4096)
    key, back = str(form.get("key", "")).strip(), local_path(str(form.get("next", "/")))
    settings: Settings = request.app.state.settings
    if not key_matches(key, api_keys(settings)):
        return login_page(request, "That key is not accepted. Ask whoever runs this server for one.", back)
    lifetime = int(settings.session_hours * 3600)
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, sign_session(key, int(time.time()) + lifetime), max_age=lifetime, path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def log_out():
    """Forget the session cookie."""
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
