"""Keys and the login cookie (server/api/auth.py) with fakes: with BYLINE_API_KEYS set every route but
/healthz and /static/ answers 401 without a key (the login form's POST too, unless it posts a right one);
a key in a header or the cookie opens them."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.routing import iter_route_contexts

from server.api.auth import SESSION_COOKIE, session_matches, sign_session
from test_app import DONGFENG, client, make_client  # noqa: F401 - client is a fixture

KEYS = ["k1", "k2"]


def every_request(app) -> list[tuple[str, str]]:
    """(method, path) for every method of every route of the app, path parameters filled with a real article id."""
    requests = []
    for route in iter_route_contexts(app.routes):
        path = re.sub(r"\{[^}]+\}", DONGFENG.id, route.path)
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        if route.methods is None:  # a mount: ask for a file inside it
            path += "/swagger-ui.css" if "docs" in path else "/chat.js"
        requests += [(method, path) for method in methods]
    return requests


@pytest.fixture
def locked():
    test_client, _, _ = make_client(api_keys=KEYS, admin_token="admin-secret")
    with test_client:
        yield test_client


def test_every_route_but_healthz_login_and_static_is_401_without_a_key(locked):
    requests = every_request(locked.app)
    paths = {path for _, path in requests}
    assert {"/", "/readyz", "/docs", "/openapi.json", f"/articles/{DONGFENG.id}", "/api/ask", "/v1/models"} <= paths
    for method, path in requests:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "k3"}, {"Accept": "text/html"}):
            response = locked.request(method, path, headers=headers)
            if path == "/healthz":
                assert response.status_code == 200
            elif path.startswith("/static/"):
                assert response.status_code == 200, "the app's own script and style files stay open"
            else:
                assert response.status_code == 401, (method, path, headers, response.status_code)
                assert DONGFENG.text not in response.text and "fake-llm" not in response.text and "Byline Wire" not in response.text
    refused = locked.get("/readyz")
    assert refused.json()["error"] == "Unauthorized" and "BYLINE_API_KEYS" in refused.json()["detail"]
    assert refused.headers["www-authenticate"] == "Bearer"


def test_a_key_in_a_header_opens_every_route(locked):
    for key_header in ({"Authorization": "Bearer k2"}, {"X-API-Key": "k1"}, {"Authorization": "bearer admin-secret"}):
        assert locked.get("/readyz", headers=key_header).json()["articles"] == 2
        assert locked.get(f"/articles/{DONGFENG.id}", headers=key_header).status_code == 200
        assert locked.get("/api/search", params={"q": "Dongfeng"}, headers=key_header).status_code == 200
        assert locked.post("/api/ask", json={"question": "Why?"}, headers=key_header).status_code == 200
        assert locked.get("/openapi.json", headers=key_header).status_code == 200


def test_a_page_without_a_key_is_the_login_form_which_sets_a_signed_cookie_and_goes_back():
    test_client, _, _ = make_client(api_keys=KEYS)
    with test_client:
        page = test_client.get(f"/articles/{DONGFENG.id}?start=0&end=8", headers={"Accept": "text/html"})
        assert page.status_code == 401 and 'id="login-form"' in page.text and DONGFENG.text not in page.text
        assert f'name="next" value="/articles/{DONGFENG.id}?start=0&amp;end=8"' in page.text
        wrong = test_client.post("/login", data={"key": "nope", "next": "/"})
        assert wrong.status_code == 401 and "not accepted" in wrong.text and SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
        assert test_client.post("/login").status_code == 401  # no form at all
        done = test_client.post("/login", data={"key": "k2", "next": f"/articles/{DONGFENG.id}"}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == f"/articles/{DONGFENG.id}"
        cookie = done.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie and "Max-Age=43200" in cookie
        assert "Secure" not in cookie and "k2" not in cookie.split(";")[0]
        # the client keeps the cookie: pages, the API and /readyz now open
        assert DONGFENG.text in test_client.get(f"/articles/{DONGFENG.id}").text
        assert test_client.get("/").status_code == 200 and 'id="ask-form"' in test_client.get("/").text
        assert test_client.post("/api/ask", json={"question": "Why?"}).status_code == 200
        assert test_client.get("/readyz").json()["ready"] is True
        assert test_client.post("/logout", follow_redirects=False).status_code == 303
        test_client.cookies.clear()
        assert test_client.get("/readyz").status_code == 401


def test_cookie_is_secure_over_https_and_login_never_redirects_off_site():
    test_client, _, _ = make_client(api_keys=KEYS)
    test_client.base_url = "https://testserver"
    with test_client:
        for target, expected in [("https://evil.example/", "/"), ("//evil.example", "/"), ("/\\evil.example", "/"), ("/a?b=1", "/a?b=1")]:
            done = test_client.post("/login", data={"key": "k1", "next": target}, follow_redirects=False)
            assert done.headers["location"] == expected
            assert "Secure" in done.headers["set-cookie"]


@pytest.mark.parametrize("cookie", [
    sign_session("k3", int(time.time()) + 3600),                 # signed with a key the server does not take
    sign_session("k1", int(time.time()) - 1),                    # expired
    re.sub(".$", lambda m: "1" if m[0] == "0" else "0", sign_session("k1", int(time.time()) + 3600)),  # tampered
    "9999999999.", "12a.abc", "x" * 10_000, "",
])
def test_forged_expired_or_garbled_cookies_are_refused(cookie):
    test_client, _, _ = make_client(api_keys=KEYS)
    with test_client:
        test_client.cookies.set(SESSION_COOKIE, cookie)
        assert test_client.get("/readyz").status_code == 401
    assert not session_matches("²³.abc", KEYS, now=0)  # non-ASCII digits, as a latin-1 cookie header could carry


def test_a_session_dies_with_its_key():
    cookie = sign_session("k1", int(time.time()) + 3600)
    for keys, status in ((["k1"], 200), (["k2"], 401)):
        test_client, _, _ = make_client(api_keys=keys)
        with test_client:
            test_client.cookies.set(SESSION_COOKIE, cookie)
            assert test_client.get("/readyz").status_code == status


def test_admin_actions_take_the_admin_token_from_a_header_or_its_session_only(tmp_path):
    test_client, _, _ = make_client(api_keys=KEYS, admin_token="admin-secret", corpus_dir=tmp_path)
    with test_client:
        test_client.app.state.rebuilder.build = lambda *args, **kwargs: pytest.fail("no build expected")
        test_client.cookies.set(SESSION_COOKIE, sign_session("k1", int(time.time()) + 60))
        refused = test_client.post("/api/index/rebuild")
        assert refused.status_code == 401 and "admin token" in refused.json()["detail"]
        page = test_client.post("/api/index/rebuild", headers={"Accept": "text/html"})
        assert page.status_code == 401


def test_without_keys_everything_is_open(client):
    assert client.get("/readyz").status_code == 200 and client.get("/").status_code == 200
    assert client.get(f"/articles/{DONGFENG.id}").status_code == 200
    assert client.post("/login", data={"key": "anything"}).status_code == 401  # nothing to log in to
