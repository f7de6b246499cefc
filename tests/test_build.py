"""build_index: incremental by content hash, atomic under kill -9, one build at a time, and `byline index`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.chunking import ChunkSettings
from index.errors import BylineError, IndexBusy
from index.locking import build_lock
from index.stores.generations import current_generation
from index.stores.local import LocalBackend
from server.cli import main

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TOPICS = ["harbour", "railway", "election", "vaccine", "satellite", "orchard", "museum", "glacier", "bakery", "tariff"]


def generated_corpus(folder: Path, count: int) -> None:
    """Write `count` short, distinct articles (one chunk each) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        topic = TOPICS[number % len(TOPICS)]
        (folder / f"gen{number:04d}.md").write_text(
            f"---\ntitle: Report {number} on the {topic}\nsource: Gen News\n---\n"
            f"Article {number} reports on the {topic} in town {number * 7}. Officials said the {topic} "
            f"plan number {number} would be reviewed. Residents of district {number % 13} gave their views.\n"
        )


def load_index(index_dir: Path, **checks):
    """The live local store version."""
    return LocalBackend(index_dir).open(**checks)


def articles_of(store) -> dict:
    """Every article of a store version, by id."""
    return {article.id: article for article in store.list_articles(0, 100_000)[0]}


def chunks_of(store, article_id: str | None = None) -> list:
    """The chunks of one article (or all), in id order."""
    return [c for c in store.chunks(range(store.manifest.next_chunk_id)) if article_id in (None, c.article_id)]


def vector_of(store, chunk_id: int) -> np.ndarray:
    """The stored vector of one chunk."""
    return store.vectors_at(np.searchsorted(store.chunk_ids, [chunk_id]))[0]


def top_article(store, embedder, query: str) -> str:
    """The path of the article whose chunk is nearest to the query (a plain dense search)."""
    chunk_id = store.dense(embedder.embed([query])[0], 1)[0][0]
    return store.article(store.chunks([chunk_id])[0].article_id).path


def test_first_build_counts_articles_and_names_skipped_files(three_articles, tmp_path, fake_embedder):
    (three_articles / "broken.json").write_text("[{]")
    (three_articles / "empty.md").write_text("")
    summary = build_index(three_articles, tmp_path / "ix", fake_embedder)
    assert (summary.added, summary.changed, summary.unchanged, summary.removed) == (3, 0, 0, 0)
    assert {s.path for s in summary.skipped} == {"broken.json", "empty.md"}
    assert all(s.reason for s in summary.skipped)
    assert summary.chunks_embedded == summary.chunks_total == len(fake_embedder.embedded) == 3
    assert summary.seconds > 0


def test_rebuild_without_changes_embeds_nothing_and_keeps_the_generation(three_articles, tmp_path, fake_embedder):
    build_index(three_articles, tmp_path / "ix", fake_embedder)
    fake_embedder.embedded.clear()
    summary = build_index(three_articles, tmp_path / "ix", fake_embedder)
    assert (summary.added, summary.changed, summary.unchanged, summary.removed) == (0, 0, 3, 0)
    assert fake_embedder.embedded == [] and summary.chunks_embedded == 0 and summary.chunks_total == 3
    assert current_generation(tmp_path / "ix") == "gen-000001"


