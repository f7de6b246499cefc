"""The chat page in Chromium against apps without real models: only checked text on screen while an answer
streams, sources numbered as the markers, the conversation kept across a reload until "New conversation",
Stop (which frees the model), copy with sources, the sticky question box, abstention, keyboard use, errors."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from index.errors import LLMUnavailable
from index.types import Hit
from server.answering.answer import Answerer
from server.api.app import create_app
from server.settings import Settings
from server.answering.types import Answer, Delta, Sentence

from conftest import FakeEmbedder, require_chromium, served
from test_app import DONGFENG, EVIL, XSS, FakeSearcher, citation
from test_channels import CHECKED, INVENTED, QUESTION, ArticleSearcher, RepeatingLLM

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path("/tmp/byline-screenshots")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
QUOTED = '"Rome said [2] it would offer sites within weeks." [3]'  # the article's own "[2]" is not a marker


class ScriptedAnswerer:
    """Answers by keyword: 'unknown' abstains (nearest includes the XSS article), 'long' writes many sentences,
    'fail' breaks after its first sentence; anything else cites passages 1 and 3 (not 2), with a quote that has
    an article-written "[2]" in it."""

    def stream(self, question, history=None, k=None, filters=None):
        if "unknown" in question:
            nearest = tuple(Hit(i, a.id, 0.1, a.text, 0, 6, a.title, a.source) for i, a in enumerate((DONGFENG, EVIL)))
            yield Answer(question=question, answer="", abstained=True, mode="abstained",
                         message="The archive has nothing on this.", nearest=nearest)
            return
        one, three = replace(citation(1), quote=DONGFENG.text[0:31]), citation(3, EVIL)
        sentences = [("Dongfeng is talking to Rome [1].", (one,)), (QUOTED, (three,))]
        if "long" in question:
            sentences += [(f"Detail number {i} of a long answer [1].", ()) for i in range(150)]
        for i, (text, new) in enumerate(sentences):
            time.sleep(0.05)
            yield Delta(("" if i == 0 else " ") + text, new)
            if "fail" in question:
                raise LLMUnavailable("the model crashed")
        answer = " ".join(text for text, _ in sentences)
        yield Answer(question=question, answer=answer, sentences=(Sentence("Dongfeng is talking to Rome.", (1,), True),),
                     citations=(one, three))


class SlowLLM(RepeatingLLM):
    """The scripted supported + invented reply, one word every 40 ms; records whether it was closed early."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.closed_early = 0

    def generate(self, prompt_or_messages, **limits):
        self.calls += 1
        try:
            for piece in super().generate(prompt_or_messages, **limits):
                time.sleep(0.04)
                yield piece
        except GeneratorExit:
            self.closed_early += 1
            raise


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def scripted_url():
    app = create_app(Settings(), embedder=FakeEmbedder(), llm=SimpleNamespace(name="scripted"),
                     searcher=FakeSearcher(), answerer=ScriptedAnswerer())
    with served(app) as url:
        yield url + "/"


@pytest.fixture(scope="module")
def checked():
    """The real Answerer over fakes with the slow scripted model (one supported, one invented sentence)."""
    settings = Settings(abstain_threshold=0.2)
    embedder, llm, searcher = FakeEmbedder(), SlowLLM(), ArticleSearcher()
    app = create_app(settings, embedder=embedder, llm=SimpleNamespace(name="scripted"), searcher=searcher,
                     answerer=Answerer(searcher, llm, embedder, settings))
    with served(app) as url:
        yield SimpleNamespace(url=url + "/", app=app, llm=llm)


def open_page(browser, url, **context_options):
    """A fresh context (so fresh localStorage) on the chat page; page.dialogs collects any alert()."""
    context = browser.new_context(viewport={"width": 1000, "height": 800}, **context_options)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    return page


def ask(page, question, states=("done", "abstained", "error", "stopped")):
    count = page.locator(".turn.assistant").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function(
        "([n, states]) => states.includes(document.querySelectorAll('.turn.assistant')[n]?.dataset.state)", arg=[count, list(states)]
    )
    return page.locator(".turn.assistant").nth(count)


WATCH = """() => {
  window.frames_seen = [];
  const record = () => window.frames_seen.push(document.getElementById("turns").textContent);
  new MutationObserver(record).observe(document.getElementById("turns"), {childList: true, subtree: true, characterData: true});
  window.frame_poll = setInterval(record, 20);
}"""


def test_no_frame_ever_shows_the_invented_sentence(browser, checked):
    page = open_page(browser, checked.url)
    page.evaluate(WATCH)
    turn = ask(page, QUESTION)
    frames = page.evaluate("() => { clearInterval(window.frame_poll); return window.frames_seen; }")
    final = turn.locator(".answer-text").text_content()
    assert len(frames) > 20 and CHECKED in final
    assert not [frame for frame in frames if INVENTED in frame or "for decades" in frame]
    assert INVENTED not in page.content()
    page.screenshot(path=str(SCREENSHOTS / "chat-checked.png"), full_page=True)
    page.context.close()


