"""The admin page and endpoints over HTTP (fake embedder, real index): refusals without the token, login,
listing with search and paging, uploads (names kept inside the corpus), deletes, and a rebuild."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from index.build import build_index
from index.retrieve import Searcher
from server.api.app import create_app
from server.settings import Settings

TOKEN = "admin-secret"
NOTE = b"# Harrow bridge toll\n\nThe toll on the Harrow bridge will be seventeen euros for cars from June.\n"
ADMIN_ROUTES = [("GET", "/admin"), ("GET", "/api/admin/articles"), ("POST", "/api/admin/upload"),
                ("DELETE", "/api/admin/articles/0123456789abcdef/file")]


def make_app(corpus, tmp_path, embedder, **settings):
    build_index(corpus, tmp_path / "index", embedder)
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", **settings)
    return create_app(settings, embedder=embedder, llm=SimpleNamespace(name="fake"),
                      searcher=Searcher(tmp_path / "index", embedder), answerer=SimpleNamespace())


@pytest.fixture
def admin(three_articles, tmp_path, fake_embedder):
    with TestClient(make_app(three_articles, tmp_path, fake_embedder, admin_token=TOKEN)) as client:
        client.corpus = three_articles
        yield client


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
def test_without_an_admin_token_configured_everything_is_403(three_articles, tmp_path, fake_embedder, method, path):
    with TestClient(make_app(three_articles, tmp_path, fake_embedder)) as client:
        assert client.request(method, path, headers=bearer("anything")).status_code == 403


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
@pytest.mark.parametrize("headers", [{}, bearer("wrong"), bearer("reader-key")])
def test_without_the_token_page_and_endpoints_are_401(three_articles, tmp_path, fake_embedder, method, path, headers):
    app = make_app(three_articles, tmp_path, fake_embedder, admin_token=TOKEN, api_keys=["reader-key"])
    with TestClient(app) as client:
        response = client.request(method, path, headers=headers, files={"file": ("x.md", NOTE)} if method == "POST" else None)
        assert response.status_code == 401
        assert "Harrow" not in response.text and "Dongfeng" not in response.text
    assert sorted(p.name for p in three_articles.iterdir()) == ["dongfeng.md", "stellantis.md", "weather.txt"]


def test_a_browser_without_the_token_gets_the_login_form_then_the_page(admin):
    response = admin.get("/admin", headers={"Accept": "text/html"})
    assert response.status_code == 401 and 'id="login-form"' in response.text and 'value="/admin"' in response.text
    logged_in = admin.post("/login", data={"key": TOKEN, "next": "/admin"}, follow_redirects=False)
    assert logged_in.status_code == 303 and logged_in.headers["location"] == "/admin"
    page = admin.get("/admin")
    assert page.status_code == 200 and "Dongfeng in talks to build cars in Italy" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/admin.js" defer>']  # no inline script


def test_listing_shows_title_source_date_and_file_with_search_and_paging(admin):
    body = admin.get("/api/admin/articles", headers=bearer()).json()
    assert body["total"] == 3
    weather = next(a for a in body["articles"] if a["path"] == "weather.txt")
    assert weather["source"] == "corpus"  # no source of its own: the folder's name
    found = admin.get("/api/admin/articles", params={"q": "stellantis"}, headers=bearer()).json()
    assert [(a["title"], a["source"], a["published"], a["path"]) for a in found["articles"]] == [
        ("Stellantis warns about Chinese rivals", "Auto Daily", "2024-04-12", "stellantis.md")]
    second = admin.get("/api/admin/articles", params={"offset": 2, "limit": 2}, headers=bearer()).json()
    assert second["total"] == 3 and len(second["articles"]) == 1
    page = admin.get("/admin", params={"q": "italy"}, headers=bearer()).text
    assert "Dongfeng in talks" in page and "Stellantis warns" not in page and "1–1 of 1 article" in page


def test_upload_then_rebuild_indexes_it_and_delete_then_rebuild_removes_it(admin):
    saved = admin.post("/api/admin/upload", files={"file": ("harrow toll.md", NOTE)}, headers=bearer())
    assert saved.status_code == 201 and saved.json()["name"] == "harrow toll.md"
    assert admin.post("/api/index/rebuild", headers=bearer()).status_code == 202
    admin.app.state.rebuilder.wait(60)
    found = admin.get("/api/admin/articles", params={"q": "harrow"}, headers=bearer()).json()["articles"]
    assert [a["path"] for a in found] == ["harrow toll.md"]
    assert admin.get("/api/search", params={"q": "Harrow bridge toll"}).json()["hits"][0]["title"] == "Harrow bridge toll"

    deleted = admin.delete(f"/api/admin/articles/{found[0]['id']}/file", headers=bearer())
    assert deleted.json() == {"deleted": "harrow toll.md"} and not (admin.corpus / "harrow toll.md").exists()
    assert admin.delete(f"/api/admin/articles/{found[0]['id']}/file", headers=bearer()).status_code == 404
    admin.post("/api/index/rebuild", headers=bearer())
    status = admin.app.state.rebuilder.wait(60)
    assert status.last_summary["removed"] == 1
    assert admin.get("/api/admin/articles", params={"q": "harrow"}, headers=bearer()).json()["total"] == 0


@pytest.mark.parametrize(
    "name, data, status, detail",
    [("../../escape.md", NOTE, 400, "holds a path"), ("..%2fescape.md", NOTE, 400, "starts with a dot"),
     (".profile.md", NOTE, 400, "starts with a dot"), ("notes.xyz", NOTE, 400, "unsupported type .xyz"),
     ("bad.json", b"{oops", 400, "malformed JSON"), ("dongfeng.md", NOTE, 409, "already in the corpus folder")],
)
def test_bad_uploads_are_refused_and_nothing_escapes(admin, tmp_path, name, data, status, detail):
    response = admin.post("/api/admin/upload", files={"file": (name, data)}, headers=bearer())
    assert response.status_code == status and detail in response.json()["detail"]
    assert not (tmp_path / "escape.md").exists() and not (admin.corpus.parent / "escape.md").exists()
    assert sorted(p.name for p in admin.corpus.iterdir()) == ["dongfeng.md", "stellantis.md", "weather.txt"]
    assert "Dongfeng Motor Group" in (admin.corpus / "dongfeng.md").read_text()


def test_replace_must_be_asked_for(admin):
    response = admin.post("/api/admin/upload", params={"replace": "true"}, files={"file": ("dongfeng.md", NOTE)},
                          headers=bearer())
    assert response.status_code == 201 and response.json()["replaced"] is True
    assert (admin.corpus / "dongfeng.md").read_bytes() == NOTE


def test_upload_over_the_size_limit_is_413(three_articles, tmp_path, fake_embedder):
    app = make_app(three_articles, tmp_path, fake_embedder, admin_token=TOKEN, max_file_bytes=40)
    with TestClient(app) as client:
        response = client.post("/api/admin/upload", files={"file": ("big.md", NOTE)}, headers=bearer())
        assert response.status_code == 413 and "over the 40-byte limit" in response.json()["detail"]
    assert not (three_articles / "big.md").exists()


def test_admin_operations_conform_and_never_fail_under_fuzzing(three_articles, tmp_path, fake_embedder):
    import schemathesis

    from test_api_schema import fuzz

    app = make_app(three_articles, tmp_path, fake_embedder, admin_token=TOKEN)
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=bearer()).include(tag="admin")
        labels = fuzz(schema, 25, headers=bearer())
    assert set(labels) == {"GET /api/admin/articles", "POST /api/admin/upload", "DELETE /api/admin/articles/{article_id}/file"}
    # every upload landed directly in the corpus folder, and no staging folder was left behind
    assert all(p.parent == three_articles and p.is_file() for p in three_articles.rglob("*"))


def test_with_watch_an_upload_is_indexed_without_a_rebuild_request(three_articles, tmp_path, fake_embedder):
    import time

    app = make_app(three_articles, tmp_path, fake_embedder, admin_token=TOKEN, watch=True, watch_debounce_ms=100)
    with TestClient(app) as client:
        time.sleep(0.5)  # the watcher subscribes as the app starts
        assert client.post("/api/admin/upload", files={"file": ("harrow.md", NOTE)}, headers=bearer()).status_code == 201
        deadline = time.monotonic() + 60
        while client.get("/api/admin/articles", params={"q": "harrow"}, headers=bearer()).json()["total"] != 1:
            assert time.monotonic() < deadline, "the watch never indexed the upload"
            time.sleep(0.2)
        skipped = client.get("/api/index/status").json()["last_summary"]["skipped"]
        assert not any(".upload-" in s["path"] for s in skipped)  # the staging folder is gone before the build reads
