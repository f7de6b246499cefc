"""The web layer with fakes: every route, SSE order, limits, auth, escaping and security headers."""

from __future__ import annotations

import re

import json
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from index.errors import ArticleNotFound, LLMUnavailable
from index.types import Article, Hit
from server.api.app import create_app
from server.settings import Settings
from server.answering.types import Answer, Citation, Delta, Sentence

from conftest import ArticleStore, FakeEmbedder

XSS = "<script>alert(1)</script> and <img src=x onerror=alert(2)>"
DONGFENG = Article(
    id="a1b2c3d4e5f60718",
    text="Dongfeng is in talks with Italy. Rome will offer sites within weeks.",
    title="Dongfeng in Italy",
    source="Byline Wire",
    url="https://example.com/dongfeng",
    published="2024-04-10",
)
EVIL = Article(id="e0e0e0e0e0e0e0e0", text=f"Before {XSS} after.", title=f"Evil {XSS}", source="Bad", url="javascript:alert(3)")


class FakeSearcher:
    """Two articles, searchable by a shared word; `reload` counts swaps."""

    def __init__(self) -> None:
        self.articles = {a.id: a for a in (DONGFENG, EVIL)}
        manifest = SimpleNamespace(article_count=2, chunk_count=3, built_at="2024-05-01T00:00:00Z", embedding_model="fake")
        self.store = ArticleStore(self.articles, "g1", manifest)
        self.reloads = 0
        self.searches: list = []

    def search(self, query, k=10, filters=None):
        self.searches.append((query, k, filters))
        words = set(query.lower().split())
        return [
            Hit(chunk_id=i, article_id=a.id, score=1.0, text=a.text, start=0, end=len(a.text), title=a.title, source=a.source)
            for i, a in enumerate(self.articles.values())
            if words & set(a.text.lower().split())
        ][:k]

    def article(self, article_id):
        if article_id not in self.articles:
            raise ArticleNotFound(f"no article {article_id!r}")
        return self.articles[article_id]

    def reload(self):
        self.reloads += 1
        self.store = ArticleStore(self.articles, f"g{self.reloads + 1}", self.store.manifest)
        return True


def citation(n=1, article=DONGFENG) -> Citation:
    return Citation(n=n, article_id=article.id, title=article.title, source=article.source, url=article.url,
                    published=article.published, chunk_id=0, chunk_text=article.text, span_start=0, span_end=31)


@dataclass
class FakeAnswerer:
    """Streams a fixed answer word by word; can block mid-stream on an event and records closes."""

    pieces: tuple[str, ...] = ("Dongfeng ", "talks ", "with ", "Italy [1].")
    gate: threading.Event | None = None
    fail: bool = False
    calls: list = field(default_factory=list)
    closed: int = 0
    finished: int = 0

    options: list = field(default_factory=list)
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129})

    def stream(self, question, history=None, k=None, filters=None, **options):
        self.calls.append((question, history, k, filters))
        self.options.append(options)
        try:
            for i, piece in enumerate(self.pieces):
                if self.fail and i == 1:
                    raise LLMUnavailable("the model crashed")
                yield Delta(piece, (citation(),) if "[1]" in piece else ())
                if self.gate is not None:
                    assert self.gate.wait(10)
            text = "".join(self.pieces)
            self.finished += 1
            yield Answer(question=question, answer=text, sentences=(Sentence(text, (1,), True, 0.9),), citations=(citation(),), usage=self.usage)
        except GeneratorExit:
            self.closed += 1
            raise

    def answer(self, *args, **kwargs):
        return [item for item in self.stream(*args, **kwargs)][-1]


def make_client(answerer=None, **settings) -> tuple[TestClient, FakeSearcher, FakeAnswerer]:
    searcher = FakeSearcher()
    answerer = answerer or FakeAnswerer()
    app = create_app(Settings(**settings), embedder=FakeEmbedder(), llm=SimpleNamespace(name="fake-llm"), searcher=searcher, answerer=answerer)
    return TestClient(app), searcher, answerer


@pytest.fixture
def client():
    test_client, searcher, answerer = make_client()
    with test_client:
        test_client.searcher, test_client.answerer = searcher, answerer
        yield test_client


