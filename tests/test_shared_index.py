"""Two `byline serve` processes on one index, while a third process rebuilds it (README: Large archives).

Local store: both servers read one index folder. Milvus: Milvus Lite lets one process open a file, so one
Milvus Lite engine serves the file on a loopback port and every process uses its http:// URI, the code path
of a Milvus cluster. Every answer during the rebuild must come whole from the old version or from the new
one; a server never goes back to the old one after it showed the new; both end on the new one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from conftest import REPO_ROOT, byline_serve
from milvus_lite_server import lite_server

QUESTION = "Stellantis warns about Chinese rivals opening a factory in Italy"
DEADLINE_S = 600  # the whole test, the real models loading three times on a shared machine included


def byline(*args: str, log: Path) -> subprocess.Popen:
    """`python -m server.cli ARGS` with the test's BYLINE_* environment, output to `log`."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "server.cli", *args], cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def ranking(server) -> tuple[tuple[str, int], ...]:
    """The server's top 5 for QUESTION as (article id, chunk id) pairs; any non-200 fails the test."""
    response = httpx.get(f"{server.base_url}/api/search", params={"q": QUESTION, "k": 5}, headers={"X-API-Key": server.api_key}, timeout=120)
    assert response.status_code == 200, response.text
    return tuple((hit["article_id"], hit["chunk_id"]) for hit in response.json()["hits"])


@pytest.mark.parametrize("check_every", [0.0, 0.05])
def test_a_searcher_picks_up_a_version_published_elsewhere_only_when_asked_to(three_articles, tmp_path, fake_embedder, check_every):
    from index.build import build_index
    from index.retrieve import Searcher
    from index.stores.local import LocalBackend

    build_index(three_articles, tmp_path / "ix", fake_embedder)
    searcher = Searcher(LocalBackend(tmp_path / "ix"), fake_embedder, check_every=check_every)
    before = searcher.store.version
    (three_articles / "snow.md").write_text("---\ntitle: Snow in Aberdeen\n---\nSnow closed every school in Aberdeen.\n")
    build_index(three_articles, tmp_path / "ix", fake_embedder)  # as another process would: this searcher isn't told
    time.sleep(0.1)
    hits = searcher.search("snow Aberdeen schools", k=1)
    if check_every:
        assert searcher.store.version != before and hits[0].title == "Snow in Aberdeen"
    else:
        assert searcher.store.version == before and all(hit.title != "Snow in Aberdeen" for hit in hits)


@pytest.mark.real
@pytest.mark.parametrize("store", ["local", "milvus"])
def test_two_servers_answer_from_whole_versions_while_another_process_rebuilds(store, three_articles, tmp_path, monkeypatch):
    deadline = time.monotonic() + DEADLINE_S
    for name, value in [("STORE", store), ("INDEX_DIR", str(tmp_path / "ix")), ("CORPUS_DIR", str(three_articles)),
                        ("RELOAD_CHECK_S", "0.5"), ("LLM_THREADS", "1"),
                        # The two servers must give the same answer: no wall-clock budget may cut one model short.
                        ("LLM_BUDGET_S", "0")]:
        monkeypatch.setenv(f"BYLINE_{name}", value)
    with ExitStack() as stack:
        if store == "milvus":
            monkeypatch.setenv("BYLINE_MILVUS_URI", stack.enter_context(lite_server(tmp_path / "shared.db")))
        assert byline("index", log=tmp_path / "first-build.log").wait(300) == 0
        servers = []
        for number in (1, 2):
            (tmp_path / f"server-{number}").mkdir()
            servers.append(stack.enter_context(byline_serve(tmp_path / f"server-{number}", three_articles, "--index-dir", str(tmp_path / "ix"))))
        old = ranking(servers[0])
        assert ranking(servers[1]) == old
        stellantis = old[0][0]

        (three_articles / "stellantis.md").unlink()
        (three_articles / "fiat.md").write_text(
            "---\ntitle: Fiat plant in Turin adds a shift\nsource: Auto Daily\npublished: 2024-04-15\n---\n"
            "Stellantis said its Fiat plant in Turin will add a night shift as Chinese rivals look for a factory in Italy.\n"
        )
        rebuild = byline("index", log=tmp_path / "rebuild.log")
        seen: list[list[tuple]] = [[], []]
        while True:  # bounded by the deadline
            rankings = [ranking(server) for server in servers]
            for number, answer in enumerate(rankings):
                seen[number].append(answer)
            if rebuild.poll() is not None and rankings[0] == rankings[1] != old:
                break
            assert time.monotonic() < deadline, f"no convergence; rebuild log:\n{(tmp_path / 'rebuild.log').read_text()[-2000:]}"
            time.sleep(0.2)
        assert rebuild.returncode == 0, (tmp_path / "rebuild.log").read_text()[-3000:]
        new = rankings[0]
        assert stellantis not in {article for article, _ in new}
        for answers in seen:
            assert answers[0] == old  # polled while the rebuild ran
            assert set(answers) <= {old, new}
            first_new = answers.index(new)
            assert all(answer == new for answer in answers[first_new:])  # never back to the old version
        asked = [httpx.post(f"{server.base_url}/api/ask", json={"question": "What will the Fiat plant in Turin add?"},
                            headers={"X-API-Key": server.api_key}, timeout=300) for server in servers]
        assert [response.status_code for response in asked] == [200, 200]
        assert asked[0].json()["answer"] == asked[1].json()["answer"] and "shift" in asked[0].json()["answer"].lower()
