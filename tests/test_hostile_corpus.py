"""A hostile corpus: every kind of bad file at once, through the real `byline index`, and the summary it prints.

The acceptance test builds over 50 kinds of files (links out of the folder, a FIFO, a socket, a device, a
YAML billion-laughs, zip, gzip and PDF decompression bombs, a million one-letter lines, one 19 MB word, a JSON
of too many records, broken encodings and line ends, a lone surrogate, ...) next to good articles, runs
`python -m server.cli index --json` on it in a subprocess with a time limit, and checks that it finishes,
exits 0, names every skipped file with its reason, indexes every good article, makes nothing from outside the
folder searchable and stays under 1 GB.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from conftest import REPO_ROOT, FakeEmbedder

from index.corpus import article_id, read_corpus
from server import cli

BUILD_SECONDS = 600
PEAK_MEMORY_KB = 1024 * 1024  # 1 GB, as VmHWM counts it (KB)

OUTSIDE_SECRET = "The vault code is swordfish and the quartz zebra guards it.\n"
HIDDEN = "Byline doesn't read hidden entries"
ALIAS = "front matter uses a YAML alias at line 3, which could expand without limit; Byline doesn't expand aliases"
BAD_NAME = os.fsdecode(b"bad_\xff\xfe.md")
LIGHTHOUSE_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Lighthouse restored | Coast Courier</title>
<meta property="og:site_name" content="Coast Courier"></head><body><nav><a href="/">Home</a></nav>
<main><article><h1>Lighthouse restored</h1><p>Volunteers finished restoring the Kestrel Point lighthouse on
Saturday after three years of work on its lantern room, brass lens and spiral staircase.</p><p>The lighthouse
keeper's cottage will open to visitors as a small museum of the coast next spring.</p></article></main>
<footer>Copyright Coast Courier</footer></body></html>"""

# Good articles: corpus path -> (its article id key, a question only it answers).
GOOD = {
    "good.md": ("", "ferry terminal opening delayed steel frame"),
    "good.txt": ("", "beekeepers record honey harvest"),
    "good.html": ("", "Kestrel Point lighthouse lantern restored by volunteers"),
    "good.json#1": ("https://example.com/tram", "tram line extension to the airport"),
    "good.json#2": ("https://example.com/library", "library evening opening hours"),
    "cr-only.md": ("", "glacier rail tunnel reopens after avalanche"),
    "mixed-endings.txt": ("", "frost damage in the apple orchards"),
    "latin-mix.txt": ("", "Málaga spring fair flamenco"),
    "toml.md": ("", "offshore wind farm approved"),
    "dict-title.md": ("", "cathedral bells repaired"),
    "bad-date.md": ("", "marathon route changed because of roadworks"),
    "bad_\\xff\\xfe.md": ("", "sourdough bakery competition"),
    "utf16.txt": ("", "observatory astronomers discover a comet"),
    "cp1252.txt": ("", "café du marché fermé à Noël"),
    "archive/dredging.md": ("", "dredging of the harbour canal"),
    "lines.jsonl#1": ("#1", "cyclists bridge closure detour"),
    "lines.jsonl#4": ("#4", "fishermen protest fishing quota"),
    "long-title.md": ("", "museum dinosaur skeleton exhibition"),
    "surrogate.json#1": ("#1", "night bus service returns at weekends"),
}


BLANKS = 25_000_000  # what each decompression bomb unpacks to: past the 20 MB limit on an unpacked document


def docx_bomb() -> bytes:
    """A real DOCX whose document.xml holds 25 MB of blanks: about 25 KB packed."""
    from docx import Document

    packed = io.BytesIO()
    document = Document()
    document.add_paragraph("Bomb.")
    document.save(packed)
    source = zipfile.ZipFile(packed)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            part = source.read(name)
            archive.writestr(name, part.replace(b"Bomb.", b"Bomb." + b" " * BLANKS) if name == "word/document.xml" else part)
    return bomb.getvalue()


