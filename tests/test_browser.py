"""Debian's Chromium (headless, via Playwright) against a real `byline serve`: streaming, citations,
follow-ups, untrusted markup shown as text, phone-sized layout. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from conftest import require_chromium

pytestmark = [pytest.mark.real, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
QUESTION = "Why is Italy courting Dongfeng?"


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def open_chat(browser, live_server, **context_options):
    """A chat page after logging in with the API key; returns (page, dialogs seen, /api/ask payloads sent)."""
    page = browser.new_context(**context_options).new_page()
    dialogs, asked = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda r: asked.append(json.loads(r.post_data)) if r.url.endswith("/api/ask") else None)
    page.goto(live_server.base_url + "/")
    page.fill("#key", live_server.api_key)
    page.click("#login")
    page.wait_for_selector("#ask-form")
    return page, dialogs, asked


WATCH = """n => {
  window.frames_seen = [];
  const record = () => {
    const text = document.querySelectorAll(".turn.assistant")[n]?.querySelector(".answer-text");
    if (text) window.frames_seen.push(text.textContent);
  };
  window.frame_watch = new MutationObserver(record);
  window.frame_watch.observe(document.getElementById("turns"), {childList: true, subtree: true, characterData: true});
  window.frame_poll = setInterval(record, 20);
}"""


def ask(page, question: str) -> tuple[object, list[str]]:
    """Type a question, press Enter, and record every state of the answer's text (on each DOM change and every
    20 ms) until the answer is done; returns the turn and those states."""
    before = page.locator(".turn.assistant").count()
    page.evaluate(WATCH, before)
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function(
        "n => ['done', 'abstained', 'error'].includes(document.querySelectorAll('.turn.assistant')[n]?.dataset.state)",
        arg=before, timeout=180_000,
    )
    frames = page.evaluate("() => { clearInterval(window.frame_poll); window.frame_watch.disconnect(); return window.frames_seen; }")
    turn = page.locator(".turn.assistant").nth(before)
    assert turn.get_attribute("data-state") in ("done", "abstained"), turn.inner_text()
    return turn, frames


def test_chat_streams_cites_follows_up_and_keeps_markup_inert(browser, live_server):
    page, dialogs, asked = open_chat(browser, live_server, viewport={"width": 1280, "height": 900})
    csp = page.evaluate("() => document.querySelector('meta[http-equiv]')")  # none: the CSP comes as a header
    assert csp is None

    turn, frames = ask(page, QUESTION)
    assert turn.get_attribute("data-state") == "done"
    final = turn.locator(".answer-text").text_content()
    # Only checked text is ever on screen: every state the answer went through is the start of the final,
    # checked answer (the model's raw text would show as text the final answer doesn't begin with).
    assert final.strip() and frames, frames
    strays = [frame for frame in frames if not final.startswith(frame)]
    assert not strays, f"text shown while streaming that is not in the checked answer: {strays[:3]}"
    first = turn.locator("button.cite").first
    first.click()
    panel = page.locator("#panel")
    panel.wait_for(state="visible")
    mark = page.locator("#panel-passage mark")
    mark.wait_for()
    assert len(mark.text_content().strip()) > 10
    marker = first.inner_text()
    listed = turn.locator(".sources li").filter(has=page.locator(f"button.cite:text-is('{marker}')")).locator(".source-title")
    assert page.locator("#panel-title").text_content() == f"{marker} {listed.text_content().strip()}"
    assert page.locator("#panel-local").get_attribute("href").startswith("/articles/")
    assert page.locator("#panel-url").get_attribute("href").startswith("https://")
    page.screenshot(path=str(ARTIFACTS / "chat-citation.png"), full_page=True)
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")

    follow_up, _ = ask(page, "What did Stellantis say about it?")
    assert asked[-1]["history"][0] == {"role": "user", "content": QUESTION}
    assert asked[-1]["history"][1]["role"] == "assistant" and asked[-1]["history"][1]["content"]
    assert follow_up.inner_text().strip()
    page.screenshot(path=str(ARTIFACTS / "chat-follow-up.png"), full_page=True)

    evil, _ = ask(page, "What happened to the Kestrel Bay ferry forum?")
    text = evil.inner_text()
    assert "<script>alert(1)</script>" in text, "the XSS article's title should show, as text, among the sources"
    for button in evil.locator("button.cite").all():
        if "Ferry forum" in (button.get_attribute("aria-label") or ""):
            button.click()
            page.locator("#panel-passage mark").wait_for()
            break
    assert page.locator("#turns script, #turns img, #panel script, #panel img").count() == 0
    page.screenshot(path=str(ARTIFACTS / "chat-xss.png"), full_page=True)
    assert dialogs == []


def test_article_view_highlights_span_and_shows_markup_as_text(browser, live_server):
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    hits = httpx.get(f"{live_server.base_url}/api/search", params={"q": "Kestrel Bay ferry forum defaced"}, headers=headers).json()["hits"]
    hit = next(h for h in hits if "Ferry forum" in h["title"])
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server.base_url}/articles/{hit['article_id']}?start={hit['start']}&end={hit['end']}")
    page.fill("#key", live_server.api_key)  # the login form, which then comes back to this article and span
    page.click("#login")
    body = page.locator("#article-text").inner_text()
    assert "<script>alert(1)</script>" in body and "<img src=x onerror=alert(2)>" in body
    assert "<script>alert(1)</script>" in page.locator("h1").inner_text()
    assert page.locator("main script, main img").count() == 0
    assert page.locator("mark#highlight").is_visible()
    page.screenshot(path=str(ARTIFACTS / "article-xss.png"), full_page=True)
    page.wait_for_timeout(300)
    assert dialogs == []


def test_phone_sized_chat_and_long_article_scrolls_to_span(browser, live_server):
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    page, dialogs, _ = open_chat(browser, live_server, **phone)
    turn, _ = ask(page, QUESTION)
    turn.locator("button.cite").first.click()
    page.locator("#panel-passage mark").wait_for()
    box = page.locator("#panel").bounding_box()
    assert box["width"] <= 390 and box["x"] >= 0, box
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "phone-citation.png"))
    page.locator("#panel-local").click()
    page.wait_for_url("**/articles/**")
    page.locator("mark#highlight").wait_for()
    assert page.locator("mark#highlight").is_visible() and page.locator("mark#highlight").text_content().strip()
    assert page.evaluate("() => document.activeElement.id") == "highlight"
    page.screenshot(path=str(ARTIFACTS / "phone-article.png"))
    assert dialogs == []
