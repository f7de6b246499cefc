"""Pure helpers over streamed text: reading OpenAI/llama.cpp server-sent events and stopping runaway output."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

from index.errors import LLMUnavailable

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+|\n")


def parse_sse(lines: Iterable[str]) -> Iterator[dict]:
    """Yield the JSON payload of each `data:` line until `data: [DONE]`; other lines are ignored.

    >>> list(parse_sse(['data: {"a": 1}', '', ': keep-alive', 'data: [DONE]', 'data: {"b": 2}']))
    [{'a': 1}]
    """
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        if not data:
            continue
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise LLMUnavailable(f"the server streamed a line that is not JSON: {data[:200]!r}") from exc
        if isinstance(payload, dict) and payload.get("error"):
            raise LLMUnavailable(f"the server reported an error mid-stream: {_error_text(payload['error'])}")
        yield payload


def chunk_text(payload: dict) -> str:
    """The text in one completion or chat chunk, streamed or not: `text`, `delta.content` or `message.content`.

    >>> chunk_text({"choices": [{"text": "Rome", "index": 0}]})
    'Rome'
    >>> chunk_text({"choices": [{"delta": {"content": " wants"}}]})
    ' wants'
    >>> chunk_text({"choices": [{"message": {"role": "assistant", "content": "jobs."}}]})
    'jobs.'
    >>> chunk_text({"choices": [{"delta": {"role": "assistant"}}]})
    ''
    """
    choices = payload.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if choice.get("text") is not None:
        return choice["text"]
    for key in ("delta", "message"):
        part = choice.get(key)
        if isinstance(part, dict) and part.get("content"):
            return part["content"]
    return ""


def _error_text(error: object) -> str:
    """A server's error object as one line.

    >>> _error_text({"message": "model not found", "code": 404})
    'model not found'
    """
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _normalize(sentence: str) -> str:
    """Lower-cased with whitespace collapsed, so repeats compare equal.

    >>> _normalize("  Rome  wants\\nJobs. ")
    'rome wants jobs.'
    """
    return " ".join(sentence.split()).lower()


def _marker_start(text: str, markers: tuple[str, ...]) -> tuple[int | None, int]:
    """(index of the first complete marker or None, length of a tail that could begin a marker).

    >>> _marker_start("Done.\\nQuestion: next", ("Question:",))
    (6, 0)
    >>> _marker_start("Done.\\nQues", ("Question:", ""))
    (None, 4)
    """
    markers = tuple(marker for marker in markers if marker)  # an empty marker would cut everything
    found = [i for i in (text.find(m) for m in markers) if i >= 0]
    if found:
        return min(found), 0
    tail = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), 0, -1):
            if text.endswith(marker[:size]):
                tail = max(tail, size)
                break
    return None, tail


def cut_at_markers(pieces: Iterable[str], markers: tuple[str, ...]) -> Iterator[str]:
    """Pass text through up to the first marker, holding back any tail that might begin one; then close upstream.

    >>> list(cut_at_markers(["Yes [1].", "\\n", "\\nQuestion: next"], ("\\n\\n",)))
    ['Yes [1].']
    >>> list(cut_at_markers(["Rome.", "\\n", "It won."], ("\\n\\n",)))
    ['Rome.', '\\nIt won.']
    """
    pending = ""  # received text not yet passed on; markers can only start here (a possible start is held)
    try:
        for piece in pieces:
            pending += piece
            cut, tail = _marker_start(pending, markers)
            if cut is not None:
                if pending[:cut]:
                    yield pending[:cut]
                return
            if len(pending) > tail:
                yield pending[: len(pending) - tail]
                pending = pending[len(pending) - tail:]
        if pending:
            yield pending
    finally:
        _close(pieces)


def stop_on_repeats(
    pieces: Iterable[str],
    *,
    markers: tuple[str, ...] = ("Question:",),
    min_chars: int = 12,
) -> Iterator[str]:
    """Pass streamed text through, ending it at a repeated sentence or line, or where a marker (a new "Question:") begins.

    A sentence counts as a repeat when, lower-cased and with whitespace collapsed, it equals an earlier one of at
    least `min_chars` characters; the repeat itself is never yielded, because text that could still turn into a
    repeat is held back until it diverges. Markers may span pieces and sentences ("\\n\\n" works). The upstream
    iterator is closed when this stops early, so a backend's lock is freed at once.

    >>> "".join(stop_on_repeats(["Rome wants jobs. ", "It offers sites. ", "Rome wants ", "jobs. ", "More."]))
    'Rome wants jobs. It offers sites. '
    >>> "".join(stop_on_repeats(["Yes [1].\\n", "Quest", "ion: Who?"]))
    'Yes [1].\\n'
    >>> "".join(stop_on_repeats(["Rome wants more. Rome wants jobs."]))
    'Rome wants more. Rome wants jobs.'
    """
    source = cut_at_markers(pieces, markers)
    seen: set[str] = set()
    sentence = ""  # the current, unfinished sentence
    sent = 0  # characters of `sentence` already yielded
    try:
        for piece in source:
            sentence += piece
            while (match := _SENTENCE_END.search(sentence)) is not None:
                whole, sentence = sentence[: match.end()], sentence[match.end():]
                key = _normalize(whole)
                if len(key) >= min_chars and key in seen:
                    return
                seen.add(key)
                if whole[sent:]:
                    yield whole[sent:]
                sent = 0
            if len(sentence) > sent and not _could_repeat(sentence, seen):
                yield sentence[sent:]
                sent = len(sentence)
        if sentence[sent:] and not _is_partial_repeat(sentence, seen, min_chars):
            yield sentence[sent:]
    finally:
        source.close()
        _close(pieces)  # also when `source` never started, so never ran its own cleanup


def _close(pieces: Iterable[str]) -> None:
    """Close an iterator that can be closed (a generator holding a model's lock or an HTTP response)."""
    close = getattr(pieces, "close", None)
    if close is not None:
        close()


def _could_repeat(partial: str, seen: set[str]) -> bool:
    """Whether an unfinished sentence is still the start of an earlier sentence.

    >>> _could_repeat("Rome  wants", {"rome wants jobs."}), _could_repeat("Rome said", {"rome wants jobs."})
    (True, False)
    """
    key = _normalize(partial)
    return bool(key) and any(earlier.startswith(key) for earlier in seen)


def _is_partial_repeat(partial: str, seen: set[str], min_chars: int) -> bool:
    """Whether a cut-off final fragment is a long enough start of an earlier sentence to drop.

    >>> _is_partial_repeat("Rome wants jo", {"rome wants jobs."}, 12), _is_partial_repeat("Rome", {"rome wants jobs."}, 12)
    (True, False)
    """
    return len(_normalize(partial)) >= min_chars and _could_repeat(partial, seen)