def test_incremental_build_reembeds_only_the_edited_article(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, fake_embedder)
    before = load_index(index_dir)
    by_path = {a.path: a for a in articles_of(before).values()}
    dongfeng_chunks = chunks_of(before, by_path["dongfeng.md"].id)

    (three_articles / "weather.txt").write_text("Snow closed schools across Aberdeen on Friday morning.\n")
    (three_articles / "stellantis.md").unlink()
    fake_embedder.embedded.clear()
    summary = build_index(three_articles, index_dir, fake_embedder)

    assert (summary.added, summary.changed, summary.unchanged, summary.removed) == (0, 1, 1, 1)
    # weather.txt names no source: the corpus folder's name stands in for it.
    assert fake_embedder.embedded == ["(corpus)\nSnow closed schools across Aberdeen on Friday morning."]
    after = load_index(index_dir)
    assert {a.path for a in articles_of(after).values()} == {"dongfeng.md", "weather.txt"}
    assert by_path["stellantis.md"].id not in {c.article_id for c in chunks_of(after)}
    # The unchanged article keeps its chunk ids and exactly the same vectors.
    assert chunks_of(after, by_path["dongfeng.md"].id) == dongfeng_chunks
    for chunk in dongfeng_chunks:
        assert np.array_equal(vector_of(after, chunk.id), vector_of(before, chunk.id))
    # The edited article got fresh ids, and the vectors hold exactly the live chunks.
    weather = chunks_of(after, by_path["weather.txt"].id)
    assert min(c.id for c in weather) >= before.manifest.next_chunk_id
    assert after.vectors.ntotal == len(chunks_of(after)) == 2
    assert top_article(after, fake_embedder, "snow schools Aberdeen") == "weather.txt"
    assert top_article(after, fake_embedder, "Stellantis Tavares unpopular decisions") != "stellantis.md"


def test_each_chunk_id_holds_the_vector_of_its_own_text(tmp_path, fake_embedder, monkeypatch):
    """Texts are embedded sorted by length in several batches; every vector must land on its own chunk."""
    from index.chunking import embedding_text

    monkeypatch.setattr("index.build.EMBED_BATCH", 7)
    corpus = tmp_path / "corpus"
    generated_corpus(corpus, 40)
    (corpus / "long.md").write_text("A much longer piece about the glacier and the harbour. " * 30)
    build_index(corpus, tmp_path / "ix", fake_embedder)
    snapshot = load_index(tmp_path / "ix")
    for chunk in chunks_of(snapshot):
        article = snapshot.article(chunk.article_id)
        expected = fake_embedder.embed([embedding_text(chunk.text, article.title, article.source, article.published)])
        assert np.allclose(vector_of(snapshot, chunk.id), expected[0], atol=1e-6)


def test_full_rebuild_reembeds_everything_with_new_ids(three_articles, tmp_path, fake_embedder):
    build_index(three_articles, tmp_path / "ix", fake_embedder)
    fake_embedder.embedded.clear()
    summary = build_index(three_articles, tmp_path / "ix", fake_embedder, full=True)
    assert summary.added == 3 and summary.chunks_embedded == 3 and len(fake_embedder.embedded) == 3
    assert min(load_index(tmp_path / "ix").chunk_ids) == 3


@pytest.mark.parametrize("change", ["chunk", "model"])
def test_other_model_or_chunk_settings_reembed_everything(three_articles, tmp_path, fake_embedder, change):
    build_index(three_articles, tmp_path / "ix", fake_embedder)
    fake_embedder.embedded.clear()
    chunk = ChunkSettings(words=150) if change == "chunk" else ChunkSettings()
    if change == "model":
        fake_embedder.name = "another-fake"
    summary = build_index(three_articles, tmp_path / "ix", fake_embedder, chunk)
    assert summary.added == 3 and len(fake_embedder.embedded) == 3
    manifest = load_index(tmp_path / "ix", embedding_model=fake_embedder.name, chunk=chunk).manifest
    assert manifest.chunk_words == chunk.words and manifest.embedding_model == fake_embedder.name


def test_metadata_goes_into_the_embedded_text_only_when_asked(three_articles, tmp_path, fake_embedder):
    build_index(three_articles, tmp_path / "a", fake_embedder, ChunkSettings(embed_metadata=True))
    assert "Dongfeng in talks to build cars in Italy (Byline Wire, 2024-04-10)\nDongfeng Motor" in "\n".join(
        fake_embedder.embedded
    )
    fake_embedder.embedded.clear()
    build_index(three_articles, tmp_path / "b", fake_embedder, ChunkSettings(embed_metadata=False))
    assert all(text.startswith(("Dongfeng Motor", "Stellantis chief", "Heavy rain")) for text in fake_embedder.embedded)


def test_a_file_that_turns_bad_keeps_its_indexed_version(three_articles, tmp_path, fake_embedder):
    build_index(three_articles, tmp_path / "ix", fake_embedder)
    (three_articles / "stellantis.md").write_bytes(b"\x00\x01\x02 binary garbage \xff\xfe" * 20)
    summary = build_index(three_articles, tmp_path / "ix", fake_embedder)
    assert [s.path for s in summary.skipped] == ["stellantis.md"]
    assert summary.removed == 0
    assert "stellantis.md" in {a.path for a in articles_of(load_index(tmp_path / "ix")).values()}


