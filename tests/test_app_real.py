"""The JSON API of a real `byline serve` (real models, index of a corpus copy built in tmp)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def http(live_server):
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    with httpx.Client(base_url=live_server.base_url, headers=headers, timeout=180) as client:
        yield client


def test_ready_search_and_article(http):
    ready = http.get("/readyz").json()
    assert ready["ready"] and ready["articles"] >= 20 and ready["chunks"] >= ready["articles"] and ready["built_at"]
    hits = http.get("/api/search", params={"q": "Dongfeng Italy plant", "k": 3}).json()["hits"]
    assert hits and "Dongfeng" in hits[0]["text"]
    article = http.get(f"/api/articles/{hits[0]['article_id']}").json()
    assert article["text"][hits[0]["start"]:hits[0]["end"]] == hits[0]["text"]


@pytest.mark.parametrize("path", ["/articles/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/api/articles/..%2f..%2fetc%2fpasswd",
                                  "/api/articles/%2e%2e", "/articles/..%5c..%5cwin.ini", "/api/articles/0000000000000000"])
def test_path_like_ids_are_404_on_the_wire(http, path):
    assert http.get(path).status_code == 404


def test_ask_json_and_sse_order(http):
    body = http.post("/api/ask", json={"question": "Why is Italy courting Dongfeng?", "k": 5}).json()
    assert body["answer"] and body["citations"] and body["citations"][0]["span_start"] < body["citations"][0]["span_end"]
    events = []
    with http.stream("POST", "/api/ask", json={"question": "Why is Italy courting Dongfeng?", "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append([line[7:]])
            elif line.startswith("data: "):
                events[-1].append(json.loads(line[6:]))
    names = [name for name, _ in events]
    assert names[0] == "delta" and names[-2:] == ["citations", "final"] and set(names[:-2]) == {"delta"}
    # the deltas are the checked answer, piece by piece, each bringing the citations it first refers to
    final = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "delta") == final["answer"]
    assert sorted(c["n"] for name, data in events if name == "delta" for c in data["citations"]) == sorted(c["n"] for c in final["citations"])
    assert final["usage"]["prompt_tokens"] > 0 and final["usage"]["completion_tokens"] > 0


def test_disconnect_mid_stream_frees_the_model(http):
    with http.stream("POST", "/api/ask", json={"question": "Why does Dongfeng want Italy?", "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("event: delta"):
                break  # leave mid-answer: closing the response drops the connection
    started = time.monotonic()
    answer = http.post("/api/ask", json={"question": "What did Stellantis say?"})
    assert answer.status_code == 200
    assert time.monotonic() - started < 120


def test_rebuild_swaps_in_an_edit(http, live_server):
    article = live_server.corpus / "science" / "new-beetle-species.md"
    article.write_text(article.read_text() + "\nThe students nicknamed the beetle Little Emerald Tank.\n")
    assert http.post("/api/index/rebuild").status_code == 401  # an API key is not the admin token
    started = http.post("/api/index/rebuild", headers={"Authorization": f"Bearer {live_server.admin_token}"})
    assert started.status_code == 202
    deadline = time.monotonic() + 120
    while (status := http.get("/api/index/status").json())["running"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert status["last_error"] is None and status["last_summary"]["changed"] == 1, status
    hits = http.get("/api/search", params={"q": "beetle nickname Little Emerald Tank", "k": 3}).json()["hits"]
    assert any("Little Emerald Tank" in hit["text"] for hit in hits)
