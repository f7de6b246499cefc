"""Watching with the real models: a running `byline serve --watch` answers from an edited file without a
manual rebuild, and `byline index --watch` re-indexes files as they come and go."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import REPO_ROOT, byline_serve

pytestmark = pytest.mark.real

DEADLINE_S = 240  # bounds on a slow shared machine, never timing assertions
TOLL = """---
title: Harrow bridge toll set for the summer
source: Harrow Gazette
published: 2024-05-06
---
The toll on the Harrow bridge will be {amount} euros for cars from June, the bridge company said on Monday.
Lorries will pay twice the car toll, and cyclists cross free.
"""
QUESTION = "How much is the toll for cars on the Harrow bridge?"


def answer_text(http: httpx.Client) -> str:
    """The answer to QUESTION with the quotes it cites, lower-cased."""
    body = http.post("/api/ask", json={"question": QUESTION}).json()
    return " ".join([body["answer"], *(c["quote"] for c in body["citations"])]).lower()


def test_serve_watch_answers_from_the_edited_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harrow-toll.md").write_text(TOLL.format(amount="four"), encoding="utf-8")
    with byline_serve(tmp_path, corpus, "--watch") as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=180) as http:
            before = answer_text(http)
            assert "four" in before and "seventeen" not in before
            (corpus / "harrow-toll.md").write_text(TOLL.format(amount="seventeen"), encoding="utf-8")
            deadline = time.monotonic() + DEADLINE_S
            while "seventeen" not in (after := answer_text(http)):
                assert time.monotonic() < deadline, f"the answer never changed: {after!r}\n{server.log.read_text()[-2000:]}"
                time.sleep(1)
            assert "four" not in after
            status = http.get("/api/index/status").json()
            assert status["last_summary"]["changed"] == 1 and status["builds"] >= 1


def test_index_watch_adds_and_removes_files(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harrow-toll.md").write_text(TOLL.format(amount="four"), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "BYLINE_WATCH_DEBOUNCE_MS": "300"}
    command = [sys.executable, "-m", "server.cli", "index", str(corpus), "--index-dir", str(tmp_path / "index"), "--watch"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    # If a round never comes, kill the process so the read below ends and the test fails instead of hanging.
    watchdog = threading.Timer(DEADLINE_S, process.kill)
    watchdog.start()

    def read_until(marker: str) -> None:
        for line in process.stdout:
            lines.append(line)
            if marker in line:
                return
        pytest.fail(f"`byline index --watch` ended before {marker!r}:\n{''.join(lines)}")

    try:
        read_until("watching")
        (corpus / "ferry.md").write_text("# Ferry fares\n\nThe Orlen ferry fare rises in August.\n", encoding="utf-8")
        read_until("added 1, changed 0, unchanged 1, removed 0,")
        (corpus / "harrow-toll.md").unlink()
        read_until("added 0, changed 0, unchanged 1, removed 1,")
        assert any(line.startswith("changed: harrow-toll.md") for line in lines)
    finally:
        watchdog.cancel()
        process.terminate()
        process.wait(20)
