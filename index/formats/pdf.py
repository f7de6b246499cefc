"""PDF articles: the text layer, read with pypdfium2. A PDF without one (a scan) is refused with that reason."""

from __future__ import annotations

import re

from index.errors import CorpusFileError
from index.metadata import normalize_date
from index.readers import Record, clean_text, drop_repeated_title

# A PDF date: D:YYYYMMDDHHmmSS followed by Z or +HH'mm' (every part after the year optional).
_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(Z|[+-]\d{2}'?\d{2}'?)?")


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


def parse_pdf(data: bytes) -> Record:
    """Read a PDF's text layer, page by page; title, author and date come from its document information."""
    import pypdfium2 as pdfium

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