def stop_while_the_model_writes(page, llm) -> None:
    """Ask, and press Stop once the scripted model has begun writing."""
    started = llm.calls
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    page.locator("#stop").wait_for(state="visible")
    assert page.locator("#send").is_hidden()
    deadline = time.monotonic() + 10
    while llm.calls == started and time.monotonic() < deadline:
        time.sleep(0.01)
    page.wait_for_timeout(100)
    page.click("#stop")


def test_stop_cancels_the_answer_and_frees_the_model(browser, checked):
    page = open_page(browser, checked.url)
    stop_while_the_model_writes(page, checked.llm)
    turn = page.locator(".turn.assistant").first
    page.wait_for_function("() => document.querySelector('.turn.assistant').dataset.state === 'stopped'")
    assert "Stopped" in turn.inner_text() and INVENTED not in turn.inner_text()
    assert page.locator("#send").is_visible() and page.locator("#stop").is_hidden()
    gate = checked.app.state.gate
    deadline = time.monotonic() + 10
    while (gate.admitted or gate._turn.locked()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gate.admitted == 0 and not gate._turn.locked(), "the server should free the model when the browser stops"
    follow = ask(page, QUESTION)  # the model answers the next question
    assert follow.get_attribute("data-state") == "done" and CHECKED in follow.inner_text()
    page.reload()  # the stopped turn is kept too, marked stopped, and is not history for the next question
    assert [t.get_attribute("data-state") for t in page.locator(".turn.assistant").all()] == ["stopped", "done"]
    assert "Stopped" in page.locator(".turn.assistant").first.inner_text()
    page.context.close()


def test_stop_ends_the_generation_mid_answer(browser, checked):
    page = open_page(browser, checked.url)
    closed = checked.llm.closed_early
    stop_while_the_model_writes(page, checked.llm)
    page.wait_for_function("() => document.querySelector('.turn.assistant').dataset.state === 'stopped'")
    deadline = time.monotonic() + 5
    while checked.llm.closed_early == closed and time.monotonic() < deadline:
        time.sleep(0.05)
    page.context.close()
    assert checked.llm.closed_early == closed + 1, "the model should be stopped mid-answer, not left to finish"


def test_sources_are_numbered_as_the_markers_and_article_brackets_stay_text(browser, scripted_url):
    page = open_page(browser, scripted_url)
    turn = ask(page, "Why Dongfeng?")
    items = turn.locator(".sources li")
    assert [items.nth(i).inner_text().split()[0] for i in range(items.count())] == ["[1]", "[3]"]
    assert items.evaluate_all("lis => lis.map(li => [li.value, getComputedStyle(li).listStyleType])") == [[1, "none"], [3, "none"]]
    answer = turn.locator(".answer-text")
    assert [b.inner_text() for b in answer.locator("button.cite").all()] == ["[1]", "[3]"]
    assert "Rome said [2] it would offer sites" in answer.text_content()  # the article's "[2]" is text, not a button
    page.context.close()


def test_conversation_survives_a_reload_until_new_conversation(browser, scripted_url):
    page = open_page(browser, scripted_url)
    ask(page, "Why Dongfeng?")
    ask(page, "something unknown")
    page.reload()
    turns = page.locator(".turn.assistant")
    assert turns.count() == 2 and [t.get_attribute("data-state") for t in turns.all()] == ["done", "abstained"]
    assert page.locator(".turn.user").first.inner_text() == "Why Dongfeng?"
    turns.first.locator(".answer-text button.cite").first.click()  # the restored markers still open their sources
    page.locator("#panel-passage mark").wait_for()
    page.keyboard.press("Escape")
    with page.expect_request("**/api/ask") as sent:
        ask(page, "And then?")
    history = sent.value.post_data_json["history"]
    assert history[0] == {"role": "user", "content": "Why Dongfeng?"} and history[1]["content"].startswith("Dongfeng is talking")
    assert len(history) == 2  # the abstention is not history
    page.click("#clear")
    assert page.locator(".turn").count() == 0
    page.reload()
    assert page.locator(".turn").count() == 0 and page.evaluate("() => localStorage.length") == 0
    page.context.close()


def test_copy_puts_the_answer_and_its_sources_on_the_clipboard(browser, scripted_url):
    page = open_page(browser, scripted_url, permissions=["clipboard-read", "clipboard-write"])
    turn = ask(page, "Why Dongfeng?")
    turn.locator("button.copy").click()
    page.wait_for_function("() => document.querySelector('button.copy').textContent === 'Copied'")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    lines = copied.splitlines()
    assert lines[0] == f"Dongfeng is talking to Rome [1]. {QUOTED}"
    assert lines[2] == "Sources:"
    assert lines[3] == f"[1] {DONGFENG.title} ({DONGFENG.source}, {DONGFENG.published}) {DONGFENG.url}"
    assert lines[4].strip() == f'"{DONGFENG.text[0:31]}"'
    assert lines[5].startswith(f"[3] Evil {XSS}") and "javascript:" not in copied
    page.context.close()


def test_question_box_stays_in_view_past_a_long_answer(browser, scripted_url):
    page = open_page(browser, scripted_url)
    ask(page, "a long answer please")
    page.screenshot(path=str(SCREENSHOTS / "chat-long.png"), full_page=True)
    height = page.viewport_size["height"]
    assert page.evaluate("() => document.documentElement.scrollHeight") > 2 * height
    for y in (0, 1000, 100_000):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        box = page.locator("#question").bounding_box()
        assert 0 <= box["y"] and box["y"] + box["height"] <= height, (y, box)
    page.locator("#question").click()  # reachable: nothing covers it
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "chat-long-top.png"))
    page.context.close()


