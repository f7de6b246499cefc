"""What the HTTP API accepts, and the errors it answers with.

Request models refuse unknown fields (a misspelt `sorces` is a 422 naming it) and the coercions that
would hide a mistake (`"k": "3"`, `"k": true`, `"after": 0`). `CheckedRoute` reads JSON bodies under
BYLINE_MAX_REQUEST_BYTES (413) and refuses, with a 400 that says where, what JSON can carry but text
must not: lone surrogates (`"\\ud800"`), NaN, Infinity, numbers too big for a float. Text lengths with a
setting behind them are checked by `check_lengths` (413 naming the limit and its variable).
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from typing import Annotated, Literal

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, StringConstraints
from pydantic import WithJsonSchema, model_validator

from index.types import Filters
from server.settings import Settings

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SURROGATE = re.compile("[\ud800-\udfff]")


def iso_date(value: object) -> date:
    """A date from a `YYYY-MM-DD` string only (pydantic alone would read 0 or "1700000000" as a timestamp).

    >>> iso_date("2024-04-10")
    datetime.date(2024, 4, 10)
    """
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        raise ValueError("expected an ISO date string such as 2024-04-10")
    return date.fromisoformat(value)


IsoDate = Annotated[date, BeforeValidator(iso_date), WithJsonSchema({"type": "string", "format": "date"})]
Name = Annotated[StrictStr, StringConstraints(max_length=200)]


class Strict(BaseModel):
    """Base of the request models: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class DateRange(Strict):
    """An inclusive published-date range; `after` later than `before` is refused."""

    after: IsoDate | None = Field(default=None, description="Only articles published on or after this date.")
    before: IsoDate | None = Field(default=None, description="Only articles published on or before this date.")

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.after and self.before and self.after > self.before:
            raise ValueError("`after` must not be later than `before`")
        return self


class FiltersIn(DateRange):
    """Optional published-date range and allowed sources."""

    sources: list[Name] = Field(default_factory=list, max_length=50, description="Allowed sources (any, when empty).")

    def to_filters(self) -> Filters | None:
        """The core's Filters."""
        return make_filters(self.after, self.before, self.sources)


class Turn(Strict):
    """One earlier message of the conversation; its length is capped by BYLINE_MAX_MESSAGE_CHARS (413)."""

    role: Literal["user", "assistant"]
    content: StrictStr


def not_blank(value: object) -> object:
    """Text without its surrounding whitespace, blank text refused; anything else is left to the type check.

    >>> not_blank("  Why?  "), not_blank(3)
    ('Why?', 3)
    """
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()
    return value


Question = Annotated[StrictStr, StringConstraints(min_length=1), BeforeValidator(not_blank)]


class AskRequest(Strict):
    """POST /api/ask. `history` holds the earlier turns, oldest first."""

    question: Question = Field(description="The question; blank is refused (422), over BYLINE_MAX_QUESTION_CHARS 413.")
    history: list[Turn] = Field(default_factory=list, max_length=40, description="Earlier turns, oldest first.")
    k: StrictInt | None = Field(default=None, ge=1, le=100, description="Passages to retrieve (default BYLINE_K).")
    filters: FiltersIn | None = None
    stream: StrictBool = Field(default=False, description="Stream server-sent events instead of one JSON object.")


class SearchQuery(DateRange):
    """GET /api/search: validated like /api/ask (blank `q` and `after` > `before` refused, unknown parameters too)."""

    q: Question = Field(description="What to search for; blank is refused (422), over BYLINE_MAX_QUESTION_CHARS 413.")
    k: int | None = Field(default=None, ge=1, le=100, description="Passages to return (default BYLINE_K).")
    source: list[Name] = Field(default_factory=list, max_length=50, description="Allowed sources (repeat the parameter).")

    def to_filters(self) -> Filters | None:
        """The core's Filters."""
        return make_filters(self.after, self.before, self.source)


