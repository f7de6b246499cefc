"""WARC web archives (.warc, .warc.gz), read with warcio: each HTML response record becomes an article."""

from __future__ import annotations

import io
from dataclasses import replace

from index.decoding import decode_bytes
from index.errors import CorpusFileError
from index.formats import MAX_UNPACKED_BYTES
from index.metadata import normalize_date
from index.readers import Record, parse_html

# Records that hold no captured document of their own: nothing to index, nothing to report.
_NOT_DOCUMENTS = frozenset({"warcinfo", "request", "metadata", "conversion", "continuation"})
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _record_article(record) -> Record | str:
    """One response record as a Record (the page through trafilatura, with the WARC's URI and date), or why not."""
    uri = record.rec_headers.get_header("WARC-Target-URI") or ""
    if record.rec_type != "response":
        return f"{record.rec_type} record for {uri or 'no URI'}: not a captured response"
    content_type = (record.http_headers.get_header("Content-Type") if record.http_headers else "") or ""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in _HTML_TYPES:
        return f"response for {uri or 'no URI'} is {media_type or 'of no stated type'}, not HTML"
    payload = record.content_stream().read(MAX_UNPACKED_BYTES + 1)
    if len(payload) > MAX_UNPACKED_BYTES:
        return f"response for {uri or 'no URI'} unpacks to over {MAX_UNPACKED_BYTES:,} bytes, the limit"
    try:
        page = parse_html(decode_bytes(payload), url=uri)
    except CorpusFileError as error:
        return f"response for {uri or 'no URI'}: {error}"
    captured = normalize_date(record.rec_headers.get_header("WARC-Date") or "")
    return replace(page, url=uri or page.url, published=page.published or captured)


def parse_warc(data: bytes) -> list[Record | str]:
    """Read a WARC (gzipped or not): a Record or a reason per captured record, in archive order."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    results: list[Record | str] = []
    try:
        for record in ArchiveIterator(io.BytesIO(data)):
            if record.rec_type not in _NOT_DOCUMENTS:
                results.append(_record_article(record))
    except ArchiveLoadFailed as error:
        raise CorpusFileError(f"not a readable WARC archive after {len(results)} record(s): {error}") from error
    if not results:
        raise CorpusFileError("the WARC archive holds no response records")
    return results
