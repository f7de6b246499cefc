"""Readers for each corpus format: bytes or text in, `Record`s out. Problems raise CorpusFileError(reason)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

from index.errors import CorpusFileError

# A declared charset in the first bytes of an HTML page or an XML declaration.
_DECLARED_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)|<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
_ATX_HEADING = re.compile(r"\A[ \t]*#{1,6}[ \t]+(?P<title>[^\n]*?)[ \t#]*(?:\n|\Z)")
_SETEXT_HEADING = re.compile(r"\A[ \t]*(?P<title>[^\n]*\S)[ \t]*\n[ \t]*={3,}[ \t]*(?:\n|\Z)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BODY_FIELDS = ("body", "text", "content")
_DATE_FIELDS = ("published_at", "published", "date")
# EBCDIC code pages turn any run of high bytes into letters; a news archive is never in one unless it says so.
_EBCDIC = frozenset({"cp037", "cp273", "cp424", "cp500", "cp875", "cp1026", "cp1140"})


@dataclass(frozen=True)
class Record:
    """One article's text and metadata as read from a file, before it gets an id and a path."""

    text: str
    title: str = ""
    source: str = ""
    url: str = ""
    author: str = ""
    published: str = ""


def clean_text(text: str) -> str:
    """Normalize line ends, drop stray control characters and trailing blanks: the text offsets point into.

    >>> clean_text("  Line one.  \\r\\n\\r\\n\\r\\nLine\\x00 two.\\n")
    'Line one.\\n\\nLine two.'
    """
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def normalized_for_duplicates(text: str) -> str:
    """The text with case and whitespace differences removed, to spot the same article under two names.

    >>> normalized_for_duplicates("Rome  offers\\nSites.") == normalized_for_duplicates("rome offers sites.")
    True
    """
    return " ".join(text.split()).casefold()


def normalize_date(value: object) -> str:
    """An ISO 8601 date (or datetime, when a time is given) for a date in any common form; "" if unparseable.

    >>> normalize_date("April 10, 2024"), normalize_date("2023-11-27T08:45:59Z"), normalize_date("soon")
    ('2024-04-10', '2023-11-27T08:45:59+00:00', '')
    """
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            return ""
    if not isinstance(value, str) or not value.strip():
        return ""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.date().isoformat() if len(text) <= 10 else parsed.isoformat()
    except ValueError:
        pass
    from dateutil import parser as date_parser

    try:
        # Parsing with two different default times tells whether the string carried a time of its own.
        first = date_parser.parse(text, default=datetime(2000, 1, 1, 0, 0, 0))
        second = date_parser.parse(text, default=datetime(2000, 1, 1, 13, 31, 17))
    except (ValueError, OverflowError, TypeError):
        return ""
    return first.isoformat() if first == second else first.date().isoformat()