def events(text: str) -> list[tuple[str, object]]:
    """Parse an SSE body into (event, data) pairs."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_ask_returns_answer_json(client):
    response = client.post("/api/ask", json={"question": " Why Dongfeng? ", "history": [{"role": "user", "content": "hi"}], "k": 3,
                                             "filters": {"after": "2024-01-01", "sources": ["Byline Wire"]}})
    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "Dongfeng talks with Italy [1]."
    assert body["citations"][0]["article_id"] == DONGFENG.id
    question, history, k, filters = client.answerer.calls[0]
    assert question == "Why Dongfeng?" and history == [{"role": "user", "content": "hi"}] and k == 3
    assert filters.after == "2024-01-01" and filters.before is None and filters.sources == ("Byline Wire",)


def test_ask_stream_sends_deltas_then_citations_then_final(client):
    with client.stream("POST", "/api/ask", json={"question": "Why Dongfeng?", "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    parsed = events(body)
    names = [name for name, _ in parsed]
    assert names == ["delta"] * 4 + ["citations", "final"]
    assert "".join(data["text"] for name, data in parsed if name == "delta") == "Dongfeng talks with Italy [1]."
    assert [[c["n"] for c in data["citations"]] for name, data in parsed if name == "delta"] == [[], [], [], [1]]
    assert parsed[-2][1][0]["n"] == 1
    assert parsed[-1][1]["answer"] == "Dongfeng talks with Italy [1]." and "draft" not in parsed[-1][1]


def test_unexpected_failure_mid_stream_is_an_error_event_not_a_cut_off():
    class Broken(FakeAnswerer):
        def stream(self, question, history=None, k=None, filters=None, **options):
            yield Delta("Dongfeng talks [1].", (citation(),))
            raise KeyError("bug")

    test_client, _, _ = make_client(Broken())
    with test_client:
        parsed = events(test_client.post("/api/ask", json={"question": "Why?", "stream": True}).text)
        assert [name for name, _ in parsed] == ["delta", "error"]
        assert parsed[-1][1]["status"] == 500 and "KeyError" not in parsed[-1][1]["detail"]
        body = test_client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Why?"}], "stream": True}).text
        lines = [line[6:] for line in body.split("\n\n") if line.startswith("data: ")]
        assert lines[-1] == "[DONE]" and json.loads(lines[-2])["error"]["code"] == 500


def test_stream_failure_becomes_error_event():
    test_client, _, answerer = make_client(FakeAnswerer(fail=True))
    with test_client:
        body = test_client.post("/api/ask", json={"question": "Why?", "stream": True}).text
        assert [name for name, _ in events(body)] == ["delta", "error"]
        assert events(body)[-1][1] == {"error": "LLMUnavailable", "detail": "the model crashed", "status": 503}
        assert test_client.post("/api/ask", json={"question": "Why?"}).status_code == 503


@pytest.mark.parametrize("payload", [{"question": ""}, {"question": "   "}, {}, {"question": "x", "k": 0},
                                     {"question": "x", "filters": {"after": "2024-05-01", "before": "2024-01-01"}},
                                     {"question": "x", "history": [{"role": "system", "content": "y"}]}])
def test_ask_rejects_bad_requests_with_422(client, payload):
    response = client.post("/api/ask", json=payload)
    assert response.status_code == 422
    assert client.answerer.calls == []


def test_too_long_question_is_413_with_message(client):
    response = client.post("/api/ask", json={"question": "x" * 2001})
    assert response.status_code == 413
    assert "limit is 2000" in response.json()["detail"]


def test_search_and_articles(client):
    response = client.get("/api/search", params={"q": "Dongfeng talks", "k": 2, "source": ["Byline Wire"], "after": "2024-01-01"})
    assert response.status_code == 200
    assert response.json()["hits"][0]["article_id"] == DONGFENG.id
    _, k, filters = client.searcher.searches[0]
    assert k == 2 and filters.sources == ("Byline Wire",) and filters.after == "2024-01-01"
    assert client.get("/api/search", params={"q": ""}).status_code == 422
    assert client.get("/api/search", params={"q": "x", "after": "not-a-date"}).status_code == 422
    article = client.get(f"/api/articles/{DONGFENG.id}").json()
    assert article["text"] == DONGFENG.text and article["title"] == DONGFENG.title


@pytest.mark.parametrize("path", ["/api/articles/nope", "/api/articles/../../etc/passwd", "/api/articles/%2e%2e",
                                  "/api/articles/..%2F..%2Fetc%2Fpasswd", "/articles/%2e%2e%2fsecret", "/articles/%2e%2e", "/articles/....%5Cwin.ini",
                                  "/articles/..%2F..%2Fetc%2Fpasswd", "/articles/nope"])
def test_unknown_and_path_like_ids_are_404(client, path):
    assert client.get(path).status_code == 404


def test_article_view_highlights_span_and_escapes_markup(client):
    page = client.get(f"/articles/{DONGFENG.id}", params={"start": 33, "end": 49})
    assert page.status_code == 200
    assert '<mark id="highlight" tabindex="-1">Rome will offer </mark>' in page.text
    assert '<script src="/static/article.js" defer></script>' in page.text
    evil = client.get(f"/articles/{EVIL.id}", params={"start": 0, "end": 6}).text
    assert "<script>alert(1)</script>" not in evil and "<img src=x" not in evil
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in evil and "&lt;img src=x onerror=alert(2)&gt;" in evil
    assert "javascript:" not in evil
    # out-of-range spans are clamped or dropped, never an error
    assert client.get(f"/articles/{DONGFENG.id}", params={"start": 50, "end": 10_000}).status_code == 200
    assert 'id="highlight"' not in client.get(f"/articles/{DONGFENG.id}", params={"start": 9, "end": 3}).text
    assert client.get(f"/articles/{DONGFENG.id}", params={"start": -1}).status_code == 422


def test_chat_page_and_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<script src="/static/chat.js" defer></script>' in page.text
    assert "<option value=\"Bad\">Bad</option>" in page.text and 'id="question"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    assert client.get("/static/chat.js").status_code == 200
    assert client.get("/static/style.css").headers["content-security-policy"] == csp
    assert client.get("/api/index/status").headers["content-security-policy"] == csp
    assert "onclick" not in page.text and "<script>" not in page.text


def test_static_javascript_never_uses_inner_html():
    from server.api.app import STATIC_DIR

    for script in STATIC_DIR.glob("*.js"):
        source = script.read_text()
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source and "eval(" not in source, script


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["articles"] == 2 and ready["chunks"] == 3
    assert ready["built_at"] == "2024-05-01T00:00:00Z" and ready["llm"] == "fake-llm"
    assert "/api/ask" in client.get("/openapi.json").json()["paths"]


def test_api_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "cdn." not in page.text and "http" not in page.text.split("<body>")[0]
    script = re.search(r'src="([^"]+swagger-ui-bundle\.js)"', page.text).group(1)
    assert client.get(script).status_code == 200


def test_openai_non_streaming(client):
    response = client.post("/v1/chat/completions", json={"model": "byline", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "Who?"},
        {"role": "assistant", "content": "Dongfeng."}, {"role": "user", "content": "Why Italy?"}]})
    assert response.status_code == 200
    body = response.json()
    message = body["choices"][0]["message"]
    assert body["object"] == "chat.completion" and message["role"] == "assistant"
    assert message["content"] == "Dongfeng talks with Italy [1]." and message["citations"][0]["n"] == 1
    assert "draft" not in message
    assert body["usage"] == {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129}
    question, history, _, _ = client.answerer.calls[0]
    assert question == "Why Italy?"
    assert history == [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Dongfeng."}]
    assert client.answerer.options[0] == {"system": "be brief", "max_tokens": None, "temperature": None}


def test_openai_max_tokens_temperature_and_system_reach_the_answerer(client):
    messages = [{"role": "system", "content": "Answer in French."}, {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "Why?"}]
    client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 40, "temperature": 0.3})
    client.post("/v1/chat/completions", json={"messages": messages[2:], "max_completion_tokens": 25, "stream": True})
    assert client.answerer.options == [{"system": "Answer in French.\nBe brief.", "max_tokens": 40, "temperature": 0.3},
                                       {"system": None, "max_tokens": 25, "temperature": None}]
    for bad in ({"max_tokens": 0}, {"temperature": 3}, {"temperature": -1}):
        response = client.post("/v1/chat/completions", json={"messages": messages, **bad})
        assert response.status_code in (400, 422), bad
        assert next(iter(bad)) in response.text
    assert len(client.answerer.calls) == 2


def test_openai_unknown_model_is_openai_404(client):
    response = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Why?"}]})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "model" and error["code"] == "model_not_found"
    assert "gpt-4o" in error["message"] and "byline" in error["message"]
    assert client.answerer.calls == []


def test_openai_streaming_chunks_end_with_citations_and_done(client):
    body = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Why?"}], "stream": True}).text
    lines = [line[6:] for line in body.split("\n\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Dongfeng talks with Italy [1]."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"][0]["article_id"] == DONGFENG.id
    assert chunks[-1]["usage"]["total_tokens"] == 129 and "draft" not in chunks[-1]


def test_openai_rejects_bad_messages_and_lists_models(client):
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 422
    assert client.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "x"}]}).status_code == 422
    assert client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 3000}]}).status_code == 413
    assert client.get("/v1/models").json()["data"][0]["id"] == "byline"


def test_readyz_is_503_with_a_message_when_no_index_is_built():
    from index.errors import IndexNotBuilt

    class NoIndex(FakeSearcher):
        @property
        def store(self):
            raise IndexNotBuilt("no index in /tmp/x: run `byline index` first")

        @store.setter
        def store(self, value):
            pass

    app = create_app(Settings(), embedder=FakeEmbedder(), llm=SimpleNamespace(name="x"), searcher=NoIndex(), answerer=FakeAnswerer())
    with TestClient(app) as test_client:
        response = test_client.get("/readyz")
        assert response.status_code == 503 and "byline index" in response.json()["detail"]
        assert test_client.get("/healthz").status_code == 200


def test_serve_help_lists_byline_settings(capsys):
    from server.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    for name in ("BYLINE_ADMIN_TOKEN", "BYLINE_API_KEYS", "BYLINE_QUEUE_SIZE", "BYLINE_CORPUS_DIR", "--port", "--corpus"):
        assert name in text
