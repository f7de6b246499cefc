"""Watching the corpus folder: debounced batches of changes, rebuilds through the server's Rebuilder, and the CLI."""

from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from index.build import build_index
from index.retrieve import Searcher
from index.watch import corpus_changes, is_corpus_change
from server.api.app import create_app
from server.settings import Settings

DEADLINE_S = 60  # generous bound for a slow shared machine; never a timing assertion


def wait_for(check, what: str, deadline_s: float = DEADLINE_S):
    """Poll `check()` until it returns something truthy, or fail naming `what`."""
    ends = time.monotonic() + deadline_s
    while time.monotonic() < ends:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def batches(three_articles, tmp_path):
    """Batches of changed paths from a watch on the three-article corpus, collected by a background thread."""
    stop = threading.Event()
    found: queue.Queue = queue.Queue()
    index_dir = three_articles / "index"  # an index inside the corpus must not trigger itself
    index_dir.mkdir()
    thread = threading.Thread(
        target=lambda: [found.put(b) for b in corpus_changes(three_articles, index_dir, stop=stop, debounce_ms=100)]
    )
    thread.start()
    time.sleep(0.5)  # let the watcher subscribe before the first write
    yield found
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_added_changed_and_removed_files_arrive_as_one_batch(three_articles, batches):
    (three_articles / "index" / "CURRENT").write_text("g2")
    (three_articles / ".draft.md.tmp").write_text("half-written upload")
    (three_articles / "new.md").write_text("# New\n\nA new article.\n")
    (three_articles / "weather.txt").write_text("Snow closed schools in Aberdeen.\n")
    (three_articles / "stellantis.md").unlink()
    expected, seen = {"new.md", "weather.txt", "stellantis.md"}, set()
    while not expected <= seen:  # an editor's save may split into two batches; each get is bounded
        seen.update(batches.get(timeout=DEADLINE_S))
    assert seen == expected  # nothing hidden, nothing under the index folder


@pytest.mark.parametrize(
    "path, expected",
    [("/c/a.md", True), ("/c/sub/b.pdf", True), ("/c/.hidden/a.md", False), ("/c/a.md~", False),
     ("/c/ix/gen-1/vectors", False), ("/elsewhere/a.md", False), ("/c", False)],
)
def test_which_paths_count_as_corpus_changes(path, expected):
    from pathlib import Path

    assert is_corpus_change(path, Path("/c"), Path("/c/ix")) is expected


def test_serve_watch_rebuilds_and_swaps_on_edit(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "index"
    build_index(three_articles, index_dir, fake_embedder)
    searcher = Searcher(index_dir, fake_embedder)
    settings = Settings(corpus_dir=three_articles, index_dir=index_dir, watch=True, watch_debounce_ms=100)
    app = create_app(settings, embedder=fake_embedder, llm=SimpleNamespace(name="fake"), searcher=searcher,
                     answerer=SimpleNamespace())

    def top_title(client, query):
        hits = client.get("/api/search", params={"q": query}).json()["hits"]
        return hits[0]["title"] if hits else None

    with TestClient(app) as client:
        assert top_title(client, "Aberdeen snow schools") != "Snow in Aberdeen"
        time.sleep(0.5)  # the watcher subscribes as the app starts
        (three_articles / "weather.txt").write_text("# Snow in Aberdeen\n\nSnow closed schools across Aberdeen.\n")
        wait_for(lambda: top_title(client, "Aberdeen snow schools") == "Snow in Aberdeen", "the edit to be served")
        status = client.get("/api/index/status").json()
        assert status["last_summary"]["changed"] == 1 and status["last_error"] is None
        (three_articles / "stellantis.md").unlink()
        wait_for(lambda: client.get("/api/index/status").json()["last_summary"]["removed"] == 1, "the removal")
        assert "Stellantis" not in {h["title"] for h in client.get("/api/search", params={"q": "Stellantis"}).json()["hits"]}


def test_changes_during_a_build_start_another_one_after_it(tmp_path):
    from server.api.rebuild import Rebuilder

    release, calls = threading.Event(), []

    def slow_build(*args, **kwargs):
        calls.append(len(calls))
        assert release.wait(10)
        from index.types import BuildSummary

        return BuildSummary(added=len(calls))

    searcher = SimpleNamespace(reload=lambda: True, store=SimpleNamespace(version="g"))
    rebuilder = Rebuilder(Settings(corpus_dir=tmp_path, index_dir=tmp_path / "ix"), None, searcher, build=slow_build)
    rebuilder.start()
    follower = threading.Thread(target=rebuilder.start_when_idle)
    follower.start()
    release.set()
    follower.join(10)
    rebuilder.wait(10)
    assert calls == [0, 1] and rebuilder.status().builds == 2
