"""The official `openai` client against a real `byline serve` (real embedder, real Gemma, index built in tmp)."""

from __future__ import annotations

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
    assert final.citations and all(c["chunk_text"] for c in final.citations)
    assert final.answer.strip()


def test_wrong_key_is_refused(live_server):
    from openai import AuthenticationError, OpenAI

    bad = OpenAI(base_url=f"{live_server.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError):
        bad.models.list()
