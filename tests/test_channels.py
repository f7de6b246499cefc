"""Only checked text reaches a reader, on every channel: POST /api/ask (JSON and SSE), /v1/chat/completions
through the official `openai` client against a real uvicorn (streaming and not), and `byline ask`.

The real Answerer runs over fakes, with a scripted model that writes one supported and one invented sentence.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from server.answering.answer import Answerer
from server.api.app import create_app
from server.settings import Settings

from conftest import FakeEmbedder, ScriptedLLM, served
from test_answer import FakeSearcher

QUESTION = "Why is Italy courting Dongfeng?"
SUPPORTED = "Italy wants local production to supply the European region [1]."
CHECKED = "supply the European region [1]."  # what the checked answer says, in the model's words or the evidence's
INVENTED = "The Chinese carmaker has been building cars in Europe for decades"
REPLY = f"{SUPPORTED} {INVENTED} [1]."


class RepeatingLLM(ScriptedLLM):
    """Writes the same reply for every question."""

    def generate(self, prompt_or_messages, **limits):
        self.replies = [REPLY]
        yield from super().generate(prompt_or_messages, **limits)


class ArticleSearcher(FakeSearcher):
    """test_answer's searcher, plus the article lookup the pages and /api/articles need."""

    def article(self, article_id):
        return self.store.article(article_id)


def checked_app(**settings):
    """The app over the real Answerer with the scripted model (one supported, one invented sentence)."""
    settings = Settings(abstain_threshold=0.2, **settings)
    embedder, llm, searcher = FakeEmbedder(), RepeatingLLM(), ArticleSearcher()
    answerer = Answerer(searcher, llm, embedder, settings)
    return create_app(settings, embedder=embedder, llm=SimpleNamespace(name="scripted"), searcher=searcher, answerer=answerer)


def sse_events(body: str) -> list[tuple[str, dict]]:
    """(event, data) pairs of an SSE body."""
    pairs = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        pairs.append((fields["event"], json.loads(fields["data"])))
    return pairs


@pytest.fixture(scope="module")
def base_url():
    with served(checked_app()) as url:
        yield url


@pytest.fixture(scope="module")
def openai_client(base_url):
    from openai import OpenAI

    return OpenAI(base_url=f"{base_url}/v1", api_key="unused", timeout=30, max_retries=0)


def test_api_ask_json_and_events_carry_only_checked_text():
    with TestClient(checked_app()) as client:
        answer = client.post("/api/ask", json={"question": QUESTION}).json()
        body = client.post("/api/ask", json={"question": QUESTION, "stream": True}).text
    assert CHECKED in answer["answer"] and INVENTED not in json.dumps(answer)
    assert "draft" not in answer
    assert INVENTED not in body
    events = sse_events(body)
    names = [name for name, _ in events]
    assert names == ["delta"] * (len(names) - 2) + ["citations", "final"] and len(names) > 2
    deltas = [data for name, data in events if name == "delta"]
    final = events[-1][1]
    assert "".join(d["text"] for d in deltas) == final["answer"] == answer["answer"]
    introduced = [c["n"] for d in deltas for c in d["citations"]]
    assert introduced == sorted(c["n"] for c in final["citations"]) == [c["n"] for c in events[-2][1]]
    assert final["usage"]["prompt_tokens"] > 0 and final["usage"]["completion_tokens"] > 0


def test_the_unchecked_draft_comes_apart_only_with_show_draft():
    with TestClient(checked_app(show_draft=True)) as client:
        answer = client.post("/api/ask", json={"question": QUESTION}).json()
        events = sse_events(client.post("/api/ask", json={"question": QUESTION, "stream": True}).text)
        message = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}).json()
    assert INVENTED in answer["draft"] and INVENTED not in answer["answer"]
    assert INVENTED in events[-1][1]["draft"] and not any(INVENTED in data["text"] for name, data in events if name == "delta")
    reply = message["choices"][0]["message"]
    assert INVENTED in reply["draft"] and INVENTED not in reply["content"]


def test_openai_client_stream_shows_only_the_checked_answer(openai_client):
    chunks = list(openai_client.chat.completions.create(
        model="byline", messages=[{"role": "user", "content": QUESTION}], stream=True
    ))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert CHECKED in text and INVENTED not in text and "Chinese carmaker" not in text
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.prompt_tokens > 0 and final.usage.completion_tokens > 0
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    assert markers == {c["n"] for c in final.citations}
    for citation in final.citations:
        assert {"n", "title", "source", "url", "published", "quote", "article_id", "span_start", "span_end"} <= set(citation)
        assert citation["quote"] and citation["title"]


def test_openai_client_message_is_the_checked_answer_with_citations(openai_client):
    completion = openai_client.chat.completions.create(
        model="byline", max_tokens=60, temperature=0.2,
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": QUESTION}],
    )
    message = completion.choices[0].message
    assert CHECKED in message.content and INVENTED not in message.content
    assert [c["n"] for c in message.citations] == [1] and message.citations[0]["article_id"] == "dongfeng"
    assert not hasattr(message, "draft") or message.draft is None
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


def test_openai_client_gets_openai_errors(openai_client):
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert missing.value.code == "model_not_found" and missing.value.body["param"] == "model"
    with pytest.raises(openai.APIStatusError) as bad:
        openai_client.chat.completions.create(model="byline", temperature=5, messages=[{"role": "user", "content": QUESTION}])
    assert bad.value.status_code in (400, 422) and "temperature" in str(bad.value.body)


def test_byline_ask_prints_only_the_checked_answer(monkeypatch, capsys):
    from server import cli
    from server.answering import ask

    settings = Settings(abstain_threshold=0.2)
    answerer = Answerer(ArticleSearcher(), RepeatingLLM(), FakeEmbedder(), settings)
    monkeypatch.setattr(ask, "load_answerer", lambda *args, **kwargs: answerer)
    assert cli.main(["ask", QUESTION]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(answerer.answer(QUESTION).answer) and CHECKED in printed and INVENTED not in printed and "Sources:" in printed
    assert cli.main(["ask", QUESTION, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert CHECKED in answer["answer"] and INVENTED not in answer["answer"] and not answer["draft"]
