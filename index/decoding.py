"""Bytes of a text file to text: BOMs, UTF-8, declared and detected charsets, files that mix them, line ends."""

from __future__ import annotations

import re

from index.errors import CorpusFileError

# A declared charset in the first bytes of an HTML page or an XML declaration.
_DECLARED_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)|<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# EBCDIC code pages turn any run of high bytes into letters; a news archive is never in one unless it says so.
_EBCDIC = frozenset({"cp037", "cp273", "cp424", "cp500", "cp875", "cp1026", "cp1140"})


def decode_text(data: bytes) -> str:
    """A text file's text with every line end (CRLF, CR alone, LF) made a LF; see decode_bytes.

    >>> decode_text(b"One.\\rTwo.\\r\\nThree.\\n")
    'One.\\nTwo.\\nThree.\\n'
    """
    return decode_bytes(data).replace("\r\n", "\n").replace("\r", "\n")


def decode_bytes(data: bytes) -> str:
    """Decode a text file: a BOM, else UTF-8, else its declared charset, else per line, else the charset detected.

    >>> decode_bytes("café".encode("utf-8")), decode_bytes(b'<meta charset="latin-1"><p>caf\\xe9')[-4:]
    ('café', 'café')
    >>> decode_bytes("Málaga,\\n".encode("utf-8") + "Málaga.".encode("latin-1"))
    'Málaga,\\nMálaga.'
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
    text = _decode_mixed_lines(data) or _decode_detected(data)
    if text is None:
        raise CorpusFileError(f"{utf8_error}, and no declared or detected encoding decodes it")
    return text


def _decode_mixed_lines(data: bytes) -> str | None:
    """Decode line by line a file whose lines are partly UTF-8 and partly a legacy code page; None if it isn't one.

    A file counts as mixed when at least one line is valid UTF-8 with non-ASCII characters in it: the lines
    that aren't valid UTF-8 are then decoded with the charset detected on those lines alone.
    """
    lines = data.splitlines(keepends=True)
    utf8: list[str | None] = []
    for line in lines:
        try:
            utf8.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            utf8.append(None)
    if not any(text is not None and not text.isascii() for text in utf8):
        return None
    legacy = b"".join(line for line, text in zip(lines, utf8) if text is None)
    encoding = _detect_encoding(legacy) or "cp1252"
    return "".join(text if text is not None else line.decode(encoding, errors="replace") for line, text in zip(lines, utf8))


def _decode_detected(data: bytes) -> str | None:
    """The text in the charset charset-normalizer detects, if that leaves almost no garbage; else None."""
    detected = _detect_encoding(data)
    if not detected:
        return None
    text = data.decode(detected, errors="replace")
    if len(CONTROL_CHARACTERS.findall(text)) + text.count("\ufffd") > len(text) * 0.01:
        return None
    return text


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
