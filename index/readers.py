"""Readers for each corpus format: a file's bytes in, `Record`s out. Problems raise CorpusFileError(reason).

A reader returns one Record (a one-article format) or a list of (number, Record or reason) (a format that
holds many records, such as JSON). index/corpus.py maps each file suffix to its reader.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from index.decoding import CONTROL_CHARACTERS, decode_text
from index.errors import CorpusFileError
from index.metadata import field_text, normalize_date, split_front_matter

_ATX_HEADING = re.compile(r"\A[ \t]*#{1,6}[ \t]+(?P<title>[^\n]*?)[ \t#]*(?:\n|\Z)")
_SETEXT_HEADING = re.compile(r"\A[ \t]*(?P<title>[^\n]*\S)[ \t]*\n[ \t]*={3,}[ \t]*(?:\n|\Z)")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_BODY_FIELDS = ("body", "text", "content")
_DATE_FIELDS = ("published_at", "published", "date")
# Record field, then the metadata keys it is read from, first found wins.
_TEXT_FIELDS = (
    ("title", ("title", "headline")),
    ("source", ("source", "outlet", "publisher")),
    ("url", ("url", "link")),
    ("author", ("author", "authors", "byline")),
)


@dataclass(frozen=True)
class Record:
    """One article's text and metadata as read from a file, before it gets an id and a path.

    `warnings` name what was left out of it (an impossible date, a title that is a mapping)."""

    text: str
    title: str = ""
    source: str = ""
    url: str = ""
    author: str = ""
    published: str = ""
    warnings: tuple[str, ...] = ()


def clean_text(text: str) -> str:
    """Normalize line ends, drop stray control characters and trailing blanks: the text offsets point into.

    >>> clean_text("  Line one.  \\r\\n\\r\\n\\r\\nLine\\x00 two.\\n")
    'Line one.\\n\\nLine two.'
    """
    text = CONTROL_CHARACTERS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def without_surrogates(record: Record) -> Record:
    """The record with each lone surrogate (from a JSON "\\ud800" escape; UTF-8 can't store one) made U+FFFD.

    >>> without_surrogates(Record(text="Bad \\ud800 text.", title="T\\udfff")) == Record("Bad \\ufffd text.", "T\\ufffd")
    True
    """
    fields = ("text", "title", "source", "url", "author", "published")
    return replace(record, **{name: _LONE_SURROGATE.sub("\ufffd", getattr(record, name)) for name in fields})


def normalized_for_duplicates(text: str) -> str:
    """The text with case and whitespace differences removed, to spot the same article under two names.

    >>> normalized_for_duplicates("Rome  offers\\nSites.") == normalized_for_duplicates("rome offers sites.")
    True
    """
    return " ".join(text.split()).casefold()


def _first(mapping: dict, names: tuple[str, ...]) -> tuple[str, object]:
    """The first non-empty value among the given keys (case-insensitive), with the key it was found under."""
    lowered = {str(key).lower(): value for key, value in mapping.items()}
    for name in names:
        value = lowered.get(name)
        if value not in (None, "", [], {}):
            return name, value
    return names[0], None


def _shown(value: object) -> str:
    """A short repr of a metadata value, for a warning."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def record_from_fields(fields: dict, text: str) -> Record:
    """Build a Record from a metadata mapping (front matter or a JSON record) and the article text.

    A value that can't be used (a mapping as the title, an impossible date) is left out with a warning.

    >>> record_from_fields({"title": {"en": "Rome"}, "date": "2024-13-45"}, "Text.").warnings
    ('title is not text (a dict): left out', "date '2024-13-45' is not a date: left out")
    """
    values, warnings = {}, []
    for name, keys in _TEXT_FIELDS:
        key, value = _first(fields, keys)
        values[name] = field_text(value)
        if values[name] is None:
            warnings.append(f"{key} is not text (a {type(value).__name__}): left out")
            values[name] = ""
    key, value = _first(fields, _DATE_FIELDS)
    published = normalize_date(value)
    if value is not None and not published:
        warnings.append(f"{key} {_shown(value)} is not a date: left out")
    return Record(text=clean_text(text), published=published, warnings=tuple(warnings), **values)


def fallback_source(url: str, folder: str) -> str:
    """The source to show when an article names none: the URL's domain, else the folder it was found in.

    >>> fallback_source("https://www.example.com/a", "wire"), fallback_source("", "wire")
    ('example.com', 'wire')
    """
    host = (urlsplit(url).hostname or "") if url else ""
    return host.removeprefix("www.") or folder


def drop_repeated_title(text: str, title: str) -> str:
    """The text without its first line when that line only repeats the title (a page's <h1>, a PDF's heading).

    >>> drop_repeated_title("Rome courts Dongfeng\\n\\nTalks began.", "Rome courts Dongfeng")
    'Talks began.'
    """
    first_line, _, rest = text.partition("\n")
    if title and " ".join(first_line.split()) == title and rest.strip():
        return rest.strip()
    return text


def split_heading(text: str) -> tuple[str, str]:
    """Split a leading Markdown heading off the text: (title, rest); ("", text) when there is none.

    >>> split_heading("# Rome courts Dongfeng\\n\\nTalks began.")
    ('Rome courts Dongfeng', 'Talks began.')
    >>> split_heading("Talks began in Milan.")
    ('', 'Talks began in Milan.')
    """
    stripped = text.lstrip()
    match = _ATX_HEADING.match(stripped) or _SETEXT_HEADING.match(stripped)
    if not match or not match.group("title").strip():
        return "", text
    return match.group("title").strip(), stripped[match.end():].lstrip()


def parse_markdown(text: str) -> Record:
    """Read a .md/.txt article: optional YAML or TOML front matter, else a leading `# Heading` is the title.

    >>> parse_markdown("+++\\ntitle = 'Rome'\\n+++\\nTalks began.").title
    'Rome'
    """
    fields, body = split_front_matter(text)
    record = record_from_fields(fields, body)
    if not record.title:
        title, rest = split_heading(record.text)
        record = replace(record, title=title, text=rest) if title else record
    if not record.text:
        raise CorpusFileError("no article text after the front matter" if fields else "empty file")
    return record


def parse_html(html: str, url: str = "") -> Record:
    """Extract the main text of an HTML page with trafilatura (menus and footers dropped), with the page's own
    metadata: title, site name, author, date and canonical URL (else `url`, where the page was found)."""
    import trafilatura

    document = trafilatura.bare_extraction(html, url=url or None, with_metadata=True, include_comments=False)
    fields = document.as_dict() if hasattr(document, "as_dict") else (document or {})
    text = clean_text(fields.get("text") or "")
    if not text:
        raise CorpusFileError("no article text found in the HTML page")
    title = field_text(fields.get("title")) or ""
    return Record(
        text=drop_repeated_title(text, title),
        title=title,
        source=field_text(fields.get("sitename")) or "",
        url=field_text(fields.get("url")) or "",
        author=field_text(fields.get("author")) or "",
        published=normalize_date(fields.get("date")),
    )


def _json_error(error: json.JSONDecodeError, line_offset: int = 0) -> str:
    """A one-line reason naming where a JSON document breaks."""
    return f"malformed JSON at line {error.lineno + line_offset}, column {error.colno}: {error.msg}"


def _record_or_reason(value: object) -> Record | str:
    """A JSON value as a Record, or the reason it can't be one."""
    if not isinstance(value, dict):
        return f"record is a JSON {type(value).__name__}, not an object"
    _, body = _first(value, _BODY_FIELDS)
    record = record_from_fields(value, body if isinstance(body, str) else "")
    if not record.text:
        return "record has no text (no body, text or content field)"
    return record


def parse_json_records(text: str, *, lines: bool) -> list[tuple[int, Record | str]]:
    """Read a .json file (a list of records or one record) or a .jsonl file (one record per line).

    Returns (number, Record or reason) per record, numbered from 1 (for JSONL: the line number), so a bad
    line costs only itself. Raises CorpusFileError when the file as a whole isn't usable.

    >>> parse_json_records('{"title": "T", "body": "Text."}', lines=False)
    [(1, Record(text='Text.', title='T', source='', url='', author='', published='', warnings=()))]
    >>> parse_json_records('{"body": "A."}\\n{oops', lines=True)[1]
    (2, 'malformed JSON at line 2, column 2: Expecting property name enclosed in double quotes')
    """
    if lines:
        results: list[tuple[int, Record | str]] = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                results.append((number, _record_or_reason(json.loads(line))))
            except json.JSONDecodeError as error:
                results.append((number, _json_error(error, line_offset=number - 1)))
            except RecursionError:
                results.append((number, f"JSON at line {number} is nested too deeply to read"))
        if not results:
            raise CorpusFileError("empty file")
        return results
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CorpusFileError(_json_error(error)) from error
    except RecursionError as error:
        raise CorpusFileError("JSON is nested too deeply to read") from error
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise CorpusFileError(f"JSON must be a list of records or one record object, not a {type(data).__name__}")
    if not data:
        raise CorpusFileError("JSON list holds no records")
    return [(number, _record_or_reason(value)) for number, value in enumerate(data, start=1)]


def read_markdown(data: bytes) -> Record:
    """The article of a .md or .txt file, whatever its line ends.

    >>> read_markdown(b"# Tunnel reopens\\rTrains run again.\\r").text
    'Trains run again.'
    """
    return parse_markdown(decode_text(data))


def read_html(data: bytes) -> Record:
    """The article of an .html page, its text decoded as the page declares (see decode_bytes)."""
    return parse_html(decode_text(data))


def read_json(data: bytes) -> list[tuple[int, Record | str]]:
    """The records of a .json file: a list of records or one record.

    >>> read_json(b'[{"body": "A."}, {"title": "no body"}]')[1]
    (2, 'record has no text (no body, text or content field)')
    """
    return parse_json_records(decode_text(data), lines=False)


def read_jsonl(data: bytes) -> list[tuple[int, Record | str]]:
    """The records of a .jsonl file, one per line, numbered by line.

    >>> [number for number, _ in read_jsonl(b'{"body": "A."}\\r\\r{"body": "B."}')]
    [1, 3]
    """
    return parse_json_records(decode_text(data), lines=True)
