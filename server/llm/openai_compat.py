"""The HTTP backend: any OpenAI-compatible server (llama.cpp's server, vLLM, Ollama, OpenAI) through httpx."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from index.errors import LLMUnavailable
from server.llm.base import Messages
from server.llm.streaming import chunk_text, parse_sse


def request_body(
    model: str,
    prompt_or_messages: str | Messages,
    *,
    max_tokens: int,
    stop: list[str] | None,
    temperature: float,
    repeat_penalty: float,
    stream: bool,
    send_repeat_penalty: bool = True,
) -> tuple[str, dict]:
    """The endpoint path and JSON body for a completion prompt (str) or chat messages.

    >>> request_body("m", "Q: hi\\nA:", max_tokens=8, stop=["\\n"], temperature=0.0, repeat_penalty=1.1, stream=True)
    ('/completions', {'model': 'm', 'max_tokens': 8, 'temperature': 0.0, 'stream': True, 'stop': ['\\n'], 'repeat_penalty': 1.1, 'prompt': 'Q: hi\\nA:'})
    >>> request_body("m", [{"role": "user", "content": "hi"}], max_tokens=8, stop=None, temperature=0.0,
    ...              repeat_penalty=1.1, stream=False, send_repeat_penalty=False)[0]
    '/chat/completions'
    """
    body: dict = {"model": model, "max_tokens": max_tokens, "temperature": temperature, "stream": stream}
    if stop:
        body["stop"] = list(stop)
    if send_repeat_penalty:
        body["repeat_penalty"] = repeat_penalty  # llama.cpp's name; vLLM and Ollama ignore fields they don't know
    if isinstance(prompt_or_messages, str):
        return "/completions", {**body, "prompt": prompt_or_messages}
    return "/chat/completions", {**body, "messages": list(prompt_or_messages)}


def server_root(base_url: str) -> str:
    """The server's root URL, where llama.cpp keeps its tokenize endpoints, from an OpenAI base URL.

    >>> server_root("http://127.0.0.1:8080/v1/"), server_root("http://host:11434")
    ('http://127.0.0.1:8080', 'http://host:11434')
    """
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def approximate_tokens(text: str) -> int:
    """About four characters a token, rounded up: a safe estimate when the server can't count.

    >>> approximate_tokens(""), approximate_tokens("Rome wants jobs.")
    (0, 4)
    """
    return math.ceil(len(text) / 4)


class OpenAICompatibleLLM:
    """Streams from `{base_url}/completions` (a prompt) or `{base_url}/chat/completions` (messages)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 60.0,
        *,
        is_chat: bool = True,
        context_tokens: int = 2048,
        stream: bool = True,
        use_server_tokenizer: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Set up a pooled HTTP client; nothing is sent until the first call."""
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.name = f"openai:{model}@{self.base_url}"
        self.is_chat = is_chat
        self.context_tokens = context_tokens
        self.stream = stream
        # api.openai.com refuses fields it doesn't know; llama.cpp, vLLM and Ollama accept or ignore them.
        self._send_repeat_penalty = urlsplit(self.base_url).hostname != "api.openai.com"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport
        )
        self._tokenizer_probe = use_server_tokenizer
        self._tokenize_url: str | None = None
        self._probe_lock = threading.Lock()

    def generate(
        self,
        prompt_or_messages: str | Messages,
        *,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        temperature: float = 0.0,
        repeat_penalty: float = 1.1,
        stream: bool | None = None,
    ) -> Iterator[str]:
        """Stream text pieces (or, with stream=False, the whole reply as one piece); failures raise LLMUnavailable."""
        streaming = self.stream if stream is None else stream
        path, body = request_body(
            self.model,
            prompt_or_messages,
            max_tokens=max_tokens,
            stop=stop,
            temperature=temperature,
            repeat_penalty=repeat_penalty,
            stream=streaming,
            send_repeat_penalty=self._send_repeat_penalty,
        )
        url = self.base_url + path
        try:
            if streaming:
                yield from self._stream(url, body)
            else:
                response = self._client.post(url, json=body)
                _check_status(url, response)
                yield chunk_text(_json(url, response))
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(f"{url} timed out after {self.timeout:g} s ({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            raise LLMUnavailable(f"cannot connect to {url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise LLMUnavailable(f"request to {url} failed: {type(exc).__name__}: {exc}") from exc

    def _stream(self, url: str, body: dict) -> Iterator[str]:
        """POST with stream=True and yield the text of each server-sent event, within the overall timeout."""
        deadline = time.monotonic() + self.timeout
        with self._client.stream("POST", url, json=body) as response:
            if response.status_code >= 300:
                response.read()
                _check_status(url, response)
            for payload in parse_sse(response.iter_lines()):
                piece = chunk_text(payload)
                if piece:
                    yield piece
                if time.monotonic() > deadline:
                    raise LLMUnavailable(f"{url} ran past the {self.timeout:g} s generation timeout")

    def count_tokens(self, text: str) -> int:
        """Tokens by the server's tokenizer when it offers llama.cpp's tokenize endpoint, else about chars/4."""
        url = self._find_tokenize_url()
        if url is None:
            return approximate_tokens(text)
        try:
            return _count_reply(self._client.post(url, json=_tokenize_body(url, text, self.model), timeout=5.0))
        except (httpx.HTTPError, ValueError, KeyError):
            return approximate_tokens(text)

    def _find_tokenize_url(self) -> str | None:
        """Probe once for `/extras/tokenize/count` (llama-cpp-python) or `/tokenize` (llama-server)."""
        with self._probe_lock:
            if self._tokenizer_probe:
                self._tokenizer_probe = False
                root = server_root(self.base_url)
                for url in (root + "/extras/tokenize/count", root + "/tokenize"):
                    try:
                        response = self._client.post(url, json=_tokenize_body(url, "probe", self.model), timeout=5.0)
                        if _count_reply(response) > 0:
                            self._tokenize_url = url
                            break
                    except (httpx.HTTPError, ValueError, KeyError):
                        continue
            return self._tokenize_url

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()


def _tokenize_body(url: str, text: str, model: str) -> dict:
    """llama-cpp-python's server reads `input`; llama-server reads `content`.

    >>> _tokenize_body("http://h/extras/tokenize/count", "hi", "m"), _tokenize_body("http://h/tokenize", "hi", "m")
    ({'input': 'hi', 'model': 'm'}, {'content': 'hi'})
    """
    return {"input": text, "model": model} if "/extras/" in url else {"content": text}


def _count_reply(response: httpx.Response) -> int:
    """The token count in a tokenize reply: `{"count": n}` or `{"tokens": [...]}`; raises ValueError otherwise."""
    if response.status_code != 200:
        raise ValueError(f"tokenize answered {response.status_code}")
    data = response.json()
    return int(data["count"]) if "count" in data else len(data["tokens"])


def _check_status(url: str, response: httpx.Response) -> None:
    """Raise LLMUnavailable with the URL, status and the server's message for a non-2xx reply."""
    if response.status_code < 300:
        return
    try:
        detail = response.json()
        detail = detail.get("error", detail) if isinstance(detail, dict) else detail
        if isinstance(detail, dict):
            detail = detail.get("message") or detail.get("detail") or detail
    except (json.JSONDecodeError, ValueError):
        detail = response.text
    raise LLMUnavailable(f"{url} answered HTTP {response.status_code}: {str(detail)[:300]}")


def _json(url: str, response: httpx.Response) -> dict:
    """The reply's JSON object, or LLMUnavailable naming the URL."""
    try:
        data = response.json()
    except (json.JSONDecodeError, ValueError) as exc:
        raise LLMUnavailable(f"{url} did not answer JSON: {response.text[:200]!r}") from exc
    if isinstance(data, dict) and data.get("error"):
        raise LLMUnavailable(f"{url} reported an error: {data['error']}")
    return data