def test_progress_reports_reading_embedding_and_writing(three_articles, tmp_path, fake_embedder):
    calls = []
    build_index(three_articles, tmp_path / "ix", fake_embedder, progress=lambda *call: calls.append(call))
    stages = [stage for stage, _, _ in calls]
    assert stages.index("reading") < stages.index("embedding") < stages.index("writing") < stages.index("done")
    assert ("embedding", 3, 3) in calls and ("reading", 3, 3) in calls


def test_embedding_starts_while_the_corpus_is_still_being_read(tmp_path, fake_embedder, monkeypatch):
    import index.corpus

    generated_corpus(tmp_path / "corpus", 12)
    embedding_began, read_file = threading.Event(), index.corpus._read_file
    waited = []

    class Watching:
        name, dim = fake_embedder.name, fake_embedder.dim

        def embed(self, texts, threads=None):
            embedding_began.set()
            return fake_embedder.embed(texts)

    def read_last_file_once_embedding_began(path, rel, *args):
        if rel == "gen0011.md":  # a sequential build would read this before embedding anything
            waited.append(embedding_began.wait(10))
        return read_file(path, rel, *args)

    monkeypatch.setattr(index.corpus, "_read_file", read_last_file_once_embedding_began)
    summary = build_index(tmp_path / "corpus", tmp_path / "ix", Watching(), checkpoint_chunks=2)
    assert waited == [True] and summary.added == 12 and summary.chunks_total == 12


def test_a_reading_error_is_raised_by_the_build_and_leaves_the_index(three_articles, tmp_path, fake_embedder, monkeypatch):
    import index.corpus

    build_index(three_articles, tmp_path / "ix", fake_embedder)
    before = current_generation(tmp_path / "ix")
    (three_articles / "new.md").write_text("---\ntitle: New\n---\nA new article about the harbour.\n")
    monkeypatch.setattr(index.corpus, "_read_file", lambda *args: (_ for _ in ()).throw(MemoryError("reader died")))
    with pytest.raises(MemoryError, match="reader died"):
        build_index(three_articles, tmp_path / "ix", fake_embedder)
    assert current_generation(tmp_path / "ix") == before and len(articles_of(load_index(tmp_path / "ix"))) == 3


def test_a_second_build_is_refused_while_one_holds_the_lock(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, fake_embedder)
    with build_lock(index_dir):
        with pytest.raises(IndexBusy, match=rf"another build \(pid {os.getpid()}\) is updating {index_dir}; wait"):
            build_index(three_articles, index_dir, fake_embedder, full=True)
    assert load_index(index_dir).version == "gen-000001"


