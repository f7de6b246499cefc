"""Embedding checkpoints: a build saves what it embedded every few thousand chunks, so a build that is killed
or stopped resumes where it was instead of starting over.

`index_dir/.checkpoint/` holds `key.json` (the model and chunk settings the vectors belong to) and parts
`part-000001.npz` (SHA-1 of each embedded text, and its vector), each written to a temporary name and renamed,
so a kill never leaves half a part. A finished build removes the folder; a build with other settings replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FOLDER = ".checkpoint"
KEY = "key.json"


def text_digest(text: str) -> bytes:
    """The SHA-1 of a text to embed, the checkpoint's key for its vector.

    >>> text_digest("Rome").hex()[:8]
    'da7705ca'
    """
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCheckpoint:
    """Vectors embedded by unfinished builds with the same settings, by text digest."""

    def __init__(self, index_dir: Path, key: dict):
        self.folder = Path(index_dir) / FOLDER
        self._vectors: dict[bytes, np.ndarray] = {}
        self._parts = 0
        saved_key = self._read_key()
        if saved_key != key:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            (self.folder / KEY).write_text(json.dumps(key, sort_keys=True), encoding="utf-8")
            return
        for part in sorted(self.folder.glob("part-*.npz")):
            with np.load(part) as saved:
                self._vectors.update(zip((row.tobytes() for row in saved["digests"]), saved["vectors"]))
            self._parts += 1

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, digest: bytes) -> np.ndarray | None:
        """The saved vector of a text, or None."""
        return self._vectors.get(digest)

    def save(self, digests: Sequence[bytes], vectors: np.ndarray) -> None:
        """Add one part; it is on disk (renamed into place) when this returns."""
        if not len(digests):
            return
        self._parts += 1
        final = self.folder / f"part-{self._parts:06d}.npz"
        tmp = self.folder / f".tmp-part-{self._parts:06d}.npz"
        with open(tmp, "wb") as handle:
            # Digests as rows of bytes: numpy's "S20" would drop a digest's trailing zero bytes.
            rows = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), -1)
            np.savez(handle, digests=rows, vectors=np.asarray(vectors, dtype=np.float32))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        self._vectors.update(zip(digests, vectors))

    def clear(self) -> None:
        """Remove the checkpoint (the build it served is published)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self._vectors.clear()

    def _read_key(self) -> dict | None:
        try:
            return json.loads((self.folder / KEY).read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None
