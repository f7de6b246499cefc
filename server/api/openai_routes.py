"""OpenAI-compatible endpoints: POST /v1/chat/completions (streaming or not) and GET /v1/models.

The last user message is the question, the earlier user/assistant messages are the history, and
system messages, `max_tokens` and `temperature` go to the answerer. The content (message or deltas)
is the checked answer with its [n] markers; the citations travel in an extra `citations` field of
the message (non-streaming) and of the final chunk (streaming), which the official `openai` client
exposes as an attribute. `usage` counts the model's real tokens.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import asdict
from functools import partial
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from server.api.routes import stream_failure
from server.api.schemas import CheckedRoute, Name, sse_event, OpenAIErrorBody, Strict, check_lengths, error_responses
from server.api.limits import GatedStreamingResponse, run_in_gate, stream_in_thread
from server.answering.types import Answer, Delta

router = APIRouter(prefix="/v1", tags=["openai"], route_class=CheckedRoute, responses=error_responses(401, openai=True))

MODEL_ID = "byline"
COMPLETION_OR_CHUNKS = {200: {"description": "A chat.completion, or with `stream: true` chat.completion.chunk events "
                                             "ending with the citations (or an error object), then `[DONE]`.",
                              "content": {"text/event-stream": {"schema": sse_event(None)}}}}


class TextPart(Strict):
    """A text part of a multi-part message; Byline reads text only, so other part types are refused."""

    type: Literal["text"]
    text: StrictStr


class ChatMessage(Strict):
    """One OpenAI chat message. Its content is text or a list of text parts; the other fields are OpenAI's, ignored."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[TextPart] | None = None
    name: Name | None = None
    refusal: StrictStr | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: Name | None = None
    function_call: dict | None = None
    audio: dict | None = None

    def text(self) -> str:
        """The message text, joining the parts of a multi-part content list."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(Strict):
    """OpenAI's stream_options; the final chunk always carries usage."""

    include_usage: StrictBool | None = None
    include_obfuscation: StrictBool | None = None


class OpenAIOptions(Strict):
    """The other fields of an OpenAI chat completion request: accepted so any OpenAI client works, and ignored."""

    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)
    n: StrictInt | None = Field(default=None, ge=1, le=1, description="Only one choice is made.")
    stop: Name | list[Name] | None = Field(default=None, max_length=4)
    presence_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, StrictFloat] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    seed: StrictInt | None = None
    user: Name | None = None
    stream_options: StreamOptions | None = None
    response_format: dict | None = None
    tools: list[dict] | None = None
    tool_choice: Name | dict | None = None
    parallel_tool_calls: StrictBool | None = None
    functions: list[dict] | None = None
    function_call: Name | dict | None = None
    service_tier: Name | None = None
    store: StrictBool | None = None
    metadata: dict[str, StrictStr] | None = None
    modalities: list[Name] | None = None
    reasoning_effort: Name | None = None
    verbosity: Name | None = None
    prediction: dict | None = None
    audio: dict | None = None
    web_search_options: dict | None = None
    safety_identifier: Name | None = None
    prompt_cache_key: Name | None = None


class ChatRequest(OpenAIOptions):
    """An OpenAI chat completion request: Byline honours model, messages, stream, max_tokens and temperature."""

    model: Name = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=80)
    stream: StrictBool = False
    max_tokens: StrictInt | None = Field(default=None, ge=1, description="Cap on the model's tokens and the answer's length.")
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, description="The newer name of max_tokens.")
    temperature: StrictFloat | None = Field(default=None, ge=0.0, le=2.0, description="Sampling temperature (default 0).")

    @model_validator(mode="after")
    def _ends_with_question(self) -> ChatRequest:
        if self.messages[-1].role != "user" or not self.messages[-1].text().strip():
            raise ValueError("the last message must be a non-empty user message (the question)")
        return self

    def question_and_history(self) -> tuple[str, list[dict]]:
        """The question (last user message) and earlier user/assistant turns as history."""
        history = [{"role": m.role, "content": m.text()} for m in self.messages[:-1] if m.role in ("user", "assistant")]
        return self.messages[-1].text().strip(), history

    def options(self) -> dict:
        """The answerer's keyword options: the system (and developer) messages joined, max_tokens, temperature."""
        system = "\n".join(m.text() for m in self.messages if m.role in ("system", "developer") and m.text().strip())
        return {"system": system or None, "max_tokens": self.max_completion_tokens or self.max_tokens, "temperature": self.temperature}


