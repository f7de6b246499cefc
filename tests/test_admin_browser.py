"""The admin page in Chromium, on a real uvicorn with the real embedder and index (the LLM's text is scripted):
log in with the admin token, upload a PDF, rebuild and watch it finish, see the article listed and cited in an
answer, delete its file, rebuild, and see it gone. Without the token the page and its endpoints refuse."""

from __future__ import annotations

import re

import pytest

from conftest import ScriptedLLM, require_chromium, served
from format_files import PDF_ARTICLE, write_pdf
from test_web_chat import ARGS, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.real]

TOKEN = "admin-browser-token"
QUESTION = "How many homes will the Lumbridge tidal barrage power?"
REPLY = "The Lumbridge barrage is expected to power eight thousand homes from 2027 [1]."


@pytest.fixture(scope="module")
def site(tmp_path_factory, real_embedder):
    """A served app over a three-article corpus, and a PDF ready to upload."""
    from conftest import THREE_ARTICLES
    from index.build import build_index
    from index.retrieve import Searcher
    from server.answering.answer import Answerer
    from server.api.app import create_app
    from server.settings import Settings

    require_chromium()
    root = tmp_path_factory.mktemp("admin-browser")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in THREE_ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=root / "index", admin_token=TOKEN)
    build_index(corpus, settings.index_dir, real_embedder, settings.chunk_settings())
    searcher = Searcher(settings.index_dir, real_embedder, settings.chunk_settings())
    llm = ScriptedLLM(*[REPLY] * 10)
    app = create_app(settings, embedder=real_embedder, llm=llm, searcher=searcher,
                     answerer=Answerer(searcher, llm, real_embedder, settings))
    with served(app) as base_url:
        yield base_url, corpus, write_pdf(root / "barrage.pdf")


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser.new_page(viewport={"width": 1100, "height": 900})
        browser.close()


def fetch_status(page, method: str, path: str) -> int:
    """The HTTP status the page's own fetch gets (with whatever cookie the browser holds)."""
    return page.evaluate("async ([m, p]) => (await fetch(p, {method: m})).status", [method, path])


def cited_titles(page) -> list[str]:
    """The titles the answer to QUESTION cites, asked through the page's own fetch."""
    script = """async (q) => (await (await fetch('/api/ask', {method: 'POST', headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({question: q})})).json()).citations.map(c => c.title)"""
    return page.evaluate(script, QUESTION)


def rebuild_and_wait(page) -> str:
    """Click Rebuild now and wait for the live status to say it is done; the summary's first line."""
    page.click("#rebuild")
    page.wait_for_function("() => /Last rebuild done/.test(document.getElementById('rebuild-status').textContent)",
                           timeout=180_000)
    return page.locator("#summary-list li").first.inner_text()


def test_without_the_token_the_page_and_its_endpoints_refuse(page, site):
    base_url, corpus, _ = site
    response = page.goto(base_url + "/admin")
    assert response.status == 401 and page.locator("#login-form").is_visible() and page.locator("#articles").count() == 0
    for method, path in [("GET", "/api/admin/articles"), ("POST", "/api/admin/upload"), ("POST", "/api/index/rebuild"),
                         ("DELETE", "/api/admin/articles/0123456789abcdef/file")]:
        assert fetch_status(page, method, path) == 401, path
    page.fill("#key", "not-the-token")
    page.click("#login")
    assert "not accepted" in page.locator("#login-message").inner_text()
    assert sorted(p.name for p in corpus.iterdir()) == ["dongfeng.md", "stellantis.md", "weather.txt"]


def test_upload_rebuild_answer_delete_and_gone(page, site):
    base_url, corpus, pdf = site
    page.goto(base_url + "/admin")
    page.fill("#key", TOKEN)
    page.click("#login")
    page.wait_for_selector("#articles")
    errors: list[str] = []  # from here on, logged in: no request of the page may fail
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    assert page.url == base_url + "/admin"
    assert page.locator("#articles tbody tr").count() == 3

    page.set_input_files("#upload-files", str(pdf))
    page.click("#upload")
    page.wait_for_selector("#upload-results li")
    assert page.locator("#upload-results li").inner_text() == "barrage.pdf: saved, 1 article(s)"
    assert (corpus / "barrage.pdf").read_bytes() == pdf.read_bytes()

    assert rebuild_and_wait(page).startswith("added 1, changed 0, unchanged 3, removed 0")
    row = page.locator("#articles tbody tr", has_text=PDF_ARTICLE[0])
    row.wait_for()
    assert re.sub(r"\s+", " ", row.inner_text()).startswith(f"{PDF_ARTICLE[0]} corpus 2024-03-18 barrage.pdf")
    assert PDF_ARTICLE[0] in cited_titles(page)

    page.fill("#q", "lumbridge")
    page.click("#search-form button")
    page.wait_for_url("**/admin?q=lumbridge")
    assert page.locator("#articles tbody tr").count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#articles button.delete")
    page.wait_for_selector("#articles tr.deleted")
    assert not (corpus / "barrage.pdf").exists()

    assert rebuild_and_wait(page).startswith("added 0, changed 0, unchanged 3, removed 1")
    page.wait_for_function("() => document.querySelectorAll('#articles tbody tr').length === 0")
    assert page.locator("#article-count").inner_text() == "No articles."
    assert PDF_ARTICLE[0] not in cited_titles(page)
    assert errors == []