def _field(value: object) -> str:
    """A metadata value as one clean line of text (lists are joined, None is empty)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_field(item) for item in value if item is not None)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return " ".join(str(value).split())


def _first(mapping: dict, names: tuple[str, ...]) -> object:
    """The first non-empty value among the given keys (case-insensitive)."""
    lowered = {str(key).lower(): value for key, value in mapping.items()}
    for name in names:
        value = lowered.get(name)
        if value not in (None, "", [], {}):
            return value
    return None


def record_from_fields(fields: dict, text: str) -> Record:
    """Build a Record from a metadata mapping (front matter or a JSON record) and the article text."""
    return Record(
        text=clean_text(text),
        title=_field(_first(fields, ("title", "headline"))),
        source=_field(_first(fields, ("source", "outlet", "publisher"))),
        url=_field(_first(fields, ("url", "link"))),
        author=_field(_first(fields, ("author", "authors", "byline"))),
        published=normalize_date(_first(fields, _DATE_FIELDS)),
    )


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
    """Read a .md/.txt article: optional YAML front matter, else a leading `# Heading` becomes the title."""
    import frontmatter
    import yaml

    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        # The YAML handed to the parser keeps the line break after the opening ---, so lines count as in the file.
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CorpusFileError(f"invalid YAML front matter{where}") from error
    except (ValueError, TypeError) as error:  # YAML syntax that builds an impossible value, e.g. 2024-13-45
        raise CorpusFileError(f"invalid YAML front matter: {error}") from error
    fields = dict(post.metadata) if isinstance(post.metadata, dict) else {}
    body = post.content
    if not _field(_first(fields, ("title", "headline"))):
        title, body = split_heading(body)
        if title:
            fields["title"] = title
    record = record_from_fields(fields, body)
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
    title = _field(fields.get("title"))
    return Record(
        text=drop_repeated_title(text, title),
        title=title,
        source=_field(fields.get("sitename")),
        url=_field(fields.get("url")),
        author=_field(fields.get("author")),
        published=normalize_date(fields.get("date")),
    )


def _json_error(error: json.JSONDecodeError, line_offset: int = 0) -> str:
    """A one-line reason naming where a JSON document breaks."""
    return f"malformed JSON at line {error.lineno + line_offset}, column {error.colno}: {error.msg}"


def _record_or_reason(value: object) -> Record | str:
    """A JSON value as a Record, or the reason it can't be one."""
    if not isinstance(value, dict):
        return f"record is a JSON {type(value).__name__}, not an object"
    body = _first(value, _BODY_FIELDS)
    record = record_from_fields(value, body if isinstance(body, str) else "")
    if not record.text:
        return "record has no text (no body, text or content field)"
    return record


def parse_json_records(text: str, *, lines: bool) -> list[tuple[int, Record | str]]:
    """Read a .json file (a list of records or one record) or a .jsonl file (one record per line).

    Returns (number, Record or reason) per record, numbered from 1 (for JSONL: the line number).
    Raises CorpusFileError when the file as a whole isn't usable.

    >>> parse_json_records('{"title": "T", "body": "Text."}', lines=False)
    [(1, Record(text='Text.', title='T', source='', url='', author='', published=''))]
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
        if not results:
            raise CorpusFileError("empty file")
        return results
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CorpusFileError(_json_error(error)) from error
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise CorpusFileError(f"JSON must be a list of records or one record object, not a {type(data).__name__}")
    if not data:
        raise CorpusFileError("JSON list holds no records")
    return [(number, _record_or_reason(value)) for number, value in enumerate(data, start=1)]


def decode_bytes(data: bytes) -> str:
    """Decode a text file: a BOM, else UTF-8, else its declared charset, else the charset detected.

    >>> decode_bytes("café".encode("utf-8")), decode_bytes(b'<meta charset="latin-1"><p>caf\\xe9')[-4:]
    ('café', 'café')
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data[:8192]:
        raise CorpusFileError("binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        utf8_error = f"invalid UTF-8 at byte {error.start}"
    declared = _DECLARED_CHARSET.search(data[:4096])
    if declared:
        name = (declared.group(1) or declared.group(2)).decode("ascii")
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            pass
    detected = _detect_encoding(data)
    if detected:
        text = data.decode(detected, errors="replace")
        if len(_CONTROL.findall(text)) + text.count("\ufffd") <= len(text) * 0.01:
            return text
    raise CorpusFileError(f"{utf8_error}, and no declared or detected encoding decodes it")


def _detect_encoding(data: bytes) -> str | None:
    """charset-normalizer's guess, preferring Windows-1252 among equally good Western code pages."""
    from charset_normalizer import from_bytes

    matches = [match for match in from_bytes(data) if match.encoding not in _EBCDIC]
    if not matches:
        return None
    best = matches[0]
    ties = [m for m in matches if m.chaos == best.chaos and m.coherence == best.coherence]
    if any(m.encoding == "cp1252" or "cp1252" in m.could_be_from_charset for m in ties):
        return "cp1252"
    return best.encoding
