"""The chat page's rendering in Chromium against an app with scripted answers (no models):
abstention note with nearest articles, unsupported-sentence marking, keyboard use, errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from index.types import Hit
from server.api.app import create_app
from server.settings import Settings
from server.answering.types import Answer, Delta, Sentence

from conftest import FakeEmbedder, require_chromium
from test_app import DONGFENG, EVIL, XSS, FakeSearcher, citation

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


class ScriptedAnswerer:
    """Answers by keyword: 'unknown' abstains (nearest includes the XSS article), 'mixed' has an
    unsupported sentence; anything else is a cited answer."""

    def stream(self, question, history=None, k=None, filters=None):
        if "unknown" in question:
            nearest = tuple(Hit(i, a.id, 0.1, a.text, 0, 6, a.title, a.source) for i, a in enumerate((DONGFENG, EVIL)))
            yield Answer(question=question, answer="", abstained=True, mode="abstained",
                         message="The archive has nothing on this.", nearest=nearest)
            return
        for piece in ("Dongfeng ", "is ", "talking ", "to ", "Rome."):
            time.sleep(0.05)
            yield Delta(piece)
        sentences = (Sentence("Dongfeng is talking to Rome.", (1,), True, 0.9),)
        if "mixed" in question:
            sentences += (Sentence(f"It will build {XSS} cars.", (), False, 0.0),)
        yield Answer(question=question, answer=" ".join(s.text for s in sentences), sentences=sentences,
                     citations=(citation(1), citation(2, EVIL)))


@pytest.fixture(scope="module")
def page_url():
    require_chromium()
    import uvicorn

    app = create_app(Settings(), embedder=FakeEmbedder(), llm=SimpleNamespace(name="scripted"),
                     searcher=FakeSearcher(), answerer=ScriptedAnswerer())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(page_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(page_url)
        yield page
        browser.close()


def ask(page, question):
    count = page.locator(".turn.assistant").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    turn = page.locator(".turn.assistant").nth(count)
    page.wait_for_function(
        "n => ['done', 'abstained', 'error'].includes(document.querySelectorAll('.turn.assistant')[n]?.dataset.state)", arg=count
    )
    return turn


def test_abstention_shows_a_note_and_the_nearest_articles_as_text(page):
    turn = ask(page, "something unknown")
    assert turn.get_attribute("data-state") == "abstained"
    note = turn.locator(".note.abstained")
    assert "No answer from the archive." in note.inner_text() and "nothing on this" in note.inner_text()
    links = turn.locator(".nearest a")
    assert links.count() == 2 and links.nth(0).get_attribute("href") == f"/articles/{DONGFENG.id}?start=0&end=6"
    assert "<script>alert(1)</script>" in links.nth(1).inner_text()
    assert page.locator("#turns script, #turns img").count() == 0


def test_unsupported_sentence_is_marked_and_keyboard_opens_and_closes_sources(page):
    turn = ask(page, "mixed answer please")
    bad = turn.locator(".sentence.unsupported")
    assert bad.count() == 1 and "unsupported" in bad.locator(".badge").inner_text()
    assert XSS in bad.inner_text()
    assert "1 sentence marked “unsupported” is not backed" in turn.locator(".unsupported-note").inner_text()
    cite = turn.locator(".sentence button.cite").first
    cite.focus()
    page.keyboard.press("Enter")
    page.locator("#panel").wait_for(state="visible")
    page.locator("#panel-passage mark").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "panel-close"
    assert page.locator("#panel-passage mark").inner_text() == DONGFENG.text[0:31]
    page.keyboard.press("Escape")
    page.locator("#panel").wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.classList.contains('cite')")
    evil_cite = turn.locator(".sources button.cite").nth(1)
    evil_cite.click()
    page.locator("#panel-passage mark").wait_for()
    assert XSS in page.locator("#panel-passage").inner_text() and XSS in page.locator("#panel-title").inner_text()
    assert page.locator("#panel-url").is_hidden()  # a javascript: URL is never linked
    assert page.locator("#panel script, #panel img").count() == 0 and page.dialogs == []
    page.click("details.filters summary")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-scripted.png"), full_page=True)
    page.click("details.filters summary")


def test_errors_and_new_conversation(page):
    page.fill("#question", "x" * 2001)  # maxlength stops typing past the limit
    assert len(page.input_value("#question")) == 2000
    page.click("#clear")
    assert page.locator(".turn").count() == 0
