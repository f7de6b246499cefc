"""Shared fixtures: deterministic fakes for the embedder and the LLM, and state pointed at tmp_path."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
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

    def embed(self, texts: list[str], progress: bool | None = None) -> np.ndarray:
        self.embedded.extend(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim
                vectors[row, bucket] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms


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
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from index.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()
