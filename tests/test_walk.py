"""The corpus walker never leaves the corpus folder, never opens anything but a regular file, and never blocks."""

from __future__ import annotations

import inspect
import os
import socket
import sys

import pytest

from index.corpus import article_id, read_corpus
from index.errors import CorpusFileError
from index.walk import open_regular_file


def reasons(skipped) -> dict[str, str]:
    return {item.path: item.reason for item in skipped}


@pytest.fixture
def outside(tmp_path):
    """A folder beside the corpus holding a secret article that must never be indexed."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.md").write_text("The vault code is swordfish.\n")
    return folder


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "good.md").write_text("# Ferry\n\nThe ferry runs again.\n")
    return folder


def test_symlinks_out_of_the_corpus_are_not_followed(corpus, outside):
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "secret.md").symlink_to(outside / "secret.md")
    (corpus / "elsewhere").symlink_to(outside, target_is_directory=True)
    (corpus / "sub").mkdir()
    (corpus / "sub" / "relative.md").symlink_to("../../outside/secret.md")
    articles, skipped, _ = read_corpus(corpus)
    assert [a.path for a in articles] == ["good.md"]
    assert reasons(skipped) == {
        "elsewhere": "symlink points outside the corpus",
        "passwd.txt": "symlink points outside the corpus",
        "secret.md": "symlink points outside the corpus",
        "sub/relative.md": "symlink points outside the corpus",
    }


def test_symlinks_inside_the_corpus_are_followed(corpus):
    (corpus / "archive").mkdir()
    (corpus / "archive" / "old.md").write_text("An old story about the harbour.\n")
    (corpus / "latest").symlink_to(corpus / "archive", target_is_directory=True)
    (corpus / "alias.md").symlink_to("good.md")
    articles, skipped, _ = read_corpus(corpus)
    assert [a.path for a in articles] == ["alias.md", "archive/old.md"]
    assert reasons(skipped) == {"good.md": "duplicate of alias.md", "latest": "symlink to a folder already read: archive"}


def test_fifo_socket_and_device_are_skipped_without_opening(corpus, tmp_path):
    os.mkfifo(corpus / "x.txt")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(corpus / "live.md"))
        (corpus / "null.md").symlink_to("/dev/null")  # outside the corpus, so refused as a link
        articles, skipped, _ = read_corpus(corpus)  # would block forever if the FIFO were opened plainly
    assert [a.path for a in articles] == ["good.md"]
    assert reasons(skipped) == {
        "live.md": "a socket, not a regular file",
        "null.md": "symlink points outside the corpus",
        "x.txt": "a FIFO (named pipe), not a regular file",
    }


def test_a_fifo_or_device_given_as_the_corpus_is_skipped(tmp_path):
    os.mkfifo(tmp_path / "feed.jsonl")
    assert reasons(read_corpus(tmp_path / "feed.jsonl").skipped) == {"feed.jsonl": "a FIFO (named pipe), not a regular file"}
    assert reasons(read_corpus("/dev/null").skipped) == {"null": "a character device, not a regular file"}


def test_a_fifo_swapped_in_after_the_walk_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "late.md")
    with pytest.raises(CorpusFileError, match="a FIFO"):
        open_regular_file(str(tmp_path / "late.md"))


def test_file_names_that_are_not_utf8_are_indexed_under_distinct_ids(corpus):
    raw = os.fsencode(corpus)
    with open(raw + b"/bad_\xff\xfe.md", "wb") as file:
        file.write(b"A story filed under a name in no encoding.\n")
    with open(raw + b"/bad_\xfe\xff.md", "wb") as file:
        file.write(b"Another story under another broken name.\n")
    with open(raw + b"/odd_\xff.xyz", "wb") as file:
        file.write(b"x")
    articles, skipped, _ = read_corpus(corpus)
    found = {a.path: a for a in articles}
    assert set(found) == {"bad_\\xfe\\xff.md", "bad_\\xff\\xfe.md", "good.md"}
    assert found["bad_\\xff\\xfe.md"].id == article_id(os.fsdecode(b"bad_\xff\xfe.md"))
    assert len({a.id for a in articles}) == 3
    assert reasons(skipped) == {"odd_\\xff.xyz": "unsupported type .xyz"}


def test_broken_symlink_is_named(corpus):
    (corpus / "gone.md").symlink_to(corpus / "deleted.md")
    assert reasons(read_corpus(corpus).skipped) == {"gone.md": f"broken symlink to {corpus / 'deleted.md'}"}


def test_a_file_turned_into_a_link_out_of_the_corpus_loses_its_indexed_version(corpus, tmp_path, fake_embedder):
    """An unreadable file keeps what was indexed from it; a link out of the folder or a FIFO must not."""
    from index.build import build_index

    (corpus / "passwd.txt").write_text("An article about passwords that was indexed before.\n")
    (corpus / "x.txt").write_text("An article that will become a FIFO.\n")
    assert build_index(corpus, tmp_path / "index", fake_embedder).added == 3
    (corpus / "passwd.txt").unlink()
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "x.txt").unlink()
    os.mkfifo(corpus / "x.txt")
    summary = build_index(corpus, tmp_path / "index", fake_embedder)
    assert (summary.unchanged, summary.removed) == (1, 2)
    assert reasons(summary.skipped) == {"passwd.txt": "symlink points outside the corpus",
                                        "x.txt": "a FIFO (named pipe), not a regular file"}


def test_folders_nested_deeper_than_the_recursion_limit_are_walked(corpus):
    depth = 300
    deepest = corpus.joinpath(*["d"] * depth)
    deepest.mkdir(parents=True)
    (deepest / "deep.md").write_text("The deepest story in the archive.\n")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + depth // 2)  # a walker recursing per folder would overflow
    try:
        articles, skipped, _ = read_corpus(corpus)
    finally:
        sys.setrecursionlimit(limit)
    assert [a.path for a in articles] == ["d/" * depth + "deep.md", "good.md"] and skipped == []


def test_control_characters_in_a_file_name_are_shown_escaped(corpus):
    (corpus / "red\x1b[31m\nname.md").write_text("A story whose file name tries to recolour the terminal.\n")
    (corpus / "bell\x07.xyz").write_text("x")
    articles, skipped, _ = read_corpus(corpus)
    assert [a.path for a in articles] == ["good.md", "red\\x1b[31m\\x0aname.md"]
    assert reasons(skipped) == {"bell\\x07.xyz": "unsupported type .xyz"}
