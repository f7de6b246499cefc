"""Hostile and mistaken requests (server/api/schemas.py) with fakes: lone surrogates, NaN, non-string parts,
5 MB messages, unknown fields, coercions, blank searches, with and without API keys. Each gets a 4xx whose
message names the field or limit, the model is never called, and a stream that fails ends with an error."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from index.build import build_index
from server.api.app import create_app
from server.settings import Settings

from conftest import THREE_ARTICLES, FakeEmbedder, ScriptedLLM
from test_app import events, make_client

ASK, CHAT = "/api/ask", "/v1/chat/completions"
KEY = {"Authorization": "Bearer k1"}


def post_raw(client, path: str, body: bytes, headers=None):
    return client.post(path, content=body, headers={"Content-Type": "application/json", **(headers or {})})


def message(response) -> str:
    """The error message of a /api or a /v1 error body."""
    body = response.json()
    return body["error"]["message"] if isinstance(body["error"], dict) else json.dumps(body["detail"])


@pytest.fixture(params=["open", "keyed"])
def api(request):
    """The app without keys, and with keys (the requests then carry one)."""
    keyed = request.param == "keyed"
    test_client, _, answerer = make_client(**({"api_keys": ["k1"]} if keyed else {}))
    with test_client:
        test_client.headers.update(KEY if keyed else {})
        yield SimpleNamespace(client=test_client, answerer=answerer)


UNUSABLE_JSON = [
    (ASK, rb'{"question": "\ud800 Dongfeng"}', "question holds a lone surrogate"),
    (ASK, rb'{"question": "Why?", "history": [{"role": "user", "content": "a\udfffb"}]}', "history.0.content holds a lone surrogate"),
    (ASK, rb'{"question": "Why?", "filters": {"sources": ["\udc00"]}}', "filters.sources.0 holds a lone surrogate"),
    (ASK, rb'{"question": "Why?", "\ud800": 1}', "(a key) holds a lone surrogate"),
    (ASK, rb'{"question": "Why?", "k": NaN}', "NaN is not a JSON number"),
    (ASK, rb'{"question": "Why?", "k": Infinity}', "Infinity is not a JSON number"),
    (ASK, rb'{"question": "Why?", "k": -Infinity}', "-Infinity is not a JSON number"),
    (ASK, rb'{"question": "Why?", "k": 1e400}', "too large for a float"),
    (ASK, b'{"question": "Why?", "k": 3', "malformed JSON at line 1, column 28"),
    (ASK, b'{"question": "caf\xe9"}', "not UTF-8"),
    (ASK, b"[" * 100_000, "nested too deeply"),
    (CHAT, rb'{"messages": [{"role": "user", "content": "\ud800 Dongfeng"}]}', "messages.0.content holds a lone surrogate"),
    (CHAT, rb'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\udbff"}]}]}', "messages.0.content.0.text holds"),
    (CHAT, rb'{"messages": [{"role": "user", "content": "\ud800"}], "stream": true}', "messages.0.content holds a lone surrogate"),
    (CHAT, rb'{"messages": [{"role": "user", "content": "Why?"}], "temperature": NaN}', "NaN is not a JSON number"),
]


@pytest.mark.parametrize("path, body, expected", UNUSABLE_JSON)
def test_unusable_json_is_a_400_saying_what_and_where(api, path, body, expected):
    response = post_raw(api.client, path, body)
    assert response.status_code == 400, response.text
    assert expected in message(response)
    assert api.answerer.calls == []


NOT_TEXT_PARTS = [
    ([{"type": "text", "text": 5}], "messages.0.content"),
    ([{"type": "text", "text": None}], "messages.0.content"),
    ([{"type": "text"}], "messages.0.content"),
    ([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}], "messages.0.content"),
    ([{"type": "text", "text": "Why?", "extra": 1}], "messages.0.content"),
    ([5], "messages.0.content"),
    (5, "messages.0.content"),
    ({"text": "Why?"}, "messages.0.content"),
]


@pytest.mark.parametrize("content, where", NOT_TEXT_PARTS)
@pytest.mark.parametrize("stream", [False, True])
def test_v1_content_that_is_not_text_is_a_422_in_openai_shape(api, content, where, stream):
    response = api.client.post(CHAT, json={"messages": [{"role": "user", "content": content}], "stream": stream})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "ValidationError" and error["code"] == 422 and error["param"].startswith(where)
    assert api.answerer.calls == []


def test_text_parts_are_joined_into_the_question(api):
    parts = [{"type": "text", "text": "Why is Italy "}, {"type": "text", "text": "courting Dongfeng?"}]
    assert api.client.post(CHAT, json={"messages": [{"role": "user", "content": parts}]}).status_code == 200
    assert api.answerer.calls[0][0] == "Why is Italy courting Dongfeng?"


def test_a_5_mb_history_message_is_refused_before_the_model_with_the_limit_named(api):
    huge = {"role": "user", "content": "Dongfeng " * 600_000}
    for body in ({"messages": [huge, {"role": "user", "content": "Why?"}]},
                 {"question": "Why?", "history": [huge]}):
        response = api.client.post(CHAT if "messages" in body else ASK, json=body)
        assert response.status_code == 413 and "BYLINE_MAX_REQUEST_BYTES" in message(response)
        assert "the limit is 1000000" in message(response)
    assert api.answerer.calls == []


@pytest.mark.parametrize("path", [ASK, CHAT])
def test_message_and_history_caps_are_settable_and_named(path):
    test_client, _, answerer = make_client(max_message_chars=100, max_history_chars=150, max_question_chars=50)

    def send(question: str, earlier: list[str]):
        turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(earlier)]
        if path == ASK:
            return test_client.post(ASK, json={"question": question, "history": turns})
        return test_client.post(CHAT, json={"messages": [*turns, {"role": "user", "content": question}]})

    with test_client:
        one = send("Why?", ["x" * 101])
        assert one.status_code == 413 and "messages[0] is 101 characters; the limit is 100 (BYLINE_MAX_MESSAGE_CHARS)" in message(one)
        total = send("Why?", ["x" * 80, "y" * 80])
        assert total.status_code == 413 and "the history is 160 characters; the limit is 150 (BYLINE_MAX_HISTORY_CHARS)" in message(total)
        question = send("q" * 51, [])
        assert question.status_code == 413 and "the limit is 50 (BYLINE_MAX_QUESTION_CHARS)" in message(question)
        assert answerer.calls == []
        assert send("Why?", ["x" * 70, "y" * 70]).status_code == 200


MISTAKES = [
    (ASK, {"question": "Why?", "filters": {"sorces": ["BBC"]}}, ["body", "filters", "sorces"], "extra_forbidden"),
    (ASK, {"questoin": "Why?"}, ["body", "questoin"], "extra_forbidden"),
    (ASK, {"question": "Why?", "history": [{"role": "user", "content": "x", "name": "a"}]}, ["body", "history", 0, "name"], "extra_forbidden"),
    (ASK, {"question": "Why?", "k": "3"}, ["body", "k"], "int_type"),
    (ASK, {"question": "Why?", "k": True}, ["body", "k"], "int_type"),
    (ASK, {"question": "Why?", "k": 3.0}, ["body", "k"], "int_type"),
    (ASK, {"question": "Why?", "stream": "yes"}, ["body", "stream"], "bool_type"),
    (ASK, {"question": 5}, ["body", "question"], "string_type"),
    (ASK, {"question": "Why?", "filters": {"after": 0}}, ["body", "filters", "after"], "value_error"),
    (ASK, {"question": "Why?", "filters": {"after": "1700000000"}}, ["body", "filters", "after"], "value_error"),
    (ASK, {"question": "Why?", "filters": {"before": "2024-02-30"}}, ["body", "filters", "before"], "value_error"),
    (ASK, {"question": "Why?", "filters": {"sources": "BBC"}}, ["body", "filters", "sources"], "list_type"),
    (CHAT, {"messages": [{"role": "user", "content": "Why?"}], "temperatur": 0.2}, "temperatur", "extra_forbidden"),
    (CHAT, {"messages": [{"role": "user", "content": "Why?"}], "max_tokens": "20"}, "max_tokens", "int_type"),
    (CHAT, {"messages": [{"role": "user", "content": "Why?"}], "n": 2}, "n", "less_than_equal"),
    (CHAT, {"messages": [{"role": "user", "content": "Why?"}], "stream": 1}, "stream", "bool_type"),
    (CHAT, {"messages": [{"role": "robot", "content": "Why?"}]}, "messages.0.role", "literal_error"),
    (CHAT, {"messages": [{"role": "user", "content": "Why?"}], "stream_options": {"include_usage": True, "x": 1}},
     "stream_options.x", "extra_forbidden"),
]


@pytest.mark.parametrize("path, body, where, kind", MISTAKES)
def test_unknown_fields_and_coercions_are_a_422_naming_the_field(api, path, body, where, kind):
    response = api.client.post(path, json=body)
    assert response.status_code == 422, response.text
    if path == ASK:
        assert {"loc": where, "type": kind} in [{"loc": e["loc"], "type": e["type"]} for e in response.json()["detail"]]
    else:
        assert response.json()["error"]["param"] == where and where in response.json()["error"]["message"]
    assert api.answerer.calls == []


def test_the_standard_openai_fields_are_accepted(api):
    body = {"model": "byline", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}],
            "temperature": 0.2, "top_p": 1, "n": 1, "max_tokens": 50, "max_completion_tokens": 50, "stop": ["\n\n"],
            "presence_penalty": 0, "frequency_penalty": 0.5, "logit_bias": {"50256": -100}, "logprobs": False, "seed": 7,
            "user": "reader-1", "stream_options": {"include_usage": True}, "response_format": {"type": "text"},
            "tools": [], "tool_choice": "none", "parallel_tool_calls": False, "store": False, "metadata": {"a": "b"},
            "service_tier": "auto", "modalities": ["text"], "reasoning_effort": "low", "safety_identifier": "s",
            "prompt_cache_key": "p", "verbosity": "low"}
    assert api.client.post(CHAT, json=body).status_code == 200
    assert api.client.post(CHAT, json={**body, "stream": True}).text.endswith("data: [DONE]\n\n")
    assert api.answerer.options[0]["temperature"] == 0.2 and api.answerer.options[0]["max_tokens"] == 50


SEARCH_AND_ASK_ALIKE = [
    ({"q": "   "}, {"question": "   "}, "must not be blank"),
    ({"q": ""}, {"question": ""}, "must not be blank"),
    ({"q": "x", "after": "2024-05-01", "before": "2024-01-01"},
     {"question": "x", "filters": {"after": "2024-05-01", "before": "2024-01-01"}}, "must not be later than"),
    ({"q": "x", "after": "0"}, {"question": "x", "filters": {"after": "0"}}, "expected an ISO date"),
    ({"q": "x", "sorce": "BBC"}, {"question": "x", "filters": {"sorce": ["BBC"]}}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize("query, body, expected", SEARCH_AND_ASK_ALIKE)
def test_search_and_ask_refuse_alike(api, query, body, expected):
    searched = api.client.get("/api/search", params=query)
    asked = api.client.post(ASK, json=body)
    assert searched.status_code == asked.status_code == 422
    assert expected in message(searched) and expected in message(asked)


def test_a_long_search_is_a_413_naming_the_limit(api):
    response = api.client.get("/api/search", params={"q": "x" * 2001})
    assert response.status_code == 413 and "BYLINE_MAX_QUESTION_CHARS" in message(response)


def test_refused_input_is_never_echoed_back(api):
    response = api.client.post(ASK, json={"question": "Why?", "k": "7" * 100_000})
    assert response.status_code == 422 and len(response.content) < 500


def test_without_a_key_a_bad_request_is_401_before_anything_is_read():
    test_client, _, answerer = make_client(api_keys=["k1"])
    with test_client:
        for path, body, _ in UNUSABLE_JSON[:3]:
            assert post_raw(test_client, path, body).status_code == 401
        assert test_client.post(CHAT, json={"messages": [{"role": "user", "content": "x" * 5_000_000}]}).status_code == 401
        assert answerer.calls == []


class FailingLLM(ScriptedLLM):
    """Generates a few words, then fails as a model or tokenizer would on the server."""

    def generate(self, prompt_or_messages, **limits):
        yield from ["Dongfeng ", "is ", "in "]
        raise RuntimeError("llama_decode returned -1")


def real_answerer_app(tmp_path, llm):
    """The real Searcher and Answerer over a three-article index, the fake embedder, and `llm`."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in THREE_ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    embedder = FakeEmbedder()
    build_index(corpus, tmp_path / "index", embedder)
    return create_app(Settings(index_dir=tmp_path / "index", abstain_threshold=-1.0), embedder=embedder, llm=llm)


def test_a_model_failing_mid_answer_ends_each_stream_with_an_error_never_a_cut_off(tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(real_answerer_app(tmp_path, FailingLLM())) as test_client:
        parsed = events(test_client.post(ASK, json={"question": "Why is Dongfeng in Italy?", "stream": True}).text)
        assert parsed[-1][0] == "error" and parsed[-1][1]["status"] == 500
        assert "llama_decode" not in json.dumps(parsed)  # the reason goes to the server log, not to the client
        body = test_client.post(CHAT, json={"messages": [{"role": "user", "content": "Why is Dongfeng in Italy?"}], "stream": True}).text
        lines = [line[6:] for line in body.split("\n\n") if line.startswith("data: ")]
        assert lines[-1] == "[DONE]" and json.loads(lines[-2])["error"]["code"] == 500
        assert test_client.app.state.gate.admitted == 0
        assert test_client.get("/api/index/status").status_code == 200
