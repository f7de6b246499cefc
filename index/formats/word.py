"""DOCX articles, read with python-docx: title from the core properties or the first heading."""

from __future__ import annotations

import io
import zipfile

from index.errors import CorpusFileError
from index.formats import MAX_UNPACKED_BYTES
from index.metadata import normalize_date
from index.readers import Record, clean_text, drop_repeated_title

_HEADING_STYLES = ("Title", "Heading")


def _refuse_zip_bomb(data: bytes) -> None:
    """Raise CorpusFileError when the archive's parts would unpack past MAX_UNPACKED_BYTES.

    zipfile never unpacks a part past the size its directory declares, so the declared sizes are a true bound.
    """
    unpacked = sum(part.file_size for part in zipfile.ZipFile(io.BytesIO(data)).infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise CorpusFileError(f"DOCX would unpack to {unpacked:,} bytes, over the {MAX_UNPACKED_BYTES:,}-byte limit")


def parse_docx(data: bytes) -> Record:
    """Read a .docx: paragraphs and table cells as text; title, author and date from its core properties."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        _refuse_zip_bomb(data)
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise CorpusFileError(f"not a readable DOCX (Word) file: {error or type(error).__name__}") from error
    properties = document.core_properties
    title = " ".join((properties.title or "").split())
    paragraphs = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        style = paragraph.style.name if paragraph.style is not None else ""
        if not title and text and style.startswith(_HEADING_STYLES):
            title = " ".join(text.split())
            continue
        paragraphs.append(text)
    for table in document.tables:
        for row in table.rows:
            paragraphs.append(" | ".join(cell.text.strip() for cell in row.cells))
    text = clean_text("\n\n".join(p for p in paragraphs if p))
    if not text:
        raise CorpusFileError("no text in the document body")
    return Record(
        text=drop_repeated_title(text, title),
        title=title,
        author=" ".join((properties.author or "").split()),
        published=normalize_date(properties.created) if properties.created else "",
    )