def make_filters(after: date | None, before: date | None, sources: list[str]) -> Filters | None:
    """Core Filters from request values, or None when nothing filters.

    >>> make_filters(date(2024, 1, 1), None, ["BBC"])
    Filters(after='2024-01-01', before=None, sources=('BBC',))
    """
    sources = tuple(s.strip() for s in sources if s.strip())
    if after is None and before is None and not sources:
        return None
    return Filters(after=after and after.isoformat(), before=before and before.isoformat(), sources=sources)


def length_problem(question: str, messages: list[str], settings: Settings) -> str | None:
    """What is over its limit (question, one message, the whole history), naming the limit's variable; None if nothing.

    >>> length_problem("Why?", ["x" * 30], Settings(max_message_chars=20))
    'messages[0] is 30 characters; the limit is 20 (BYLINE_MAX_MESSAGE_CHARS)'
    """
    if len(question) > settings.max_question_chars:
        return f"question is {len(question)} characters; the limit is {settings.max_question_chars} (BYLINE_MAX_QUESTION_CHARS)"
    for i, text in enumerate(messages):
        if len(text) > settings.max_message_chars:
            return f"messages[{i}] is {len(text)} characters; the limit is {settings.max_message_chars} (BYLINE_MAX_MESSAGE_CHARS)"
    total = sum(map(len, messages))
    if total > settings.max_history_chars:
        return f"the history is {total} characters; the limit is {settings.max_history_chars} (BYLINE_MAX_HISTORY_CHARS)"
    return None


def check_lengths(question: str, messages: list[str], settings: Settings) -> None:
    """Refuse with 413 a question, an earlier message or a history over its limit."""
    if problem := length_problem(question, messages, settings):
        raise HTTPException(status_code=413, detail=problem)


def finite_float(text: str) -> float:
    """A JSON number as a float, refusing one too big for a float (1e400 would become inf)."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is too large for a float; send a finite number")
    return number


def refuse_constant(name: str) -> None:
    """NaN, Infinity and -Infinity are not JSON, though Python's reader takes them."""
    raise ValueError(f"{name} is not a JSON number; send a finite number")


def surrogate_at(value: object) -> str | None:
    """Where parsed JSON holds a lone surrogate, in a key or a string (as a dotted path); None if nowhere.

    >>> surrogate_at({"question": "ok", "history": [{"content": "\\ud800"}]})
    'history.0.content'
    """
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str) and SURROGATE.search(item):
            return path or "(the body)"
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in pairs:
            if isinstance(key, str) and SURROGATE.search(key):
                return f"{path}.(a key)".lstrip(".")
            stack.append((f"{path}.{str(key)[:60]}".lstrip("."), child))
    return None


def parse_json(body: bytes) -> object:
    """A request body as JSON that text can use; ValueError saying what and where otherwise.

    >>> parse_json(b'{"k": 3}')
    {'k': 3}
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"the body is not UTF-8 text (bad byte at offset {error.start})") from None
    try:
        value = json.loads(text, parse_constant=refuse_constant, parse_float=finite_float)
    except json.JSONDecodeError as error:
        raise ValueError(f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if (where := surrogate_at(value)) is not None:
        raise ValueError(f"{where} holds a lone surrogate (such as \\ud800), which is not text; send valid Unicode")
    return value


class CheckedRequest(Request):
    """A request whose body is read under BYLINE_MAX_REQUEST_BYTES and whose JSON is checked by `parse_json`."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit = self.app.state.settings.max_request_bytes
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise body_too_large(int(declared), limit)
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > limit:
                    raise body_too_large(size, limit)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> object:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except ValueError as error:
                raise HTTPException(status_code=400, detail=str(error)) from None
        return self._json


def body_too_large(size: int, limit: int) -> HTTPException:
    """413 naming the limit and its setting (`size` is what the client declared, or what was read when it stopped)."""
    return HTTPException(status_code=413, detail=f"the request body is {size}+ bytes; the limit is {limit} (BYLINE_MAX_REQUEST_BYTES)")