MODEL_NOT_FOUND = {"model": OpenAIErrorBody, "description": "The model is not `byline` (see GET /v1/models)."}


def model_not_found(model: str) -> JSONResponse:
    """OpenAI's 404 for a model this server doesn't serve."""
    message = f"The model `{model[:100]}` does not exist; this server answers with `{MODEL_ID}` (see GET /v1/models)."
    error = {"message": message, "type": "invalid_request_error", "param": "model", "code": "model_not_found"}
    return JSONResponse({"error": error}, status_code=404)


def citations_and_draft(answer: Answer) -> dict:
    """The extra fields of the message (or final chunk): the citations, and the unchecked draft when one was kept."""
    extra = {"citations": [asdict(c) for c in answer.citations]}
    if answer.draft:
        extra["draft"] = answer.draft
    return extra


def completion(answer: Answer, model: str, completion_id: str) -> dict:
    """A chat.completion object for a whole Answer, with `citations` (and any `draft`) on the message."""
    message = {"role": "assistant", "content": answer.answer, **citations_and_draft(answer)}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": answer.usage,
        "abstained": answer.abstained,
    }


def chunk(completion_id: str, model: str, delta: dict, finish: str | None = None, **extra) -> str:
    """One `data:` line of a chat.completion.chunk stream."""
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def chunk_events(items: AsyncIterator, model: str, completion_id: str) -> AsyncIterator[str]:
    """Render Delta/Answer as OpenAI chunks: checked text as content, then a final chunk with the citations
    and usage, then [DONE]. A failure becomes an OpenAI error object (the client raises it)."""
    yield chunk(completion_id, model, {"role": "assistant", "content": ""})
    async with aclosing(items):
        try:
            async for item in items:
                if isinstance(item, Delta) and item.text:  # an empty Delta only marks model progress
                    yield chunk(completion_id, model, {"content": item.text})
                elif isinstance(item, Answer):
                    extra = citations_and_draft(item)
                    yield chunk(completion_id, model, {}, "stop", usage=item.usage, abstained=item.abstained, **extra)
        except Exception as error:  # noqa: BLE001 - the stream has begun: end it with an error object, never a cut-off
            name, detail, status = stream_failure(error)
            yield f"data: {json.dumps({'error': {'message': detail, 'type': name, 'code': status}})}\n\n"
    yield "data: [DONE]\n\n"


@router.post("/chat/completions", summary="OpenAI-compatible chat completion with citations",
             responses={**COMPLETION_OR_CHUNKS, **error_responses(400, 413, 422, 429, 503, openai=True), 404: MODEL_NOT_FOUND})
async def chat_completions(body: ChatRequest, request: Request):
    state = request.app.state
    if body.model != MODEL_ID:
        return model_not_found(body.model)
    question, history = body.question_and_history()
    check_lengths(question, [m.text() for m in body.messages[:-1]], state.settings)
    call = partial(state.answerer.stream, question, history, **body.options())
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if not body.stream:
        return completion(await run_in_gate(state.gate, call), body.model, completion_id)
    state.gate.admit()
    events = chunk_events(stream_in_thread(state.gate, call), body.model, completion_id)
    return GatedStreamingResponse(events, state.gate, media_type="text/event-stream")


@router.get("/models", summary="The one model this server answers with")
async def models():
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "byline"}]}
