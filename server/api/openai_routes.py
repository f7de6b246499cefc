"""OpenAI-compatible endpoints: POST /v1/chat/completions (streaming or not) and GET /v1/models.

The last user message is the question and the earlier messages are the history. Citations travel
in an extra `citations` field of the message (non-streaming) and of the final chunk (streaming),
which the official `openai` client exposes as an attribute.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import asdict
from functools import partial

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from index.errors import BylineError
from server.api.routes import check_question
from server.api.limits import GatedStreamingResponse, require_api_key, run_in_gate, stream_in_thread
from server.answering.types import Answer, Delta

router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], tags=["openai"])

MODEL_ID = "byline"


class ChatMessage(BaseModel):
    """One OpenAI chat message; only text content is used."""

    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict] | None = None

    def text(self) -> str:
        """The message text, joining the text parts of a multi-part content list."""
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The subset of the OpenAI chat completion request Byline honours; other fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=80)
    stream: bool = False

    @model_validator(mode="after")
    def _ends_with_question(self) -> ChatRequest:
        if self.messages[-1].role != "user" or not self.messages[-1].text().strip():
            raise ValueError("the last message must be a non-empty user message (the question)")
        return self

    def question_and_history(self) -> tuple[str, list[dict]]:
        """The question (last user message) and earlier user/assistant turns as history."""
        history = [{"role": m.role, "content": m.text()} for m in self.messages[:-1] if m.role in ("user", "assistant")]
        return self.messages[-1].text().strip(), history


def completion(answer: Answer, model: str, completion_id: str) -> dict:
    """A chat.completion object for a whole Answer, with `citations` on the message."""
    message = {"role": "assistant", "content": answer.answer, "citations": [asdict(c) for c in answer.citations]}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
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
    """Render Delta/Answer as OpenAI chunks; the final chunk carries the citations, then [DONE].

    If the final answer differs from what streamed (an abstention or extractive fallback), the
    difference is sent as one more content delta when it extends the streamed text, and the final
    chunk's `answer` field always holds the whole answer."""
    streamed = ""
    yield chunk(completion_id, model, {"role": "assistant", "content": ""})
    async with aclosing(items):
        try:
            async for item in items:
                if isinstance(item, Delta):
                    streamed += item.text
                    yield chunk(completion_id, model, {"content": item.text})
                elif isinstance(item, Answer):
                    if item.answer.startswith(streamed) and item.answer != streamed:
                        yield chunk(completion_id, model, {"content": item.answer[len(streamed):]})
                    citations = [asdict(c) for c in item.citations]
                    yield chunk(completion_id, model, {}, "stop", citations=citations, answer=item.answer)
        except BylineError as error:
            body = {"error": {"message": str(error), "type": type(error).__name__, "code": error.http_status}}
            yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


@router.post("/chat/completions", summary="OpenAI-compatible chat completion with citations")
async def chat_completions(body: ChatRequest, request: Request):
    state = request.app.state
    question, history = body.question_and_history()
    check_question(question, state.settings)
    call = partial(state.answerer.stream, question, history)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if not body.stream:
        return completion(await run_in_gate(state.gate, call), body.model, completion_id)
    state.gate.admit()
    events = chunk_events(stream_in_thread(state.gate, call), body.model, completion_id)
    return GatedStreamingResponse(events, state.gate, media_type="text/event-stream")


@router.get("/models", summary="The one model this server answers with")
async def models():
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "byline"}]}
