"""Milvus builds on a real Milvus Lite file: a reader sees whole versions after every call a build makes.

The build's Milvus client is wrapped so that after each call that writes (insert, delete, drop), the test
asks everything a server asks: of a store opened before the build (it must answer exactly as before, during
the build, the switch and the garbage collection after it) and of one opened at that moment (the old version
until the switch, the new one from then on, never a mix).
"""

from __future__ import annotations

import json

import pytest

from index.errors import IndexMismatch
from index.stores.milvus_schema import DUMMY
from index.types import Article, Chunk

from conftest import FakeEmbedder
from test_milvus_store import LEEDS, ROME, SBF, backend, build, ids, lite_file, manifest  # noqa: F401 - backend, lite_file are fixtures

ROME_AGAIN = Article("rome", "Floods hit Rome on Tuesday. The Tiber rose three metres", "Rome floods", "Wire \"Daily\"", published="2023-10-03")
SNOW = Article("snow", "Snow closed every school in Aberdeen", "Aberdeen snow", "Scotland Today")
WRITES = {"insert", "delete", "upsert", "drop_collection"}


def view(store) -> dict:
    """What a server asks a store, as plain values (keyword hits as a set: Milvus' BM25 statistics count every row)."""
    vector = FakeEmbedder().embed(["floods in Rome"])[0]
    articles, total = store.list_articles(0, 50)
    return dict(
        version=store.version, counts=store.counts(), sources=store.sources(),
        dense=sorted((-round(score, 4), i) for i, score in store.dense(vector, 50)),  # ties in any order
        keyword=sorted(ids(store.keyword("Rome floods trial rain Leeds Tiber snow", 50))),
        chunks=[(c.id, c.article_id, c.text) for c in store.chunks(range(40))],
        articles=store.articles(["rome", "sbf", "leeds", "snow"]), listing=(articles, total), hashes=store.content_hashes(),
        mentions=[store.mentions(name) for name in ("Bankman-Fried", "Tiber", "Aberdeen")],
    )


class Watched:
    """A Milvus client that calls `check()` after every call that writes."""

    def __init__(self, client, check):
        self._client, self._check = client, check
        self.writes = 0

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        if name not in WRITES:
            return method

        def call(*args, **kwargs):
            result = method(*args, **kwargs)
            self.writes += 1
            self._check()
            return result

        return call


def watch(writer, readers: list, seen: list) -> Watched:
    """Check the `readers` (store, answers) after each write of `writer`; record what a newly opened store answers."""

    def check():
        for store, answers in readers:
            assert view(store) == answers, f"a reader of {store.version} saw another version after write {watched.writes}"
        seen.append(view(writer.backend.open()))

    watched = writer.client = Watched(writer.client, check)
    return watched


def one_chunk_each(articles: list[Article], first_id: int) -> list[Chunk]:
    return [Chunk(first_id + n, a.id, 0, len(a.text), a.text) for n, a in enumerate(articles)]


def write(writer, drop: list[str], articles: list[Article], first_id: int) -> None:
    chunks = one_chunk_each(articles, first_id)
    writer.delete(drop)
    writer.add(articles, {a.id: f"hash-{a.text}" for a in articles}, chunks, FakeEmbedder().embed([c.text for c in chunks]))


def test_readers_see_the_old_version_whole_until_the_switch_and_the_new_one_whole_after(backend):
    build(backend, [ROME, SBF, LEEDS], 0)
    old = backend.open()
    before = view(old)
    seen: list[dict] = []
    with backend.lock():
        writer = backend.begin_build()
        watched = watch(writer, [(old, before)], seen)
        write(writer, ["rome", "sbf"], [ROME_AGAIN, SNOW], 10)  # rome changed, sbf removed, snow added
        writer.commit(manifest(12))
    after = view(backend.open())
    assert watched.writes >= 6 and seen[0] == before and seen[-1] == after
    switch = seen.index(after)
    assert seen == [before] * switch + [after] * (len(seen) - switch)  # one switch, from one whole version to the other
    assert after["version"] == "v000002" and after["counts"] == (3, 4)
    assert after["articles"]["rome"].text == ROME_AGAIN.text and set(after["articles"]) == {"rome", "leeds", "snow"}
    assert after["mentions"] == [False, True, True] and after["sources"] == ["Scotland Today", 'Wire "Daily"']
    assert view(old) == before  # the previous version keeps answering after the build

    # The next build deletes the rows build 2 dropped (readers of version 2 never see them) and their list.
    current = backend.open()
    with backend.lock():
        writer = backend.begin_build()
        watch(writer, [(current, after)], [])
        write(writer, ["leeds"], [LEEDS], 12)
        writer.commit(manifest(13))
    assert backend.count(backend.articles, 'article_id == "sbf"') == 0
    assert backend.count(backend.articles, 'article_id == "rome"') == 1 and backend.dropped(after=0, upto=2) == {}
    assert view(backend.open())["counts"] == (3, 3) and backend.dropped(after=2, upto=3) == {3: ["leeds"]}


