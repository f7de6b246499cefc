"""The index on disk: generation folders, a manifest, and a pointer file swapped atomically.

Layout of an index directory::

    CURRENT              one line: the name of the live generation (replaced with os.replace)
    gen-000007/          manifest.json, vectors.faiss (IndexIDMap2 over IndexFlatIP), meta.sqlite
    gen-000006/          the previous generation, kept so a reader that is still loading it can finish
    .tmp-gen-000008/     a build in progress (or one that was killed); removed by the next build
    .lock                flock-ed by the build that holds the directory

A generation is never modified once its folder has its final name, so a build killed at any
point leaves CURRENT naming an intact generation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from index.chunking import ChunkSettings
from index.errors import ArticleNotFound, IndexMismatch, IndexNotBuilt
from index.types import Article, Chunk

FORMAT_NAME = "byline-index"
FORMAT_VERSION = 1
POINTER = "CURRENT"
GENERATION_PREFIX = "gen-"
TMP_PREFIX = ".tmp-"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
META = "meta.sqlite"
_GENERATION = re.compile(r"^(?:\.tmp-)?gen-(\d+)$")


@dataclass(frozen=True)
class Manifest:
    """What a generation was built with and what it holds; checked before an index is used."""

    format_version: int
    embedding_model: str
    dim: int
    chunk_words: int
    chunk_overlap_words: int
    embed_metadata: bool
    built_at: str
    article_count: int
    chunk_count: int
    next_chunk_id: int
    corpus: str = ""  # the corpus path the build read, so callers can tell whether to reuse an index

    @property
    def chunk(self) -> ChunkSettings:
        """The chunk settings of this generation."""
        return ChunkSettings(self.chunk_words, self.chunk_overlap_words, self.embed_metadata)

    def to_json(self) -> str:
        """The manifest file's text, with the format name first.

        >>> '"format": "byline-index"' in Manifest(1, "m", 3, 200, 40, True, "", 0, 0, 0).to_json()
        True
        """
        return json.dumps({"format": FORMAT_NAME, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: Path) -> Manifest:
        """Parse a manifest; an unknown format or version raises IndexMismatch naming `where`."""
        rebuild = f"Rebuild it: byline index --full --index-dir {where.parent}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise IndexMismatch(f"{where} is not valid JSON ({error}). {rebuild}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise IndexMismatch(f"{where} is not a Byline index manifest. {rebuild}")
        if data.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(
                f"index at {where.parent} has format version {data.get('format_version')}; "
                f"this Byline reads version {FORMAT_VERSION}. {rebuild}"
            )
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as error:
            raise IndexMismatch(f"{where} is incomplete ({error}). {rebuild}") from None


@dataclass(frozen=True)
class IndexSnapshot:
    """One generation, loaded fully into memory: nothing on disk is held open."""

    generation: str
    path: Path
    manifest: Manifest
    vectors: object  # faiss.IndexIDMap2; ids are chunk ids
    chunks: tuple[Chunk, ...]  # sorted by id
    articles: dict[str, Article]
    content_hashes: dict[str, str] = field(default_factory=dict, repr=False)  # article id -> content hash
    _by_id: dict[int, Chunk] = field(init=False, repr=False, compare=False)
    _by_article: dict[str, list[Chunk]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_article: dict[str, list[Chunk]] = {}
        for chunk in self.chunks:
            by_article.setdefault(chunk.article_id, []).append(chunk)
        object.__setattr__(self, "_by_id", {chunk.id: chunk for chunk in self.chunks})
        object.__setattr__(self, "_by_article", by_article)

    def chunk(self, chunk_id: int) -> Chunk:
        """The chunk with this id; KeyError if this generation has none."""
        try:
            return self._by_id[int(chunk_id)]
        except KeyError:
            raise KeyError(f"no chunk {chunk_id} in index generation {self.generation}") from None

    def article(self, article_id: str) -> Article:
        """The article with this id; ArticleNotFound if there is none."""
        try:
            return self.articles[article_id]
        except KeyError:
            raise ArticleNotFound(f"no article with id {article_id!r} in the index") from None

    def chunks_of(self, article_id: str) -> list[Chunk]:
        """The chunks of one article, in text order."""
        return list(self._by_article.get(article_id, ()))


def current_generation(index_dir: Path) -> str | None:
    """The live generation's name, or None if nothing was built yet. One small file read."""
    try:
        name = (Path(index_dir) / POINTER).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return name or None


