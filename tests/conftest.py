"""Shared fixtures: deterministic fakes for the embedder and the LLM, and state pointed at tmp_path."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


class FakeEmbedder:
    """Hashed bag-of-words vectors: texts sharing words get similar vectors. Counts its calls."""

    name = "fake-embedder"
    dim = 64

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts: list[str], progress: bool | None = None, threads: int | None = None) -> np.ndarray:
        self.embedded.extend(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim
                vectors[row, bucket] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms


class ArticleStore:
    """An in-memory stand-in for a Store version (index/stores/base.py) over a few articles, for fake searchers."""

    def __init__(self, articles: dict, version: str = "g1", manifest=None) -> None:
        self.by_id = dict(articles)
        self.version = version
        self.manifest = manifest

    def sources(self) -> list[str]:
        return sorted({article.source for article in self.by_id.values() if article.source})

    def counts(self) -> tuple[int, int]:
        return len(self.by_id), getattr(self.manifest, "chunk_count", len(self.by_id))

    def mentions(self, name: str) -> bool:
        words = r"\W+".join(re.escape(word) for word in re.findall(r"\w+", name))
        text = "\n".join(f"{a.title}\n{a.source}\n{a.text}" for a in self.by_id.values())
        return re.search(rf"(?<!\w){words}(?!\w)", text, re.IGNORECASE) is not None

    def common_words(self) -> frozenset[str]:
        return frozenset(re.findall(r"\b[a-z][a-z'’-]*\b", "\n".join(a.text for a in self.by_id.values())))

    def article(self, article_id: str):
        from index.errors import ArticleNotFound

        if article_id not in self.by_id:
            raise ArticleNotFound(f"no article {article_id!r}")
        return self.by_id[article_id]


class ScriptedLLM:
    """Replays scripted completions piece by piece, recording the prompts it was given."""

    name = "scripted"
    is_chat = False
    context_tokens = 2048

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list = []

    def generate(self, prompt_or_messages, *, max_tokens=256, stop=None, temperature=0.0, repeat_penalty=1.1) -> Iterator[str]:
        self.prompts.append(prompt_or_messages)
        reply = self.replies.pop(0) if self.replies else ""
        for piece in re.findall(r"\S+\s*", reply):
            yield piece

    def count_tokens(self, text: str) -> int:
        return len(text.split())


THREE_ARTICLES = {
    "dongfeng.md": """---
title: Dongfeng in talks to build cars in Italy
source: Byline Wire
url: https://example.com/dongfeng-italy
published: 2024-04-10
---
Dongfeng Motor Group is in early talks with the Italian government about building cars in Italy. The Chinese carmaker is weighing a plant that could make more than 100,000 vehicles a year. Rome is expected to offer site options within weeks.
""",
    "stellantis.md": """---
title: Stellantis warns about Chinese rivals
source: Auto Daily
published: 2024-04-12
---
Stellantis chief executive Carlos Tavares warned of unpopular decisions if a Chinese electric-car maker opened a factory in Italy. Stellantis is selling its China car assets to its partner Dongfeng.
""",
    "weather.txt": """Heavy rain hit the north of England on Tuesday, flooding roads in Leeds and York. Forecasters expect drier weather by the weekend.
""",
}


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory, monkeypatch):
    """Point every BYLINE_* folder at a fresh temporary directory."""
    state = tmp_path_factory.mktemp("byline-state")
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(state / "index"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return state


@pytest.fixture
def three_articles(tmp_path) -> Path:
    """A tiny corpus folder: two related car articles and one unrelated weather note."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in THREE_ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return corpus


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled all-MiniLM-L6-v2 with the default backend (ONNX int8), loaded once per test session."""
    from index.embed import EmbedderSpec, load_embedder

    return load_embedder(EmbedderSpec())


XSS_ARTICLE = """---
title: "Ferry forum defaced: <script>alert(1)</script>"
source: Harbour Notice Board
url: https://notices.example.com/ferry-forum
published: 2024-08-02
---
The Kestrel Bay ferry forum was defaced on Friday. Someone replaced the ferry timetable notice with the text <script>alert(1)</script> and an image tag <img src=x onerror=alert(2)> that tried to run code in readers' browsers.
The Kestrel Bay ferry operator said the forum was restored within an hour and that the ferry timetable itself did not change.
"""


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """`byline serve` in a subprocess with the real models, on a copy of corpus/ plus an XSS article.

    Yields a namespace with base_url, corpus (the served folder), admin_token and api_key."""
    import shutil

    root = tmp_path_factory.mktemp("live")
    corpus = root / "corpus"
    shutil.copytree(REPO_ROOT / "corpus", corpus)
    (corpus / "ferry-forum-defaced.md").write_text(XSS_ARTICLE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        # The model runs on every answer: with the wall-clock budget, whether it runs depends on how busy the
        # machine was (its measured pace), and the tests of its usage figures and its text would depend on that.
        patch.setenv("BYLINE_LLM_BUDGET_S", "0")
        with byline_serve(root, corpus) as server:
            yield server


@contextmanager
def byline_serve(root: Path, corpus: Path, *flags: str):
    """Run `python -m server.cli serve` (real models) on `corpus` with an index in `root` until the block ends.

    Yields a namespace with base_url, corpus, admin_token, api_key and log (the server's output file)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from types import SimpleNamespace

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "BYLINE_ADMIN_TOKEN": "admin-test-token",
           "BYLINE_API_KEYS": '["test-key"]', "PYTHONPATH": str(REPO_ROOT)}
    log = (root / "server.log").open("w")
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--index-dir", str(root / "index"),
               "--corpus", str(corpus), *flags]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"byline serve did not start:\n{(root / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/readyz", headers={"X-API-Key": "test-key"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield SimpleNamespace(base_url=base_url, corpus=corpus, admin_token="admin-test-token", api_key="test-key",
                              log=root / "server.log")
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def served(app) -> Iterator[str]:
    """Serve an app with a real uvicorn on a free loopback port, in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def require_chromium() -> None:
    """Skip a browser test where Debian's chromium is missing; under CI (CI=true) that is a failure instead."""
    import os

    if Path("/usr/bin/chromium").exists():
        return
    message = "Debian's chromium is not installed at /usr/bin/chromium (apt-get install -y chromium; `make test` does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def refuse_reading(monkeypatch, name: str) -> None:
    """Make opening the file called `name` fail as the OS would for a mode-000 file (root reads those anyway)."""
    import os

    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if os.path.basename(os.fspath(path)) == name:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
