"""Generation folders and the pointer file that names the live one, swapped atomically.

Layout of a local index directory::

    CURRENT              one line: the name of the live generation (replaced with os.replace)
    gen-000007/          one complete, immutable generation (see index/stores/local.py)
    gen-000006/          the previous generation, kept so a reader that is still opening it can finish
    .tmp-gen-000008/     a build in progress (or one that was killed); removed by the next build
    .checkpoint/         vectors embedded by an unfinished build, reused by the next one (index/checkpoint.py)
    .lock                flock-ed by the build that holds the directory

A generation is never modified once its folder has its final name, so a build killed at any
point leaves CURRENT naming an intact generation.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

POINTER = "CURRENT"
GENERATION_PREFIX = "gen-"
TMP_PREFIX = ".tmp-"
_GENERATION = re.compile(r"^(?:\.tmp-)?gen-(\d+)$")


def current_generation(index_dir: Path) -> str | None:
    """The live generation's name, or None if nothing was built yet. One small file read."""
    try:
        name = (Path(index_dir) / POINTER).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return name or None


def new_generation_name(index_dir: Path) -> str:
    """A generation name later than every folder already in `index_dir` (finished or not)."""
    numbers = [int(m.group(1)) for p in Path(index_dir).iterdir() if (m := _GENERATION.match(p.name))]
    return f"{GENERATION_PREFIX}{max(numbers, default=0) + 1:06d}"


def publish(index_dir: Path, name: str) -> None:
    """Make generation `name` the live one: write a new pointer file and os.replace it over CURRENT."""
    index_dir = Path(index_dir)
    tmp = index_dir / f"{TMP_PREFIX}{POINTER}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, index_dir / POINTER)
    fsync_dir(index_dir)


def finish_folder(tmp: Path, final: Path, before_rename=None) -> None:
    """fsync every file of a finished temporary folder, then rename it to its final name."""
    for path in tmp.rglob("*"):
        if path.is_file():
            fsync_file(path)
    fsync_dir(tmp)
    if before_rename is not None:
        before_rename()
    os.rename(tmp, final)
    fsync_dir(final.parent)


def collect_garbage(index_dir: Path, keep: Iterable[str | None] | None = None) -> list[str]:
    """Remove unfinished folders, and every generation not in `keep` (None keeps them all).

    Call only while holding the build lock: unfinished folders are then known to be dead builds.
    """
    keep_names = None if keep is None else {name for name in keep if name}
    removed = []
    for entry in sorted(Path(index_dir).iterdir()):
        stale_tmp = entry.name.startswith(TMP_PREFIX)
        old_generation = keep_names is not None and _GENERATION.match(entry.name) and entry.name not in keep_names
        if not (stale_tmp or old_generation):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


def fsync_file(path: Path) -> None:
    """Persist a file's contents."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Persist a directory's entries (new files, renames)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
