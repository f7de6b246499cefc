"""The LLM interface every backend implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

Messages = list[dict[str, str]]


class LLM(Protocol):
    """Streams text for a completion prompt (str) or chat messages (list of role/content dicts).

    `is_chat` tells the prompt builder whether to send messages (chat-tuned model) or a plain
    completion prompt with stop sequences (base model).
    """

    name: str
    is_chat: bool
    context_tokens: int

    def generate(
        self,
        prompt_or_messages: str | Messages,
        *,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        temperature: float = 0.0,
        repeat_penalty: float = 1.1,
    ) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...