def test_the_unchecked_draft_shows_apart_and_labelled_only_when_enabled(browser):
    settings = Settings(abstain_threshold=0.2, show_draft=True)
    embedder, searcher = FakeEmbedder(), ArticleSearcher()
    answerer = Answerer(searcher, RepeatingLLM(), embedder, settings)
    app = create_app(settings, embedder=embedder, llm=SimpleNamespace(name="scripted"), searcher=searcher, answerer=answerer)
    with served(app) as url:
        page = open_page(browser, url + "/")
        turn = ask(page, QUESTION)
        draft = turn.locator("details.draft")
        assert "Unchecked draft" in draft.locator("summary").inner_text()
        assert draft.get_attribute("open") is None and INVENTED in draft.text_content()
        assert INVENTED not in turn.locator(".answer-text").text_content()
        page.context.close()


def test_a_failure_mid_answer_keeps_the_checked_text_and_says_what_failed(browser, scripted_url):
    page = open_page(browser, scripted_url)
    turn = ask(page, "this will fail")
    assert turn.get_attribute("data-state") == "error"
    assert turn.locator(".answer-text").text_content() == "Dongfeng is talking to Rome [1]."
    assert "the model crashed" in turn.locator(".note.error").inner_text()
    page.context.close()


def test_favicon_is_linked_and_served(browser, scripted_url):
    page = open_page(browser, scripted_url)
    href = page.locator("link[rel=icon]").get_attribute("href")
    response = page.request.get(scripted_url.rstrip("/") + href)
    assert response.ok and response.headers["content-type"].startswith("image/svg+xml") and b"<svg" in response.body()
    page.context.close()


def test_abstention_shows_a_note_and_the_nearest_articles_as_text(browser, scripted_url):
    page = open_page(browser, scripted_url)
    turn = ask(page, "something unknown")
    assert turn.get_attribute("data-state") == "abstained"
    note = turn.locator(".note.abstained")
    assert "No answer from the archive." in note.inner_text() and "nothing on this" in note.inner_text()
    links = turn.locator(".nearest a")
    assert links.count() == 2 and links.nth(0).get_attribute("href") == f"/articles/{DONGFENG.id}?start=0&end=6"
    assert "<script>alert(1)</script>" in links.nth(1).inner_text()
    assert page.locator("#turns script, #turns img").count() == 0
    page.context.close()


def test_keyboard_opens_and_closes_sources_and_markup_stays_text(browser, scripted_url):
    page = open_page(browser, scripted_url)
    turn = ask(page, "Why Dongfeng?")
    cite = turn.locator(".answer-text button.cite").first
    cite.focus()
    page.keyboard.press("Enter")
    page.locator("#panel").wait_for(state="visible")
    page.locator("#panel-passage mark").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "panel-close"
    assert page.locator("#panel-passage mark").inner_text() == DONGFENG.text[0:31]
    page.keyboard.press("Escape")
    page.locator("#panel").wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.classList.contains('cite')")
    turn.locator(".sources button.cite").nth(1).click()
    page.locator("#panel-passage mark").wait_for()
    assert XSS in page.locator("#panel-passage").inner_text() and XSS in page.locator("#panel-title").inner_text()
    assert page.locator("#panel-url").is_hidden()  # a javascript: URL is never linked
    assert page.locator("#panel script, #panel img").count() == 0 and page.dialogs == []
    page.screenshot(path=str(SCREENSHOTS / "chat-scripted-panel.png"), full_page=True)
    page.context.close()


def test_question_limit_and_new_conversation(browser, scripted_url):
    page = open_page(browser, scripted_url)
    page.fill("#question", "x" * 2001)  # maxlength stops typing past the limit
    assert len(page.input_value("#question")) == 2000
    page.click("#clear")
    assert page.locator(".turn").count() == 0
    page.context.close()