def load_index(
    index_dir: Path,
    *,
    embedding_model: str | None = None,
    dim: int | None = None,
    chunk: ChunkSettings | None = None,
) -> IndexSnapshot:
    """Load the live generation into memory, checking its manifest against what this run uses."""
    index_dir = Path(index_dir)
    for _attempt in range(3):
        generation = current_generation(index_dir)
        if generation is None:
            raise IndexNotBuilt(
                f"no index in {index_dir} yet. Build one: byline index CORPUS_DIR --index-dir {index_dir}"
            )
        try:
            return _load_generation(index_dir, generation, embedding_model, dim, chunk)
        except FileNotFoundError:
            # A build may have swapped in a new generation and removed this one meanwhile: try again.
            if current_generation(index_dir) == generation:
                raise IndexNotBuilt(
                    f"index at {index_dir} names generation {generation}, which is missing or incomplete. "
                    f"Rebuild it: byline index --full --index-dir {index_dir}"
                ) from None
    raise IndexNotBuilt(f"index at {index_dir} kept changing while loading; try again")


def _load_generation(
    index_dir: Path, generation: str, embedding_model: str | None, dim: int | None, chunk: ChunkSettings | None
) -> IndexSnapshot:
    import faiss

    path = index_dir / generation
    manifest = read_manifest(path)
    check_manifest(manifest, index_dir, embedding_model=embedding_model, dim=dim, chunk=chunk)
    if not (path / VECTORS).is_file() or not (path / META).is_file():
        raise FileNotFoundError(path)
    vectors = faiss.read_index(str(path / VECTORS))
    articles, hashes, chunks = _read_meta(path / META)
    if vectors.ntotal != len(chunks) or vectors.d != manifest.dim or len(chunks) != manifest.chunk_count:
        raise IndexMismatch(
            f"index at {index_dir} is inconsistent ({vectors.ntotal} vectors of dim {vectors.d}, "
            f"{len(chunks)} chunks, manifest says {manifest.chunk_count} of dim {manifest.dim}). "
            f"Rebuild it: byline index --full --index-dir {index_dir}"
        )
    return IndexSnapshot(generation, path, manifest, vectors, tuple(chunks), articles, hashes)


def read_manifest(generation_path: Path) -> Manifest:
    """The manifest of one generation folder (FileNotFoundError if it has none)."""
    where = generation_path / MANIFEST
    return Manifest.from_json(where.read_text(encoding="utf-8"), where)


def check_manifest(
    manifest: Manifest,
    index_dir: Path,
    *,
    embedding_model: str | None = None,
    dim: int | None = None,
    chunk: ChunkSettings | None = None,
) -> None:
    """Raise IndexMismatch, saying how to rebuild, if the manifest differs from what this run uses.

    >>> m = Manifest(1, "model-a", 384, 200, 40, True, "", 1, 1, 1)
    >>> check_manifest(m, Path("ix"), embedding_model="model-a", dim=384, chunk=ChunkSettings(200, 40, True))
    """
    rebuild = f"Rebuild it: byline index --full --index-dir {index_dir}"
    if (embedding_model is not None and embedding_model != manifest.embedding_model) or (
        dim is not None and dim != manifest.dim
    ):
        uses = f"{embedding_model or manifest.embedding_model} (dim {dim if dim is not None else '?'})"
        raise IndexMismatch(
            f"index at {index_dir} was built with model {manifest.embedding_model} (dim {manifest.dim}); "
            f"this run uses {uses}. {rebuild}"
        )
    if chunk is not None and chunk != manifest.chunk:
        raise IndexMismatch(
            f"index at {index_dir} was built with chunks of {_describe(manifest.chunk)}; "
            f"this run uses {_describe(chunk)}. {rebuild}"
        )


def _describe(chunk: ChunkSettings) -> str:
    """Chunk settings in words.

    >>> _describe(ChunkSettings(200, 40, False))
    '200 words, 40 overlap, no metadata embedded'
    """
    metadata = "metadata embedded" if chunk.embed_metadata else "no metadata embedded"
    return f"{chunk.words} words, {chunk.overlap_words} overlap, {metadata}"


