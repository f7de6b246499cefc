"""BM25 for the local store: built once per generation, saved in bm25s' file format, loaded memory-mapped.

The index is bm25s' "eager" sparse matrix (Lucene BM25: every (term, chunk) pair holds its final score), built
here with numpy in batches so a million chunks never become a million Python lists. Scores are the ones
`bm25s.BM25(k1, b).index(...)` gives for the same tokens (tests/test_keyword.py checks that).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s' default token pattern
BATCH = 20_000  # chunks tokenized per numpy step while building
FILES = {"data": "data.csc.index.npy", "indices": "indices.csc.index.npy", "indptr": "indptr.csc.index.npy"}
VOCAB, PARAMS, TOKENIZER = "vocab.index.json", "params.index.json", "tokenizer.json"


@dataclass(frozen=True)
class KeywordSettings:
    """How chunks are tokenized and scored for BM25; recorded with the index."""

    stemmer: str = "english"  # Snowball language (PyStemmer); "" for none
    stopwords: str = "en"  # bm25s' English stopword list; "" for none
    k1: float = 1.5
    b: float = 0.75


class Tokenizer:
    """Lower-cased words of two or more characters, English stopwords dropped, stemmed (as bm25s does it)."""

    def __init__(self, settings: KeywordSettings = KeywordSettings()):
        from bm25s.stopwords import STOPWORDS_EN

        self._stop = frozenset(STOPWORDS_EN) if settings.stopwords else frozenset()
        self._stem = _stemmer(settings.stemmer)
        self._stems: dict[str, str] = {}

    def tokens(self, text: str) -> list[str]:
        """The terms of a text.

        >>> Tokenizer().tokens("The floods hit Leeds; roads flooded.")
        ['flood', 'hit', 'leed', 'road', 'flood']
        """
        words = [word for word in _WORD.findall(text.lower()) if word not in self._stop]
        if self._stem is None:
            return words
        stems = self._stems
        missing = [word for word in dict.fromkeys(words) if word not in stems]
        if missing:
            stems.update(zip(missing, self._stem(missing)))
        return [stems[word] for word in words]


def build_keyword_index(texts: Iterable[str], folder: Path, settings: KeywordSettings = KeywordSettings()) -> int:
    """Tokenize the texts (in chunk position order), score every (term, chunk) pair, save to `folder`; returns the count."""
    tokenizer = Tokenizer(settings)
    vocab: dict[str, int] = {}
    docs, terms, freqs, lengths = [], [], [], []
    batch: list[str] = []
    offset = 0

    def flush() -> None:
        nonlocal offset
        ids = [[vocab.setdefault(t, len(vocab)) for t in tokenizer.tokens(text)] for text in batch]
        counts = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for row in ids for t in row), dtype=np.int64, count=int(counts.sum()))
        doc = np.repeat(np.arange(offset, offset + len(ids), dtype=np.int64), counts)
        pairs, tf = np.unique(doc << 32 | flat, return_counts=True)
        docs.append((pairs >> 32).astype(np.int32))
        terms.append((pairs & 0xFFFFFFFF).astype(np.int32))
        freqs.append(tf.astype(np.float32))
        lengths.append(counts)
        offset += len(ids)
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    count = offset
    doc = np.concatenate(docs) if docs else np.zeros(0, np.int32)
    term = np.concatenate(terms) if terms else np.zeros(0, np.int32)
    tf = np.concatenate(freqs) if freqs else np.zeros(0, np.float32)
    length = np.concatenate(lengths).astype(np.float32) if lengths else np.zeros(0, np.float32)
    for parts in (docs, terms, freqs):
        parts.clear()  # free the per-batch arrays before the scores are computed
    df = np.bincount(term, minlength=len(vocab)).astype(np.float64)
    idf = np.log(1 + (count - df + 0.5) / (df + 0.5)).astype(np.float32)
    norm = settings.k1 * ((1 - settings.b) + settings.b * length / (length.mean() if count else 1.0))
    scores = idf[term] * tf / (norm[doc] + tf)
    order = np.argsort(term, kind="stable")  # chunks stay ascending within each term
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / FILES["data"], scores[order].astype(np.float32))
    np.save(folder / FILES["indices"], doc[order].astype(np.int32))
    np.save(folder / FILES["indptr"], np.concatenate([[0], np.cumsum(np.bincount(term, minlength=len(vocab)))]).astype(np.int64))
    (folder / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    params = {"k1": settings.k1, "b": settings.b, "delta": 0.5, "method": "lucene", "idf_method": "lucene",
              "dtype": "float32", "int_dtype": "int32", "num_docs": count, "backend": "numpy"}
    (folder / PARAMS).write_text(json.dumps(params, indent=2), encoding="utf-8")
    tokenizer_settings = {"stemmer": settings.stemmer, "stopwords": settings.stopwords}
    (folder / TOKENIZER).write_text(json.dumps(tokenizer_settings), encoding="utf-8")
    return count


class KeywordIndex:
    """A saved BM25 index, memory-mapped through bm25s: only the postings a query touches are read."""

    def __init__(self, folder: Path):
        import bm25s

        saved = json.loads((folder / TOKENIZER).read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer(KeywordSettings(saved["stemmer"], saved["stopwords"]))
        self._bm25 = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        self.count = int(self._bm25.scores["num_docs"])

    def knows(self, term: str) -> bool:
        """Whether a (tokenized) term occurs anywhere in the index."""
        return term in self._bm25.vocab_dict

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every chunk position for the query; None when no word of it is in the index."""
        vocab = self._bm25.vocab_dict
        ids = [vocab[t] for t in self.tokenizer.tokens(query) if t in vocab]
        if not ids:
            return None
        data, indices, indptr = (self._bm25.scores[name] for name in ("data", "indices", "indptr"))
        postings = [(indptr[t], indptr[t + 1]) for t in ids]
        where = np.concatenate([indices[start:end] for start, end in postings])
        weight = np.concatenate([data[start:end] for start, end in postings])
        return np.bincount(where, weights=weight, minlength=self.count).astype(np.float32)


def _stemmer(language: str):
    """PyStemmer's `stemWords` for the language, or None for no stemming."""
    if not language:
        return None
    try:
        import Stemmer
    except ImportError as error:
        raise ImportError("BM25 stemming needs PyStemmer: pip install PyStemmer") from error
    return Stemmer.Stemmer(language).stemWords
