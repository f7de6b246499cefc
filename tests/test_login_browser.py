"""Logging in with a key in Chromium (scripted answers, no models): the chat page is the login form until a
key is posted, then the cookie carries the key for the page's own requests; logging out locks it again."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from server.api.app import create_app
from server.settings import Settings

from conftest import FakeEmbedder, require_chromium
from test_app import DONGFENG, FakeSearcher
from test_web_chat import ARGS, CHROMIUM, ScriptedAnswerer, ask

pytestmark = pytest.mark.browser

KEY = "browser-key"


@pytest.fixture(scope="module")
def base_url():
    require_chromium()
    import uvicorn

    app = create_app(Settings(api_keys=[KEY]), embedder=FakeEmbedder(), llm=SimpleNamespace(name="scripted"),
                     searcher=FakeSearcher(), answerer=ScriptedAnswerer())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser.new_page(viewport={"width": 1000, "height": 800})
        browser.close()


def test_login_with_a_key_then_chat_open_a_source_and_log_out(page, base_url):
    response = page.goto(base_url + "/")
    assert response.status == 401 and page.locator("#ask-form").count() == 0
    page.fill("#key", "wrong-key")
    page.click("#login")
    assert "not accepted" in page.locator("#login-message").inner_text()
    page.fill("#key", KEY)
    page.click("#login")
    page.wait_for_selector("#ask-form")
    assert page.url == base_url + "/"
    assert page.eval_on_selector_all("#sources option", "options => options.map(o => o.value)") == ["Bad", "Byline Wire"]
    cookie = next(c for c in page.context.cookies() if c["name"] == "byline_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and KEY not in cookie["value"]
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: the page's scripts never see it

    turn = ask(page, "Why is Dongfeng talking to Rome?")
    assert turn.get_attribute("data-state") == "done" and "Dongfeng is talking to Rome [1]." in turn.inner_text()
    turn.locator(".sources button.cite").first.click()
    page.locator("#panel-passage mark").wait_for()  # the full article came from /api/articles with the cookie
    assert DONGFENG.text[:20] in page.locator("#panel-passage").inner_text()

    page.click(".logout button")
    assert page.locator("#login-form").is_visible() and page.locator("#ask-form").count() == 0


def test_an_article_link_logs_in_and_comes_back_to_the_span(page, base_url):
    page.goto(f"{base_url}/articles/{DONGFENG.id}?start=33&end=49")
    page.fill("#key", KEY)
    page.click("#login")
    page.locator("mark#highlight").wait_for()
    assert page.locator("mark#highlight").inner_text() == "Rome will offer "


def test_a_long_conversation_sends_only_the_turns_the_api_takes(page, base_url):
    page.goto(base_url + "/")
    page.fill("#key", KEY)
    page.click("#login")
    page.wait_for_selector("#ask-form")
    answer = page.request.post(base_url + "/api/ask", data={"question": "Why?"}).json()  # the cookie rides along
    kept = [{"question": f"Question {i}?", "state": "done", "answer": answer} for i in range(30)]
    page.evaluate("kept => localStorage.setItem('byline.conversation', JSON.stringify(kept))", kept)
    page.reload()
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/api/ask") else None)
    turn = ask(page, "And what did Rome offer?")
    assert turn.get_attribute("data-state") == "done"
    assert len(sent[-1]["history"]) == 40 and sent[-1]["history"][-2]["content"] == "Question 29?"
