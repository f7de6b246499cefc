"""Readers for the binary and multi-article formats (PDF, DOCX, RSS/Atom feeds, WARC): bytes in, `Record`s out."""
