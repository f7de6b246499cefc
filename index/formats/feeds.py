"""RSS and Atom feed files, read with feedparser: one article per entry."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timezone

from index.errors import CorpusFileError
from index.readers import Record, clean_text

# Elements after which a paragraph ends when an entry's HTML body becomes plain text.
_BLOCKS = ("p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "table")


def html_fragment_text(fragment: str) -> str:
    """Plain text of an HTML fragment: tags and scripts dropped, one paragraph per block element.

    >>> html_fragment_text("<p>Rome  offers <b>sites</b>.</p><script>x()</script><p>Talks&nbsp;began.</p>")
    'Rome offers sites.\\n\\nTalks began.'
    """
    from lxml import etree, html

    if not fragment.strip():
        return ""
    root = html.fragment_fromstring(fragment, create_parent="div")
    etree.strip_elements(root, "script", "style", with_tail=False)
    for element in root.iter(*_BLOCKS):
        element.tail = "\n\n" + (element.tail or "")
    paragraphs = (" ".join(part.split()) for part in re.split(r"\n\s*\n", root.text_content()))
    return clean_text("\n\n".join(p for p in paragraphs if p))


def _entry_date(entry) -> str:
    """The entry's published (else updated) time as ISO 8601 UTC; feedparser has already parsed it."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return ""
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc).isoformat()


def _entry_body(entry) -> str:
    """The fullest body an entry carries: its `content`, else its `summary`, as plain text."""
    contents = [item.get("value", "") for item in entry.get("content", []) if item.get("value")]
    return html_fragment_text(max(contents, key=len) if contents else entry.get("summary", ""))


def _author(entry) -> str:
    """The entry's author(s), from the name fields feedparser fills."""
    names = [a.get("name", "") for a in entry.get("authors", []) if a.get("name")]
    return ", ".join(names) if names else " ".join(entry.get("author", "").split())


def parse_feed(data: bytes) -> list[Record | str]:
    """Read an RSS or Atom file: each entry becomes a Record (source: the feed's title), or the reason it can't."""
    import feedparser

    feed = feedparser.parse(data)
    if not feed.entries:
        problem = f": {feed.bozo_exception}" if feed.get("bozo") else ""
        raise CorpusFileError(f"no feed entries found (not an RSS or Atom feed?){problem}")
    source = " ".join(feed.feed.get("title", "").split())
    records: list[Record | str] = []
    for entry in feed.entries:
        text = _entry_body(entry)
        if not text:
            records.append("feed entry has no content or summary text")
            continue
        records.append(Record(
            text=text,
            title=html_fragment_text(entry.get("title", "")).replace("\n\n", " "),
            source=source,
            url=entry.get("link", ""),
            author=_author(entry),
            published=_entry_date(entry),
        ))
    return records