def _read_meta(path: Path) -> tuple[dict[str, Article], dict[str, str], list[Chunk]]:
    """Read every article and chunk, then close the database so nothing stays open."""
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        raise FileNotFoundError(path) from None
    try:
        rows = connection.execute(
            "SELECT id, text, title, source, url, author, published, path, content_hash FROM articles"
        ).fetchall()
        chunk_rows = connection.execute('SELECT id, article_id, start, "end" FROM chunks ORDER BY id').fetchall()
    except sqlite3.DatabaseError as error:
        if not path.exists():
            raise FileNotFoundError(path) from None  # removed by a newer build while we were loading
        raise IndexMismatch(f"{path} can't be read ({error}). Rebuild it: byline index --full") from None
    finally:
        connection.close()
    articles = {row[0]: Article(*row[:8]) for row in rows}
    hashes = {row[0]: row[8] for row in rows}
    chunks = [Chunk(cid, aid, start, end, articles[aid].text[start:end]) for cid, aid, start, end in chunk_rows]
    return articles, hashes, chunks


def new_generation_name(index_dir: Path) -> str:
    """A generation name later than every folder already in `index_dir` (finished or not)."""
    numbers = [int(m.group(1)) for p in Path(index_dir).iterdir() if (m := _GENERATION.match(p.name))]
    return f"{GENERATION_PREFIX}{max(numbers, default=0) + 1:06d}"


def write_generation(
    index_dir: Path,
    name: str,
    manifest: Manifest,
    vectors,
    articles: Iterable[Article],
    hashes: dict[str, str],
    chunks: Iterable[Chunk],
    progress=None,
) -> Path:
    """Write a generation into `.tmp-NAME`, fsync it, and rename it to NAME. CURRENT is not touched."""
    import faiss

    tmp = Path(index_dir) / f"{TMP_PREFIX}{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    steps = 4
    _report(progress, "writing", 0, steps)
    faiss.write_index(vectors, str(tmp / VECTORS))
    _fsync_file(tmp / VECTORS)
    _report(progress, "writing", 1, steps)
    _write_meta(tmp / META, articles, hashes, chunks)
    _fsync_file(tmp / META)
    _report(progress, "writing", 2, steps)
    (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    _fsync_file(tmp / MANIFEST)
    _fsync_dir(tmp)
    _report(progress, "writing", 3, steps)
    final = Path(index_dir) / name
    os.rename(tmp, final)
    _fsync_dir(Path(index_dir))
    _report(progress, "writing", 4, steps)
    return final


def _write_meta(path: Path, articles: Iterable[Article], hashes: dict[str, str], chunks: Iterable[Chunk]) -> None:
    """Write the articles and chunks tables. Chunk text is not stored: it is article.text[start:end]."""
    connection = sqlite3.connect(path)
    try:
        # No journal: a half-written database lives only in a temporary folder that is thrown away.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.executescript(
            """
            CREATE TABLE articles (id TEXT PRIMARY KEY, text TEXT NOT NULL, title TEXT, source TEXT, url TEXT,
                                   author TEXT, published TEXT, path TEXT, content_hash TEXT NOT NULL);
            CREATE TABLE chunks (id INTEGER PRIMARY KEY, article_id TEXT NOT NULL REFERENCES articles(id),
                                 start INTEGER NOT NULL, "end" INTEGER NOT NULL);
            CREATE INDEX chunks_by_article ON chunks(article_id, start);
            """
        )
        connection.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (a.id, a.text, a.title, a.source, a.url, a.author, a.published, a.path, hashes[a.id])
                for a in articles
            ),
        )
        connection.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?)", ((c.id, c.article_id, c.start, c.end) for c in chunks)
        )
        connection.commit()
    finally:
        connection.close()


def publish(index_dir: Path, name: str) -> None:
    """Make generation `name` the live one: write a new pointer file and os.replace it over CURRENT."""
    index_dir = Path(index_dir)
    tmp = index_dir / f"{TMP_PREFIX}{POINTER}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, index_dir / POINTER)
    _fsync_dir(index_dir)


def collect_garbage(index_dir: Path, keep: Iterable[str | None] | None = None) -> list[str]:
    """Remove unfinished folders, and every generation not in `keep` (None keeps them all).

    Call only while holding the build lock: unfinished folders are then known to be dead builds.
    """
    keep_names = None if keep is None else {name for name in keep if name}
    removed = []
    for entry in sorted(Path(index_dir).iterdir()):
        stale_tmp = entry.name.startswith(TMP_PREFIX)
        old_generation = keep_names is not None and _GENERATION.match(entry.name) and entry.name not in keep_names
        if not (stale_tmp or old_generation):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Persist a directory's entries (new files, renames)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _report(progress, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)