def test_an_aborted_build_never_changes_what_readers_see(backend):
    build(backend, [ROME, SBF], 0)
    old = backend.open()
    before = view(old)
    seen: list[dict] = []
    with backend.lock():
        writer = backend.begin_build()
        watch(writer, [(old, before)], seen)
        write(writer, ["rome", "sbf"], [ROME_AGAIN, LEEDS], 10)
        writer.abort()
    assert seen and all(answers == before for answers in seen)
    assert backend.count(backend.articles, "born > 1") == 0 and backend.dropped(after=1, upto=10) == {}
    build(backend, [SNOW], 10, drop=("sbf",))
    assert view(backend.open())["counts"] == (2, 3)


def test_a_build_that_fails_after_the_switch_stays_published_and_the_next_build_collects(backend, monkeypatch):
    build(backend, [ROME, SBF], 0)
    with backend.lock():
        writer = backend.begin_build()
        write(writer, ["sbf"], [SNOW], 10)

        def cut_short(collection):
            raise ConnectionError("Milvus went away during the clean-up")

        monkeypatch.setattr(writer, "_collect_garbage", cut_short)
        with pytest.raises(ConnectionError):
            writer.commit(manifest(11))
        writer.abort()  # what build_index does on any error
    published = view(backend.open())
    assert published["version"] == "v000002" and set(published["hashes"]) == {"rome", "snow"}
    build(backend, [LEEDS], 11)
    assert backend.count(backend.articles, 'article_id == "sbf"') == 0 and backend.dropped(after=0, upto=2) == {}


def test_a_build_that_drops_thousands_of_articles_filters_and_collects_them_in_batches(backend):
    # 3,000 articles with 43-character ids; the build drops 2,500 (a 115 KB `not in` list in every filter).
    many = [Article(f"archive/2023/article-{n:05d}-{'x' * 16}", f"Story number {n} about floods", f"Story {n}", "Wire") for n in range(3000)]
    chunks = one_chunk_each(many, 0)
    with backend.lock():
        writer = backend.begin_build()
        writer.add(many, {a.id: "h" for a in many}, chunks, FakeEmbedder().embed([c.text for c in chunks]))
        writer.commit(manifest(3000))
    old = backend.open()
    build(backend, [SNOW], 3000, drop=tuple(a.id for a in many[:2500]))
    new = backend.open()
    assert old.counts() == (3000, 3000) and new.counts() == (501, 501)
    assert len(new.content_hashes()) == 501 and len(old.content_hashes()) == 3000
    assert len(new.keyword("floods", 3000)) == 500 and len(old.keyword("floods", 3000)) == 3000
    build(backend, [LEEDS], 3001)  # collects the 2,500 dropped rows
    assert backend.count(backend.articles, "part == 0") == 502 and backend.dropped(after=0, upto=2) == {}


def test_an_index_of_the_older_layout_is_refused_and_a_full_build_replaces_it(backend):
    build(backend, [ROME, SBF], 0)
    old_record = json.loads(backend.client.query(backend.meta, filter='key like "live%"', output_fields=["value"])[0]["value"])
    del old_record["layout"]  # layout 1 had one "live" record, without a layout
    backend.client.delete(backend.meta, filter='key like "live%"')
    backend.client.insert(backend.meta, [dict(key="live", value=json.dumps(old_record), v=DUMMY)])
    with pytest.raises(IndexMismatch, match=r"layout 1 .*this Byline reads layout 2\. .*byline index --full"):
        backend.open()
    build(backend, [LEEDS], 0, full=True)
    store = backend.open()
    assert store.version == "v000001" and store.counts() == (1, 2) and set(store.content_hashes()) == {"leeds"}