def test_a_waiting_build_runs_once_the_lock_is_released(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "ix"
    results = []
    with build_lock(index_dir):
        waiter = threading.Thread(
            target=lambda: results.append(build_index(three_articles, index_dir, fake_embedder, wait=True))
        )
        waiter.start()
        time.sleep(0.3)
        assert results == [] and current_generation(index_dir) is None
    waiter.join(10)
    assert results[0].added == 3 and load_index(index_dir).manifest.article_count == 3


def test_an_index_dir_that_is_a_file_is_a_clear_error(three_articles, tmp_path, fake_embedder):
    (tmp_path / "ix").write_text("not a folder")
    with pytest.raises(BylineError, match=r"ix is a file, not a folder; choose another --index-dir"):
        build_index(three_articles, tmp_path / "ix", fake_embedder)


def _running(pid: int) -> bool:
    """Whether a process exists and isn't a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class Helper:
    """tests/slow_build.py in a subprocess, read line by line."""

    def __init__(self, corpus: Path, index_dir: Path, *args: str) -> None:
        command = [sys.executable, str(TESTS / "slow_build.py"), str(corpus), str(index_dir), *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"helper ended before {prefix!r}: {self.process.stderr.read()}")
            self.lines.append(line.strip())
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"no {prefix!r} within {timeout} s; saw {self.lines[-5:]}")

    def kill(self) -> None:
        """SIGKILL the helper, then wait for its children (Milvus Lite's engine stops once its file lock is free)."""
        children = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                children += [int(pid) for pid in (task / "children").read_text().split()]
            except FileNotFoundError:  # a thread that ended since the listing
                continue
        self.process.kill()
        self.process.wait(10)
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.process.stdout.close()
        self.process.stderr.close()


def test_a_build_in_another_process_makes_this_one_refuse(three_articles, tmp_path, fake_embedder):
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, fake_embedder)
    generated_corpus(three_articles, 20)
    helper = Helper(three_articles, index_dir, "--pause-at", "embedding:0")
    try:
        helper.wait_for("PAUSED")
        with pytest.raises(IndexBusy, match=rf"another build \(pid {helper.process.pid}\)"):
            build_index(three_articles, index_dir, fake_embedder)
    finally:
        helper.kill()
    assert load_index(index_dir).manifest.article_count == 3
    assert build_index(three_articles, index_dir, fake_embedder).added == 20


@pytest.mark.parametrize("pause_at", ["embedding:256", "writing:1", "writing:3", "writing:4"])
def test_kill_9_mid_build_leaves_the_previous_index_loadable(three_articles, tmp_path, fake_embedder, pause_at):
    """kill -9 while embedding, after the vectors are written, before the folder rename, before the swap."""
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, fake_embedder)
    generated_corpus(three_articles, 600)
    helper = Helper(three_articles, index_dir, "--pause-at", pause_at)
    try:
        helper.wait_for("PAUSED")
        leftovers = sorted(p.name for p in index_dir.iterdir())
    finally:
        helper.kill()

    if pause_at.startswith("writing:") and pause_at != "writing:4":
        assert ".tmp-gen-000002" in leftovers  # the kill really hit a half-written generation
    if pause_at == "writing:4":
        assert "gen-000002" in leftovers and (index_dir / "CURRENT").read_text() == "gen-000001\n"
    snapshot = load_index(index_dir, embedding_model=fake_embedder.name, dim=fake_embedder.dim)
    assert snapshot.version == "gen-000001" and snapshot.manifest.article_count == 3
    assert top_article(snapshot, fake_embedder, "heavy rain flooding Leeds York") == "weather.txt"

    # The lock died with the process; the next build cleans up and succeeds.
    summary = build_index(three_articles, index_dir, fake_embedder)
    assert summary.added == 600 and summary.unchanged == 3
    names = sorted(p.name for p in index_dir.iterdir())
    assert not [name for name in names if name.startswith(".tmp-")]
    assert len([name for name in names if name.startswith("gen-")]) == 2
    assert load_index(index_dir).manifest.article_count == 603


def test_cli_index_prints_the_summary_and_skipped_files(three_articles, tmp_path, fake_embedder, monkeypatch, capsys):
    monkeypatch.setattr("server.cli._embedder", lambda settings: fake_embedder)
    (three_articles / "nothing.txt").write_text("   \n")
    index_dir = tmp_path / "ix"
    assert main(["index", str(three_articles), "--index-dir", str(index_dir)]) == 0
    out, err = capsys.readouterr()
    assert "added 3, changed 0, unchanged 0, removed 0, skipped 1" in out
    assert "  skipped nothing.txt: empty file" in out
    assert "chunks: 3 embedded, 3 in the index" in out
    assert "embedding" in err and "writing" in err
    with build_lock(index_dir):
        assert main(["index", str(three_articles), "--index-dir", str(index_dir)]) == 1
    assert "byline: another build" in capsys.readouterr().err


def test_cli_full_and_settings_from_the_environment(three_articles, tmp_path, fake_embedder, monkeypatch, capsys):
    monkeypatch.setattr("server.cli._embedder", lambda settings: fake_embedder)
    monkeypatch.setenv("BYLINE_CORPUS_DIR", str(three_articles))
    monkeypatch.setenv("BYLINE_CHUNK_WORDS", "100")
    assert main(["index"]) == 0
    assert main(["index", "--full"]) == 0
    assert "added 3" in capsys.readouterr().out
    manifest = load_index(Path(os.environ["BYLINE_INDEX_DIR"])).manifest
    assert manifest.chunk_words == 100 and manifest.corpus == str(three_articles.resolve())


