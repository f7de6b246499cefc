"""PDF articles: the text layer, read with pypdfium2. A PDF without one (a scan) is refused with that reason."""

from __future__ import annotations

import re
import zlib

from index.errors import CorpusFileError
from index.formats import MAX_UNPACKED_BYTES
from index.metadata import normalize_date
from index.readers import Record, clean_text, drop_repeated_title

# A PDF date: D:YYYYMMDDHHmmSS followed by Z or +HH'mm' (every part after the year optional).
_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(Z|[+-]\d{2}'?\d{2}'?)?")
# Where a stream's data starts: its dictionary's closing >>, then the stream keyword.
_STREAM_START = re.compile(rb">>\s*stream\r?\n")


def pdf_date(value: str) -> str:
    """An ISO date or datetime for a PDF date string; "" when it is not one.

    >>> pdf_date("D:20240410"), pdf_date("D:20240410083000+02'00'"), pdf_date("yesterday")
    ('2024-04-10', '2024-04-10T08:30:00+02:00', '')
    """
    match = _PDF_DATE.match(value.strip())
    if not match:
        return ""
    year, month, day, hour, minute, second, zone = match.groups()
    day_text = f"{year}-{month or '01'}-{day or '01'}"
    if hour is None:
        return normalize_date(day_text)
    digits = (zone or "").replace("'", "")
    zone = f"{digits[:3]}:{digits[3:5] or '00'}" if len(digits) >= 3 else "+00:00"
    return normalize_date(f"{day_text}T{hour}:{minute or '00'}:{second or '00'}{zone}")


def largest_flate_stream(data: bytes, limit: int) -> int:
    """The bytes the largest FlateDecode stream (other than an image) unpacks to, counted up to just past `limit`.

    pdfium unpacks each page's content stream whole, so a few hundred kilobytes of compressed blanks would cost
    gigabytes; images are left out, as reading the text layer never unpacks them.

    >>> page = b"4 0 obj << /Filter /FlateDecode >> stream\\n" + zlib.compress(b" " * 5000) + b"\\nendstream"
    >>> largest_flate_stream(page, limit=100), largest_flate_stream(page.replace(b"<<", b"<< /Subtype /Image"), 100)
    (101, 0)
    """
    largest = 0
    for match in _STREAM_START.finditer(data):
        head = data[max(0, match.start() - 1000) : match.start()]
        head = head[head.rfind(b"obj") :]  # this stream's own dictionary
        if b"/FlateDecode" not in head or b"/Image" in head:
            continue
        end = data.find(b"endstream", match.end())
        try:
            unpacked = zlib.decompressobj().decompress(data[match.end() : end if end >= 0 else len(data)], limit + 1)
        except zlib.error:
            continue  # pdfium can't unpack it either
        largest = max(largest, len(unpacked))
    return largest


def parse_pdf(data: bytes) -> Record:
    """Read a PDF's text layer, page by page; title, author and date come from its document information."""
    import pypdfium2 as pdfium

    if largest_flate_stream(data, MAX_UNPACKED_BYTES) > MAX_UNPACKED_BYTES:
        raise CorpusFileError(f"a stream in the PDF unpacks to over {MAX_UNPACKED_BYTES:,} bytes, the limit")
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        raise CorpusFileError(f"not a readable PDF: {error}") from error
    try:
        pages = [page.get_textpage().get_text_range() for page in document]
        info = document.get_metadata_dict(skip_empty=True)
    finally:
        document.close()
    text = clean_text("\n\n".join(pages))
    if not text:
        raise CorpusFileError(f"no text layer in any of its {len(pages)} page(s): a scanned PDF needs OCR first")
    title = " ".join(info.get("Title", "").split()) or " ".join(text.partition("\n")[0].split())[:200]
    return Record(
        text=drop_repeated_title(text, title),
        title=title,
        author=" ".join(info.get("Author", "").split()),
        published=pdf_date(info.get("CreationDate", "")),
    )
