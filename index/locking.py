"""The build lock: one build at a time per index directory, released by the kernel if the builder dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from index.errors import BylineError, IndexBusy

LOCK_NAME = ".lock"


@contextmanager
def build_lock(index_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on `index_dir/.lock`; raise IndexBusy (or block, if `wait`) while another holds it.

    flock dies with its process, so a build killed with -9 never leaves a stale lock behind;
    the file itself stays and is simply locked again by the next build.
    """
    if index_dir.exists() and not index_dir.is_dir():
        raise BylineError(f"index directory {index_dir} is a file, not a folder; choose another --index-dir")
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            who = f"another build (pid {holder})" if holder else "another build"
            raise IndexBusy(f"{who} is updating {index_dir}; wait for it or try again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """The pid the lock holder wrote into the lock file, or "" if it hasn't yet."""
    return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