# -- with the real embedding model --------------------------------------------------------------------


class CountingEmbedder:
    """Wraps a real embedder and records every text it embeds."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim, self.embedded = inner, inner.name, inner.dim, []

    def embed(self, texts, progress=None, threads=None):
        self.embedded.extend(texts)
        return self.inner.embed(texts, threads=threads)


def sample_corpus(three_articles: Path) -> Path:
    """The repo's corpus/ when it has articles, else the three-article fixture."""
    corpus = REPO / "corpus"
    return corpus if any(p.is_file() for p in corpus.rglob("*")) else three_articles


@pytest.mark.real
def test_real_index_of_the_sample_corpus_ranks_dongfeng_first(three_articles, tmp_path, real_embedder):
    from index.retrieve import Retriever

    summary = build_index(sample_corpus(three_articles), tmp_path / "ix", real_embedder)
    assert summary.added >= 3 and summary.skipped == ()
    snapshot = load_index(tmp_path / "ix", embedding_model=real_embedder.name, dim=real_embedder.dim)
    hits = Retriever(snapshot, real_embedder).search("Dongfeng plant Italy", k=5)
    assert "Dongfeng" in hits[0].title or "Dongfeng" in hits[0].text
    dense = Retriever(snapshot, real_embedder).dense("Dongfeng plant Italy", k=1)
    assert "Dongfeng" in dense[0].title + dense[0].text


@pytest.mark.real
def test_real_incremental_build_reembeds_only_the_edited_article(three_articles, tmp_path, real_embedder):
    embedder = CountingEmbedder(real_embedder)
    build_index(three_articles, tmp_path / "ix", embedder)
    (three_articles / "weather.txt").write_text("Snow closed schools across Aberdeen on Friday morning.\n")
    (three_articles / "stellantis.md").unlink()
    embedder.embedded.clear()
    summary = build_index(three_articles, tmp_path / "ix", embedder)
    assert (summary.changed, summary.unchanged, summary.removed) == (1, 1, 1)
    # weather.txt names no source: the corpus folder's name stands in for it, in front of the embedded text.
    assert embedder.embedded == ["(corpus)\nSnow closed schools across Aberdeen on Friday morning."]
    snapshot = load_index(tmp_path / "ix", embedding_model=real_embedder.name, dim=real_embedder.dim)
    assert top_article(snapshot, real_embedder, "snowfall shuts schools in Scotland") == "weather.txt"
    assert top_article(snapshot, real_embedder, "Chinese carmaker factory in Italy") == "dongfeng.md"


@pytest.mark.real
def test_real_kill_9_of_byline_index_keeps_the_previous_index(three_articles, tmp_path, real_embedder):
    index_dir = tmp_path / "ix"
    build_index(three_articles, index_dir, real_embedder)
    generated_corpus(three_articles, 1500)
    command = [sys.executable, "-m", "server.cli", "index", str(three_articles), "--index-dir", str(index_dir)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in process.stderr:
            seen.append(line.strip())
            if line.startswith("embedding") and not line.startswith("embedding 0/"):
                break  # the first batch is embedded: the build is mid-way
    finally:
        process.kill()  # SIGKILL
        process.wait(10)
    assert process.returncode == -signal.SIGKILL, seen

    snapshot = load_index(index_dir, embedding_model=real_embedder.name, dim=real_embedder.dim)
    assert snapshot.version == "gen-000001" and snapshot.manifest.article_count == 3
    assert top_article(snapshot, real_embedder, "Dongfeng plant Italy") == "dongfeng.md"
    for generated in three_articles.glob("gen*.md"):
        generated.unlink()
    (three_articles / "late.md").write_text("A late note: the harbour reopened after the storm.\n")
    summary = build_index(three_articles, index_dir, real_embedder)
    assert (summary.added, summary.unchanged) == (1, 3)
    assert not list(index_dir.glob(".tmp-*"))
    assert load_index(index_dir).manifest.article_count == 4
