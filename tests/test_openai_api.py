"""The official `openai` client against a real `byline serve` (real embedder, real Gemma, index built in tmp)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.real

QUESTION = "Why is Italy courting Dongfeng?"


@pytest.fixture(scope="module")
def client(live_server):
    from openai import OpenAI

    return OpenAI(base_url=f"{live_server.base_url}/v1", api_key=live_server.api_key, timeout=120, max_retries=0)


def test_models_lists_byline(client):
    assert [model.id for model in client.models.list()] == ["byline"]


def test_non_streaming_completion_has_cited_answer(client):
    completion = client.chat.completions.create(model="byline", messages=[{"role": "user", "content": QUESTION}])
    message = completion.choices[0].message
    assert message.role == "assistant" and message.content.strip()
    assert completion.usage.prompt_tokens > 0 and completion.usage.total_tokens >= completion.usage.prompt_tokens
    citations = message.citations
    assert citations, "the answer should cite at least one passage"
    assert any("dongfeng" in c["title"].lower() for c in citations)
    for c in citations:
        assert c["span_start"] < c["span_end"] and c["chunk_text"] and c["article_id"]


def test_streaming_completion_streams_text_and_ends_with_citations(client):
    stream = client.chat.completions.create(
        model="byline",
        messages=[{"role": "user", "content": "Who is Dongfeng?"}, {"role": "assistant", "content": "A Chinese carmaker."},
                  {"role": "user", "content": QUESTION}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert len(chunks) > 3 and text.strip()
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.citations and all(c["chunk_text"] and c["quote"] for c in final.citations)
    assert {int(n) for n in re.findall(r"\[(\d+)\]", text)} <= {c["n"] for c in final.citations}
    assert final.usage.prompt_tokens > 0 and final.usage.total_tokens >= final.usage.prompt_tokens


def test_unknown_model_is_not_found(client):
    from openai import NotFoundError

    with pytest.raises(NotFoundError) as error:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert error.value.code == "model_not_found"


def test_wrong_key_is_refused(live_server):
    from openai import AuthenticationError, OpenAI

    bad = OpenAI(base_url=f"{live_server.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError):
        bad.models.list()
