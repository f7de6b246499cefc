"""How Byline's index is laid out in Milvus: the collections, their rows, the meta records, the filter expressions.

    <prefix>_chunks_d<dim>   a chunk per row: `dense` vector, `sparse` BM25 vector that Milvus' BM25 function
                             makes from `keyword_text` (title + chunk text), article id, source, date, offsets
    <prefix>_articles        an article's text in parts of at most 64 KB, with its metadata and content hash
    <prefix>_meta            records of JSON text, keyed by kind and generation: `live-G-` (the generation's
                             floor, chunk collection and manifest), `sources-G-n` and `dropped-G-n`
    <prefix>_words           the words articles write in lower case (common words, not names), per generation

Layout 2: a row is written once and never changed while a reader may see it (Milvus' upsert is a delete and
an insert, which a concurrent search can see half done). Every row carries the generation that wrote it
(`born`); build G lists the articles it drops or replaces in `dropped-G-n`, and their rows born before G are
out of generation G and every later one. `visible()` is the filter that selects one generation's rows.
Layout 1 (no `layout` in the live record) marked dropped rows in place; it is refused with the rebuild command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from index.stores.local import date_number
from index.types import Article, Filters

LAYOUT = 2  # how rows and meta records are laid out (see above); an index in another layout is rebuilt
MAX_TEXT = 65_535  # bytes in a Milvus VARCHAR
MAX_ID = 256  # characters of an article id
MAX_WORD = 64  # characters of a common word kept (longer lower-case runs are not words)
MAX_HITS = 16_384  # Milvus' cap on limit (+ offset) of one search or query
BATCH = 1_000  # rows per insert, and ids per `in [...]` filter
TIMEOUT = 60.0  # seconds per call: pymilvus otherwise retries some failures for minutes
# bm25s' English stopwords (what the local store drops) and single characters (it keeps words of 2+).
STOPWORDS = sorted(
    {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
     "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
     "will", "with"} | set("abcdefghijklmnopqrstuvwxyz0123456789")
)
# Tuned for parity with the local store's BM25 (bm25s, PyStemmer): results/milvus.md.
ANALYZER = {
    "tokenizer": "standard",
    "filter": ["lowercase", {"type": "stop", "stop_words": STOPWORDS}, {"type": "stemmer", "language": "english"}],
}
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}
DUMMY = [1.0, 0.0]  # Milvus wants a vector in every collection; articles and meta rows carry this one


def record_key(kind: str, generation: int) -> str:
    """The key prefix of a generation's meta records of one kind ("live", "sources", "dropped").

    >>> record_key("sources", 7)
    'sources-000007-'
    """
    return f"{kind}-{generation:06d}-"


def record_generation(key: str) -> int:
    """The generation in a meta record's key.

    >>> record_generation("dropped-000007-000001")
    7
    """
    return int(key.split("-")[1])


def generation_name(generation: int) -> str:
    """The version name of a generation number.

    >>> generation_name(7)
    'v000007'
    """
    return f"v{generation:06d}"


def visible(generation: int, floor: int, dropped: Mapping[int, Iterable[str]] | None = None) -> str:
    """The filter expression for rows of `generation`: born from `floor` up to it, not dropped by a build since.

    `dropped[h]` are the articles build h dropped or replaced: their rows born before h are out of every
    generation from h on; rows born at h or later are their new version.

    >>> visible(3, 1)
    'born >= 1 and born <= 3'
    >>> visible(3, 1, {2: ["rome"], 4: ["sbf"], 1: ["leeds"]})  # build 4 is not part of generation 3, nor 1 of its floor
    'born >= 1 and born <= 3 and (born >= 2 or article_id not in ["rome"])'
    """
    terms = [f"born >= {floor}", f"born <= {generation}"]
    # One `not in` list per build, however long: tested with 2,500 ids (tests/test_milvus_writer.py) and, on
    # Milvus Lite by hand, 50,000 ids of 43 characters (a 2.3 MB expression: a dense and a BM25 search in 1 s).
    for build, ids in sorted((dropped or {}).items()):
        if floor < build <= generation and (ids := list(ids)):
            terms.append(f"(born >= {build} or article_id not in {quoted(ids)})")
    return " and ".join(terms)


def quoted(values: Iterable) -> str:
    """A list literal for a Milvus `in` expression (JSON quoting is what Milvus parses).

    >>> quoted(["O'Reilly", 'The "Verge"'])
    '["O\\'Reilly", "The \\\\"Verge\\\\""]'
    """
    return json.dumps(list(values), ensure_ascii=False)


def filter_expression(filters: Filters | None) -> str:
    """The Milvus expression for search filters ("" when nothing is filtered); sources are exact names.

    >>> filter_expression(Filters(after="2023-10-01", sources=("BBC",)))
    'day >= 20231001 and source in ["BBC"]'
    """
    if filters is None:
        return ""
    terms = []
    if filters.after:
        terms.append(f"day >= {date_number(filters.after)}")
    if filters.before:
        terms.append(f"day <= {date_number(filters.before)} and day > 0")
    if filters.sources:
        terms.append(f"source in {quoted(filters.sources)}")
    return " and ".join(terms)


def fit(text: str, limit: int = MAX_TEXT) -> str:
    """The longest prefix of `text` that fits in `limit` UTF-8 bytes.

    >>> fit("naïve", 3)
    'na'
    """
    data = text.encode("utf-8", "surrogatepass")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def text_parts(text: str, limit: int = MAX_TEXT) -> list[str]:
    """The text cut into pieces of at most `limit` UTF-8 bytes (at least one piece).

    >>> text_parts("abcdé", 3)
    ['abc', 'dé']
    """
    parts = []
    while True:
        part = fit(text, limit)
        parts.append(part)
        text = text[len(part) :]
        if not text:
            return parts


def json_records(values: list[str]) -> list[list[str]]:
    """Strings grouped so that each group's JSON fits a meta record (at least one group).

    >>> json_records(["a", "b"])
    [['a', 'b']]
    """
    records, current, size = [], [], 2
    for value in values:
        length = len(json.dumps(value, ensure_ascii=False).encode("utf-8")) + 2
        if current and size + length > MAX_TEXT - 100:
            records.append(current)
            current, size = [], 2
        current.append(value)
        size += length
    return [*records, current] if current or not records else records


@dataclass(frozen=True)
class Live:
    """A published generation: which rows readers search, where, and the manifest it was built with."""

    generation: int
    floor: int  # rows born before this are not part of it (a full build starts a new floor)
    chunks: str  # the chunk collection (named by dimension)
    manifest: dict  # parsed (and checked) by MilvusBackend.open
    layout: int = LAYOUT

    def to_json(self) -> str:
        """The live record's value.

        >>> Live(2, 1, "byline_chunks_d3", {"dim": 3}).to_json()
        '{"generation": 2, "floor": 1, "chunks": "byline_chunks_d3", "manifest": {"dim": 3}, "layout": 2}'
        """
        return json.dumps(dict(
            generation=self.generation, floor=self.floor, chunks=self.chunks, manifest=self.manifest, layout=self.layout
        ))

    @classmethod
    def from_json(cls, text: str) -> Live:
        """A live record's value read back; one without a layout is of layout 1.

        >>> Live.from_json('{"generation": 2, "floor": 1, "chunks": "c", "manifest": {}}').layout
        1
        """
        data = json.loads(text)
        return cls(data["generation"], data["floor"], data["chunks"], data["manifest"], data.get("layout", 1))


def assemble_articles(rows: Iterable[dict]) -> dict[str, Article]:
    """Articles from their rows, the text's parts joined in order.

    >>> row = dict(article_id="a", part=0, text="ab", title="T", source="", url="", author="", published="", path="")
    >>> assemble_articles([{**row, "part": 1, "text": "c"}, row])["a"].text
    'abc'
    """
    parts: dict[str, list[dict]] = {}
    for row in rows:
        parts.setdefault(row["article_id"], []).append(row)
    articles = {}
    for article_id, pieces in parts.items():
        pieces.sort(key=lambda row: row["part"])
        first = pieces[0]
        text = "".join(piece["text"] for piece in pieces)
        articles[article_id] = Article(
            article_id, text, first["title"], first["source"], first["url"], first["author"], first["published"], first["path"]
        )
    return articles


def ensure_collection(client, name: str, schema, lite: bool = True) -> None:
    """Create a collection with its indexes, unless it exists."""
    if client.has_collection(name, timeout=TIMEOUT):
        return
    from pymilvus import DataType

    index = client.prepare_index_params()
    for field in schema.fields:
        if field.dtype == DataType.SPARSE_FLOAT_VECTOR:
            index.add_index(field.name, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
        elif field.dtype == DataType.FLOAT_VECTOR:
            # Milvus Lite scans every vector (FLAT); on a server Milvus picks the index for its version (AUTOINDEX).
            index.add_index(field.name, index_type="FLAT" if lite or field.name != "dense" else "AUTOINDEX", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong", timeout=TIMEOUT)


def meta_schema(client):
    """The meta collection: the live record and the sources, as JSON text."""
    from pymilvus import DataType as types

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", types.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("value", types.VARCHAR, max_length=MAX_TEXT)
    schema.add_field("v", types.FLOAT_VECTOR, dim=len(DUMMY))
    return schema


def article_schema(client):
    """The articles collection: one row per 64 KB part of an article's text, with its metadata."""
    from pymilvus import DataType as types

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", types.VARCHAR, is_primary=True, max_length=MAX_ID + 32)
    for name, length in [("article_id", MAX_ID), ("text", MAX_TEXT), ("title", MAX_TEXT), ("source", 1024), ("url", MAX_TEXT),
                         ("author", 1024), ("published", 64), ("path", MAX_TEXT), ("content_hash", 128)]:
        schema.add_field(name, types.VARCHAR, max_length=length)
    for name in ("part", "born"):
        schema.add_field(name, types.INT64)
    schema.add_field("v", types.FLOAT_VECTOR, dim=len(DUMMY))
    return schema


def words_schema(client):
    """The words collection: the words some article writes in lower case, a row per word and generation."""
    from pymilvus import DataType as types

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", types.VARCHAR, is_primary=True, max_length=MAX_WORD + 16)
    schema.add_field("word", types.VARCHAR, max_length=MAX_WORD)
    schema.add_field("born", types.INT64)
    schema.add_field("v", types.FLOAT_VECTOR, dim=len(DUMMY))
    return schema


def chunk_schema(client, dim: int):
    """The chunk collection: the dense vector, the BM25 vector Milvus makes from `keyword_text`, scalars to filter."""
    from pymilvus import DataType as types
    from pymilvus import Function, FunctionType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", types.INT64, is_primary=True)
    for name, length in [("article_id", MAX_ID), ("source", 1024), ("published", 64)]:
        schema.add_field(name, types.VARCHAR, max_length=length)
    for name in ("day", "start_at", "end_at", "text_at", "born"):
        schema.add_field(name, types.INT64)
    schema.add_field("keyword_text", types.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True, analyzer_params=ANALYZER)
    schema.add_field("dense", types.FLOAT_VECTOR, dim=dim)
    schema.add_field("sparse", types.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["keyword_text"], output_field_names=["sparse"]))
    return schema
