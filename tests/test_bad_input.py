"""Bad input never fails a build and never loses what was indexed before (real embedding model).

Each case builds an index from a good three-article corpus, adds one kind of bad file, rebuilds, and
checks that the build summary names the file and the reason, and that the earlier articles are still
indexed and searchable.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from conftest import refuse_reading

from index.build import build_index
from index.retrieve import Retriever
from index.stores.local import LocalBackend
from index.types import CorpusLimits

pytestmark = pytest.mark.real

LIMITS = CorpusLimits(max_file_bytes=4_000)


def _binary(corpus: Path) -> None:
    (corpus / "photo.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01")


def _undecodable(corpus: Path) -> None:
    rng = random.Random(0)
    (corpus / "garbled.txt").write_bytes(bytes(rng.randrange(128, 256) for _ in range(400)))


def _empty(corpus: Path) -> None:
    (corpus / "empty.md").write_text("")


def _malformed_json(corpus: Path) -> None:
    (corpus / "broken.json").write_text('[{"title": "A", "body": "x"},\n {"title": "B" "body": "y"}]')


def _record_without_text(corpus: Path) -> None:
    (corpus / "feed.json").write_text(json.dumps([{"title": "Has text", "body": "Ferries resume on Monday."},
                                                  {"title": "No text at all"}]))


def _oversize(corpus: Path) -> None:
    (corpus / "huge.md").write_text("Too long. " * 1_000)


def _unreadable(corpus: Path) -> None:
    path = corpus / "secret.md"
    path.write_text("A locked article about harbour fees.\n")
    path.chmod(0)


def _symlink_loop(corpus: Path) -> None:
    (corpus / "archive").mkdir()
    (corpus / "archive" / "back").symlink_to(corpus, target_is_directory=True)
    (corpus / "loop-a.md").symlink_to(corpus / "loop-b.md")
    (corpus / "loop-b.md").symlink_to(corpus / "loop-a.md")


def _duplicate(corpus: Path) -> None:
    (corpus / "zz-copy.md").write_text((corpus / "dongfeng.md").read_text())


CASES = {
    "binary": (_binary, {"photo.md": "binary file (contains NUL bytes), not text"}),
    "invalid-encoding": (_undecodable, {"garbled.txt": "invalid UTF-8 at byte 0, and no declared or detected encoding decodes it"}),
    "empty": (_empty, {"empty.md": "empty file"}),
    "malformed-json": (_malformed_json, {"broken.json": "malformed JSON at line 2, column 16: Expecting ',' delimiter"}),
    "record-without-text": (_record_without_text, {"feed.json#2": "record has no text (no body, text or content field)"}),
    "oversize": (_oversize, {"huge.md": "file is 10,000 bytes, over the 4,000-byte limit"}),
    "unreadable": (_unreadable, {"secret.md": "permission denied: the file is unreadable"}),
    "symlink-loop": (_symlink_loop, {"archive/back": "symlink loop: points back to .",
                                     "loop-a.md": "symlink loop: the link never reaches a file",
                                     "loop-b.md": "symlink loop: the link never reaches a file"}),
    "duplicate": (_duplicate, {"zz-copy.md": "duplicate of dongfeng.md"}),
}


def _assert_earlier_articles_searchable(index_dir: Path, embedder, expected_paths: set[str]) -> None:
    snapshot = LocalBackend(index_dir).open()
    assert expected_paths <= {article.path for article in snapshot.list_articles(0, 1000)[0]}
    hits = Retriever(snapshot, embedder).search("Dongfeng plant Italy", k=3)
    assert snapshot.article(hits[0].article_id).path == "dongfeng.md"
    hits = Retriever(snapshot, embedder).search("flooding rain in Leeds and York", k=3)
    assert snapshot.article(hits[0].article_id).path == "weather.txt"


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_file_is_skipped_and_earlier_articles_stay(kind, three_articles, tmp_path, real_embedder, monkeypatch):
    make_bad, expected = CASES[kind]
    if kind == "unreadable" and os.geteuid() == 0:
        # Root reads any file whatever its mode, so the refusal the OS would give is simulated at the read.
        refuse_reading(monkeypatch, "secret.md")
    index_dir = tmp_path / "index"
    first = build_index(three_articles, index_dir, real_embedder, limits=LIMITS)
    assert (first.added, first.skipped) == (3, ())

    make_bad(three_articles)
    try:
        summary = build_index(three_articles, index_dir, real_embedder, limits=LIMITS)
    finally:
        if kind == "unreadable":
            (three_articles / "secret.md").chmod(0o644)

    assert {item.path: item.reason for item in summary.skipped} == expected
    assert (summary.unchanged, summary.removed, summary.changed) == (3, 0, 0)
    assert summary.added == (1 if kind == "record-without-text" else 0)  # the feed's good record
    _assert_earlier_articles_searchable(index_dir, real_embedder, {"dongfeng.md", "stellantis.md", "weather.txt"})


def test_indexed_file_that_turns_bad_keeps_its_indexed_version(three_articles, tmp_path, real_embedder):
    index_dir = tmp_path / "index"
    build_index(three_articles, index_dir, real_embedder)
    (three_articles / "weather.txt").write_bytes(b"\x00\x01\x02 corrupted on disk")
    summary = build_index(three_articles, index_dir, real_embedder)
    assert [(s.path, s.reason) for s in summary.skipped] == [("weather.txt", "binary file (contains NUL bytes), not text")]
    assert summary.removed == 0
    _assert_earlier_articles_searchable(index_dir, real_embedder, {"dongfeng.md", "stellantis.md", "weather.txt"})


def test_every_kind_at_once(three_articles, tmp_path, real_embedder, monkeypatch):
    index_dir = tmp_path / "index"
    build_index(three_articles, index_dir, real_embedder, limits=LIMITS)
    expected: dict[str, str] = {}
    for kind, (make_bad, reasons) in CASES.items():
        if kind == "unreadable" and os.geteuid() == 0:
            continue  # covered by its own case above, simulated under root
        make_bad(three_articles)
        expected.update(reasons)
    try:
        summary = build_index(three_articles, index_dir, real_embedder, limits=LIMITS)
    finally:
        if (three_articles / "secret.md").exists():
            (three_articles / "secret.md").chmod(0o644)
    assert {item.path: item.reason for item in summary.skipped} == expected
    assert (summary.unchanged, summary.added, summary.removed) == (3, 1, 0)
    _assert_earlier_articles_searchable(index_dir, real_embedder, {"dongfeng.md", "stellantis.md", "weather.txt"})