def warc_bomb() -> bytes:
    """A gzipped WARC whose one HTML response unpacks to 25 MB."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    archive = io.BytesIO()
    writer = WARCWriter(archive, gzip=True)
    page = b"<html><body><p>Bomb page.</p>" + b" " * BLANKS + b"</body></html>"
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.0")
    writer.write_record(writer.create_warc_record("https://example.com/bomb", "response", payload=io.BytesIO(page),
                                                  http_headers=headers))
    return archive.getvalue()


def pdf_bomb() -> bytes:
    """A one-page PDF whose content stream unpacks to 25 MB."""
    content = zlib.compress(b"BT /F1 12 Tf 72 720 Td (Bomb) Tj ET\n" + b" " * BLANKS)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(content), content)]
    pdf, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return pdf + b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def _article_id(path: str, key: str) -> str:
    """The id the index gives a good article's corpus path (the undecodable name by its raw bytes)."""
    rel = path.split("#")[0].replace("bad_\\xff\\xfe.md", BAD_NAME)
    return article_id(rel, key)


def make_hostile_corpus(corpus: Path, outside: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Fill `corpus` with good articles and every kind of bad file; the skips and warnings a build must report."""
    outside.mkdir()
    (outside / "secret.md").write_text(OUTSIDE_SECRET)
    corpus.mkdir()

    def put(name: str, content: str | bytes) -> Path:
        path = corpus / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    put("good.md", "---\ntitle: Ferry terminal opening delayed\nsource: Coast Courier\npublished: 2024-03-02\n---\n"
                   "The new ferry terminal opens in June, two months late, because the steel frame was delivered late.\n")
    put("good.txt", "Beekeepers in Valdoria report a record honey harvest after a warm, dry summer.\n")
    put("good.html", LIGHTHOUSE_PAGE)
    put("good.json", json.dumps([
        {"title": "Tram line extended", "body": "The tram line will be extended to the airport by 2026.", "url": "https://example.com/tram"},
        {"title": "Library hours", "body": "The central library will stay open until ten in the evening.", "url": "https://example.com/library"},
    ]))
    put("cr-only.md", b"---\rtitle: Tunnel reopens\r---\rThe glacier rail tunnel reopened on Monday,\rtwo weeks after the avalanche.\r")
    put("mixed-endings.txt", b"# Orchard frost\r\n\r\nA late frost damaged the apple orchards.\rGrowers expect a smaller crop.\nPrices may rise.\r\n")
    put("latin-mix.txt", "The Málaga spring fair opened with flamenco.\n".encode() + "La feria de Málaga empezó ayer.\n".encode("latin-1"))
    put("toml.md", '+++\ntitle = "Offshore wind farm approved"\ndate = 2024-05-01\n+++\nThe offshore wind farm was approved by the council.\n')
    put("dict-title.md", "---\ntitle:\n  en: Bells\n  fr: Cloches\n---\n# Cathedral bells repaired\n\nThe cathedral bells rang again after repairs.\n")
    put("bad-date.md", "---\ntitle: Marathon route\npublished: 2024-13-45\n---\nThe marathon route changed because of roadworks.\n")
    put(BAD_NAME, "A sourdough bakery won the regional bread competition.\n")
    put("utf16.txt", "Observatory astronomers discover a new comet near Jupiter.\n".encode("utf-16"))
    put("cp1252.txt", "Le café du marché est fermé à Noël, a déclaré le maire vendredi. Les habitants sont déçus.".encode("cp1252"))
    put("archive/dredging.md", "Dredging of the harbour canal starts next week.\n")
    put("lines.jsonl", "\n".join([json.dumps({"body": "Cyclists face a detour during the bridge closure."}), "{oops",
                                  "[" * 100_000 + "]" * 100_000,
                                  json.dumps({"body": "Fishermen protest the new fishing quota at the port."})]))
    put("long-title.md", f"---\ntitle: {'T' * 2000}\n---\nThe museum opens a dinosaur skeleton exhibition.\n")
    put("surrogate.json", '[{"title": "Night bus \\ud800", "body": "The night bus service returns at weekends."}]')

    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "etc").symlink_to("/etc", target_is_directory=True)
    (corpus / "outside.md").symlink_to(os.path.relpath(outside / "secret.md", corpus))
    (corpus / "outside-folder").symlink_to(outside, target_is_directory=True)
    os.mkfifo(corpus / "x.txt")
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(corpus / "live.md"))
    live.close()  # the socket file stays behind
    rows = ["a: &a [" + ", ".join(['"lol"'] * 10) + "]"]
    rows += [f"{b}: &{b} [" + ", ".join([f"*{a}"] * 10) + "]" for a, b in zip("abcdefgh", "bcdefghi")]
    put("laughs.md", "---\n" + "\n".join(rows) + "\ntitle: *i\n---\nBody.\n")
    put("many.json", json.dumps([{"body": f"Record {i} of far too many."} for i in range(10_001)]))
    put("letters.txt", "a\n" * 1_000_000)
    put("one-word.txt", "x" * 19_000_000)  # under the byte limit; one "word" the tokenizer would choke on
    put("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01")
    put("nul.txt", b"Text with a NUL\x00 byte in it.\n")
    put("empty.md", b"")
    with open(corpus / "huge.txt", "wb") as huge:
        huge.truncate(25_000_000)  # sparse: over the 20 MB limit without using the disk
    (corpus / "loop-a.md").symlink_to("loop-b.md")
    (corpus / "loop-b.md").symlink_to("loop-a.md")
    (corpus / "broken.md").symlink_to("deleted.md")
    (corpus / "back").symlink_to(".", target_is_directory=True)
    (corpus / "latest").symlink_to("archive", target_is_directory=True)
    put("data.xyz", "An unknown format.\n")
    put("README", "No extension.\n")
    put("zz-duplicate.md", (corpus / "good.md").read_text())
    put("secret.md", "A locked article.\n")  # unreadable: the child process is refused at open(), as for mode 000
    put(".hidden.md", "Hidden.\n")
    put(".git/HEAD", "ref: refs/heads/main\n")
    put("deep.json", "[" * 100_000 + "]" * 100_000)
    put("garbled.txt", bytes(range(128, 256)) * 4)
    put("bad-toml.md", "+++\ntitle = \n+++\nText.\n")
    put("broken.pdf", b"%PDF-1.4\n1 0 obj garbage")
    put("bomb.docx", docx_bomb())
    put("bomb.warc.gz", warc_bomb())
    put("bomb.pdf", pdf_bomb())

    skipped = {
        "passwd.txt": "symlink points outside the corpus",
        "etc": "symlink points outside the corpus",
        "outside.md": "symlink points outside the corpus",
        "outside-folder": "symlink points outside the corpus",
        "x.txt": "a FIFO (named pipe), not a regular file",
        "live.md": "a socket, not a regular file",
        "laughs.md": ALIAS,
        "many.json": "holds 10,001 records, over the 10,000-record limit per file",
        "letters.txt": "too long: at least 5,000 chunks, over the 500-chunk limit per article",
        "one-word.txt": "too long: at least 4,750 chunks, over the 500-chunk limit per article",
        "binary.md": "binary file (contains NUL bytes), not text",
        "nul.txt": "binary file (contains NUL bytes), not text",
        "empty.md": "empty file",
        "huge.txt": "file is 25,000,000 bytes, over the 20,000,000-byte limit",
        "loop-a.md": "symlink loop: the link never reaches a file",
        "loop-b.md": "symlink loop: the link never reaches a file",
        "broken.md": "broken symlink to deleted.md",
        "back": "symlink loop: points back to .",
        "latest": "symlink to a folder already read: archive",
        "data.xyz": "unsupported type .xyz",
        "README": "unsupported type (no extension)",
        "zz-duplicate.md": "duplicate of good.md",
        "secret.md": "permission denied: the file is unreadable",
        ".hidden.md": f"hidden file: {HIDDEN}",
        ".git": f"hidden folder: {HIDDEN}",
        "deep.json": "JSON is nested too deeply to read",
        "garbled.txt": "invalid UTF-8 at byte 0, and no declared or detected encoding decodes it",
        "bad-toml.md": "invalid TOML front matter: ",  # the rest is tomllib's wording
        "broken.pdf": "not a readable PDF",
        "bomb.docx": "DOCX would unpack to 25,",
        "bomb.warc.gz#1": "response for https://example.com/bomb unpacks to over 20,000,000 bytes, the limit",
        "bomb.pdf": "a stream in the PDF unpacks to over 20,000,000 bytes, the limit",
        "lines.jsonl#2": "malformed JSON at line 2, column 2: Expecting property name enclosed in double quotes",
        "lines.jsonl#3": "JSON at line 3 is nested too deeply to read",
    }
    try:
        os.mknod(corpus / "device.md", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
        skipped["device.md"] = "a character device, not a regular file"
    except PermissionError:
        pass  # only root may make device nodes
    warnings = {
        "bad-date.md": "published '2024-13-45' is not a date: left out",
        "dict-title.md": "title is not text (a dict): left out",
        "long-title.md": "title is 2,000 characters, over the 1,000-character limit: left out",
    }
    return skipped, warnings


def run_index(corpus: Path, index_dir: Path, log: Path) -> tuple[int, str, int]:
    """`python -m server.cli index --json` in a subprocess, with secret.md refused at open() as a mode-000 file is.

    Returns the exit status, what it printed and the child's own peak resident memory in KB: VmHWM, which the
    child writes as it exits. (wait4's ru_maxrss won't do: Linux keeps the high-water mark across fork and exec,
    so it counts the pytest process's own size at the fork, 2 GB late in a full run.)
    """
    peak_file = log.with_suffix(".peak")
    child = (
        "import atexit, runpy, sys; sys.path.insert(0, 'tests')\n"
        f"atexit.register(lambda: open({str(peak_file)!r}, 'w').write("
        "next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))))\n"
        "from _pytest.monkeypatch import MonkeyPatch\n"
        "from conftest import refuse_reading\n"
        "refuse_reading(MonkeyPatch(), 'secret.md')\n"
        "runpy.run_module('server.cli', run_name='__main__')\n"
    )
    command = [sys.executable, "-c", child, "index", str(corpus), "--index-dir", str(index_dir), "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    printed = log.with_suffix(".out")
    with open(printed, "wb") as out, open(log, "wb") as err:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err)
        deadline = time.monotonic() + BUILD_SECONDS
        while True:
            pid, status, _usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(f"byline index did not finish in {BUILD_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
    return os.waitstatus_to_exitcode(status), printed.read_text(), int(peak_file.read_text().split()[1])


def search_hits(index_dir: Path, query: str, capsys) -> list[dict]:
    """The hits `byline search --json` prints for a query."""
    assert cli.main(["search", query, "--index-dir", str(index_dir), "--k", "5", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.real
def test_hostile_corpus_through_the_real_byline_index(tmp_path, real_embedder, monkeypatch, capsys):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    expected_skips, expected_warnings = make_hostile_corpus(corpus, tmp_path / "outside")
    assert len(expected_skips) + len(expected_warnings) + len(GOOD) >= 40

    status, printed, peak_kb = run_index(corpus, index_dir, tmp_path / "index.log")

    assert status == 0, (tmp_path / "index.log").read_text()[-3000:]
    summary = json.loads(printed)
    skips = {item["path"]: item["reason"] for item in summary["skipped"]}
    assert set(skips) == set(expected_skips)
    for path, reason in expected_skips.items():
        assert skips[path].startswith(reason), path
    assert {item["path"]: item["message"] for item in summary["warnings"]} == expected_warnings
    assert (summary["added"], summary["removed"]) == (len(GOOD), 0)
    assert summary["chunks_total"] == summary["chunks_embedded"] < 100
    assert peak_kb < PEAK_MEMORY_KB, f"peak memory {peak_kb / 1024:.0f} MB"

    monkeypatch.setattr(cli, "_embedder", lambda settings: real_embedder)
    for path, (key, question) in GOOD.items():
        hits = search_hits(index_dir, question, capsys)
        assert hits[0]["article_id"] == _article_id(path, key), (path, hits[0])
    for outside_text in ("root x 0 0 root bin bash daemon nologin", "vault code swordfish quartz zebra"):
        hits = search_hits(index_dir, outside_text, capsys)
        assert not any(word in hit["text"] for hit in hits for word in ("nologin", "root:x", "swordfish"))


def test_byline_index_prints_skips_and_warnings_and_json(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text("---\ntitle: Kept\npublished: 2024-13-45\n---\nThe ferry runs again.\n")
    (corpus / "notes.xyz").write_text("x")
    monkeypatch.setattr(cli, "_embedder", lambda settings: FakeEmbedder())
    command = ["index", str(corpus), "--index-dir", str(tmp_path / "index")]

    assert cli.main(command) == 0
    printed = capsys.readouterr().out
    assert "added 1, changed 0, unchanged 0, removed 0, skipped 1, warnings 1" in printed
    assert "  skipped notes.xyz: unsupported type .xyz\n" in printed
    assert "  warning good.md: published '2024-13-45' is not a date: left out\n" in printed

    assert cli.main([*command, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["added"], summary["unchanged"], summary["chunks_total"]) == (0, 1, 1)
    assert summary["skipped"] == [{"path": "notes.xyz", "reason": "unsupported type .xyz"}]
    assert summary["warnings"] == [{"path": "good.md", "message": "published '2024-13-45' is not a date: left out"}]
    assert set(summary) == {"added", "changed", "unchanged", "removed", "skipped", "warnings", "chunks_embedded",
                            "chunks_resumed", "chunks_total", "seconds"}


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("bomb.docx", docx_bomb, "DOCX would unpack to 25,"),
        ("bomb.warc.gz", warc_bomb, "response for https://example.com/bomb unpacks to over 20,000,000 bytes, the limit"),
        ("bomb.pdf", pdf_bomb, "a stream in the PDF unpacks to over 20,000,000 bytes, the limit"),
    ],
)
def test_decompression_bombs_are_refused_before_they_unpack(tmp_path, name, make, reason):
    data = make()
    assert len(data) < 200_000
    (tmp_path / name).write_bytes(data)
    articles, (skipped,), _ = read_corpus(tmp_path / name)
    assert articles == [] and skipped.reason.startswith(reason)


def test_server_rebuild_of_a_corpus_with_a_fifo_and_a_bad_name_finishes(tmp_path):
    """The server's rebuild used to hang on a FIFO (holding the build lock) or fail on a non-UTF-8 name."""
    from types import SimpleNamespace

    from server.api.rebuild import Rebuilder
    from server.settings import Settings

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    os.mkfifo(corpus / "x.txt")
    with open(os.fsencode(corpus) + b"/bad_\xff.md", "wb") as file:
        file.write(b"A story under a name in no encoding.\n")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    rebuilder = Rebuilder(settings, FakeEmbedder(), SimpleNamespace(reload=lambda: None))
    rebuilder.start()
    status = rebuilder.wait(timeout=60)
    assert (status.running, status.stage, status.last_error) == (False, "done", None)
    assert status.last_summary["added"] == 1
    assert status.last_summary["skipped"] == [{"path": "x.txt", "reason": "a FIFO (named pipe), not a regular file"}]
