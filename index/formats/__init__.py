"""Readers for the binary and multi-article formats (PDF, DOCX, RSS/Atom feeds, WARC): bytes in, `Record`s out."""

# A packed format (DOCX is a zip archive, .warc.gz is gzip) may unpack to at most this many bytes per document:
# otherwise a decompression bomb of a few hundred kilobytes, well under the file-size limit, unpacks to gigabytes.
MAX_UNPACKED_BYTES = 20_000_000