class CheckedRoute(APIRoute):
    """An APIRoute whose handler sees a `CheckedRequest`."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def checked(request: Request):
            return await handler(CheckedRequest(request.scope, request.receive))

        return checked


class ErrorBody(BaseModel):
    """Every error but a validation error: its name and a message naming the field, limit or reason."""

    error: str = Field(description="The error's name, e.g. `Unauthorized`, `QueueFull`, `ArticleNotFound`.")
    detail: str = Field(description="What went wrong, in words.")


class FieldError(BaseModel):
    """One refused field: where it is, why, and pydantic's error type."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """422: the fields that were refused."""

    error: Literal["ValidationError"]
    detail: list[FieldError]


class OpenAIError(BaseModel):
    """OpenAI's error object: `type` is the error's name, `code` its HTTP status (or OpenAI's own code)."""

    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class OpenAIErrorBody(BaseModel):
    """Errors under /v1/ take OpenAI's shape, which its clients raise as exceptions."""

    error: OpenAIError


def field_errors(errors: list[dict]) -> list[dict]:
    """pydantic's errors without the refused input (which may be megabytes) and with printable text only.

    >>> field_errors([{"loc": ("body", "sorces"), "msg": "Extra inputs are not permitted", "type": "extra_forbidden", "input": 1}])
    [{'loc': ['body', 'sorces'], 'msg': 'Extra inputs are not permitted', 'type': 'extra_forbidden'}]
    """

    def printable(value: object) -> str:
        return SURROGATE.sub("\ufffd", str(value))[:200]

    return [
        {"loc": [part if isinstance(part, int) else printable(part) for part in error["loc"]],
         "msg": printable(error["msg"]), "type": printable(error["type"])}
        for error in errors
    ]


def error_body(path: str, name: str, detail: str | list[dict], status: int) -> dict:
    """An error's JSON: {"error", "detail"}, or OpenAI's {"error": {"message", "type", "param", "code"}} under /v1/.

    >>> error_body("/v1/models", "Unauthorized", "no key", 401)
    {'error': {'message': 'no key', 'type': 'Unauthorized', 'param': None, 'code': 401}}
    """
    if not path.startswith("/v1/"):
        return {"error": name, "detail": detail}
    if isinstance(detail, str):
        return {"error": {"message": detail, "type": name, "param": None, "code": status}}
    fields = [".".join(str(part) for part in error["loc"][1:]) for error in detail]
    message = "; ".join(f"{field or 'body'}: {error['msg']}" for field, error in zip(fields, detail))
    return {"error": {"message": message, "type": name, "param": fields[0] if fields else None, "code": status}}


ERROR_DESCRIPTIONS = {
    400: "The body is not usable JSON: malformed, not UTF-8, NaN/Infinity, or a lone surrogate (the detail says where).",
    401: "No key, or a wrong one (only when BYLINE_API_KEYS is set).",
    403: "Disabled: BYLINE_ADMIN_TOKEN is not set.",
    404: "No such article.",
    409: "A rebuild is already running.",
    413: "The body, the question, a message or the history is over its limit (the detail names it).",
    422: "A field is missing, unknown, of the wrong type or out of range (each listed with its location).",
    429: "Too many requests wait for the model; retry after the Retry-After header's seconds.",
    503: "The index is not built or the model is unavailable.",
}


def sse_event(names: list[str] | None) -> dict:
    """The JSON schema of one server-sent event: its name (one of `names`, or none at all) and its JSON data.

    >>> sse_event(None)["required"]
    ['data']
    """
    if names is None:
        properties = {"data": {"type": "string", "description": "A JSON object, or `[DONE]` at the end."}}
        return {"type": "object", "properties": properties, "required": ["data"]}
    properties = {"event": {"type": "string", "enum": names}, "data": {"type": "string", "description": "A JSON value."}}
    return {"type": "object", "properties": properties, "required": ["event", "data"]}


def error_responses(*codes: int, openai: bool = False) -> dict[int, dict]:
    """OpenAPI `responses` for these error statuses, each with its body model (OpenAI's shape for /v1/).

    >>> sorted(error_responses(404, 422))
    [404, 422]
    """
    def model(code: int) -> type[BaseModel]:
        return OpenAIErrorBody if openai else ValidationErrorBody if code == 422 else ErrorBody

    return {code: {"model": model(code), "description": ERROR_DESCRIPTIONS[code]} for code in codes}
