"""Long builds keep their work: embedded chunks are checkpointed, a killed build resumes where it was, and the
rebuild status shows chunks done out of the total with an ETA."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.chunking import embedding_text
from index.checkpoint import FOLDER, EmbeddingCheckpoint, text_digest
from index.stores.local import LocalBackend
from server.api.rebuild import Rebuilder
from server.settings import Settings
from test_build import Helper, generated_corpus

REPO = Path(__file__).resolve().parent.parent
MULTIHOP = Path(os.environ.get("BYLINE_MULTIHOP_CORPUS", "/work/shared/bench/multihop-rag/corpus.json"))


def test_checkpoint_parts_survive_a_reopen_and_other_settings_start_afresh(tmp_path):
    key = {"model": "m", "dim": 2}
    checkpoint = EmbeddingCheckpoint(tmp_path, key)
    checkpoint.save([text_digest("a"), text_digest("b")], np.array([[1, 0], [0, 1]], dtype=np.float32))
    (tmp_path / FOLDER / ".tmp-part-000002.npz").write_bytes(b"half a part, as a kill leaves it")
    again = EmbeddingCheckpoint(tmp_path, key)
    assert len(again) == 2 and np.array_equal(again.get(text_digest("b")), [0, 1]) and again.get(text_digest("c")) is None
    assert len(EmbeddingCheckpoint(tmp_path, {"model": "other", "dim": 2})) == 0
    again.clear()
    assert not (tmp_path / FOLDER).exists()


def test_a_killed_build_resumes_from_its_last_checkpoint(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, fake_embedder)
    generated_corpus(three_articles, 600)
    helper = Helper(three_articles, index_dir, "--checkpoint-chunks", "100", "--pause-at", "checkpoint:360")
    try:
        saved = int(helper.wait_for("PAUSED").split()[2])
    finally:
        helper.kill()
    assert 360 <= saved < 600 and (index_dir / FOLDER).is_dir()
    assert LocalBackend(index_dir).open().counts()[0] == 3  # the previous index answered all along

    fake_embedder.embedded.clear()
    summary = build_index(three_articles, index_dir, fake_embedder, checkpoint_chunks=100)
    assert (summary.chunks_resumed, summary.chunks_embedded) == (saved, 600 - saved)
    assert len(fake_embedder.embedded) == 600 - saved and summary.added == 600
    store = LocalBackend(index_dir).open()
    assert store.counts() == (603, 603) and not (index_dir / FOLDER).exists()
    # Resumed and fresh vectors alike sit on their own chunk: each chunk is the nearest to its own vector.
    for chunk in store.chunks(range(store.manifest.next_chunk_id))[::50]:
        article = store.article(chunk.article_id)
        text = embedding_text(chunk.text, article.title, article.source, article.published)
        assert store.dense(fake_embedder.embed([text])[0], 1)[0][0] == chunk.id


def test_rebuild_status_shows_chunks_done_of_the_total_and_an_eta(tmp_path):
    halfway, release = threading.Event(), threading.Event()

    def build(corpus, index_dir, embedder, chunk, *, limits, progress):
        progress("embedding", 100, 1000)  # resumed from a checkpoint: the rate counts from here
        progress("checkpoint", 300, 1000)
        progress("embedding", 300, 1000)
        halfway.set()
        release.wait(10)
        raise RuntimeError("stopped")

    searcher = type("Searcher", (), {"reload": lambda self: True})()
    rebuilder = Rebuilder(Settings(index_dir=tmp_path), object(), searcher, build=build)
    rebuilder.start()
    assert halfway.wait(10)
    status = rebuilder.status().to_dict()
    release.set()
    assert (status["stage"], status["chunks_done"], status["chunks_total"], status["chunks_saved"]) == ("embedding", 300, 1000, 300)
    assert status["eta_s"] is not None and status["eta_s"] >= 0
    assert rebuilder.wait(10).last_error == "unexpected RuntimeError: stopped"


@pytest.mark.real
def test_real_build_of_multihop_killed_at_60_percent_embeds_only_the_rest_when_restarted(tmp_path):
    """kill -9 `byline index` on MultiHop-RAG articles once 60 % of its chunks are checkpointed, then run it again."""
    if not MULTIHOP.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the MultiHop-RAG corpus is missing at {MULTIHOP}")
        pytest.skip(f"the MultiHop-RAG corpus is not at {MULTIHOP}")
    articles = int(os.environ.get("BYLINE_KILL_TEST_ARTICLES", "609"))  # all of them; fewer for a quick run
    corpus = tmp_path / "multihop.json"
    corpus.write_text(json.dumps(json.loads(MULTIHOP.read_text(encoding="utf-8"))[:articles]), encoding="utf-8")
    env = {**os.environ, "BYLINE_INDEX_DIR": str(tmp_path / "ix"), "BYLINE_CHECKPOINT_CHUNKS": "128", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "server.cli", "index", str(corpus)]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saved = total = 0
    try:
        for line in first.stderr:
            if match := re.match(r"checkpoint (\d+)/(\d+)", line):
                saved, total = int(match.group(1)), int(match.group(2))
                if saved >= 0.6 * total:
                    break
    finally:
        first.kill()  # SIGKILL
        first.wait(30)
    assert 0.6 * total <= saved < total, (saved, total)

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert second.returncode == 0, second.stderr[-2000:]
    counts = re.search(r"chunks: (\d+) embedded, (\d+) resumed from an interrupted build, (\d+) in the index", second.stdout)
    assert counts, second.stdout
    embedded, resumed, in_index = (int(group) for group in counts.groups())
    print(f"\nMultiHop subset of {articles} articles, {total} chunks: killed after {saved} checkpointed; "
          f"the restarted build embedded {embedded} and resumed {resumed}")
    assert (resumed, embedded, in_index) == (saved, total - saved, total)
