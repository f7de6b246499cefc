"""Find the files of a corpus folder without ever leaving it, opening anything but a regular file, or blocking.

Every entry is accounted for: a regular file of a supported type is yielded, everything else (hidden
entries, unsupported types, FIFOs, sockets, devices, symlinks that leave the folder, loops, broken links,
folders that can't be listed) becomes a Skipped with its reason.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterator

from index.errors import CorpusFileError
from index.types import Refused, Skipped

# Control characters in a file name would move the cursor or recolour a terminal when the summary is printed.
_CONTROL_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f]")
_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def shown_path(path: str) -> str:
    """A path as it can be printed and stored: bytes that aren't UTF-8, and control characters, become \\xNN escapes.

    >>> shown_path(os.fsdecode(b"bad_\\xff.md")), shown_path("café.md"), shown_path("two\\nlines\\x1b[31m.md")
    ('bad_\\\\xff.md', 'café.md', 'two\\\\x0alines\\\\x1b[31m.md')
    """
    shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL_IN_NAME.sub(lambda match: f"\\x{ord(match.group()):02x}", shown)


def kind_of(mode: int) -> str:
    """What a file mode names, for a skip reason.

    >>> kind_of(stat.S_IFIFO | 0o644), kind_of(stat.S_IFREG | 0o644)
    ('a FIFO (named pipe)', 'a regular file')
    """
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def inside(path: str, folder: str) -> bool:
    """Whether the resolved `path` is `folder` or lies under it.

    >>> inside("/corpus/a/b.md", "/corpus"), inside("/corpus-2/b.md", "/corpus"), inside("/etc/passwd", "/corpus")
    (True, False, False)
    """
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def walk_corpus(root: str, unsupported: Callable[[str], str | None], skipped: list[Skipped]) -> Iterator[tuple[str, str]]:
    """Yield (corpus-relative posix path, resolved path) for each regular file under `root` that Byline reads.

    `unsupported(name)` says why a file name can't be read (its type), or None when it can. Relative paths
    keep undecodable bytes as surrogates (see os.fsdecode); Skipped paths are shown_path()s.
    """
    top = os.path.realpath(root)
    visited = {top}

    def skip(full: str, reason: str, kind: type[Skipped] = Skipped) -> None:
        skipped.append(kind(shown_path(_relative(root, full)), reason))

    # A stack of (folder, its resolved path), not recursion: folders nested thousands deep must not overflow.
    folders = [(root, top)]
    while folders:
        folder, here = folders.pop()
        try:
            with os.scandir(folder) as entries:
                names = sorted(entry.name for entry in entries)
        except OSError as error:
            skip(folder, f"can't list folder: {error.strerror or error}")
            continue
        subfolders = []
        for name in names:
            full = os.path.join(folder, name)
            if name.startswith("."):
                skip(full, f"hidden {'folder' if os.path.isdir(full) else 'file'}: Byline doesn't read hidden entries")
                continue
            found = _follow(full, os.path.join(here, name))
            if isinstance(found, str):
                skip(full, found)
            elif not inside(found[1], top):
                skip(full, "symlink points outside the corpus", Refused)
            elif stat.S_ISDIR(found[0].st_mode):
                real = found[1]
                if real in visited:
                    is_loop = here == real or here.startswith(real + os.sep)
                    what = "symlink loop: points back to" if is_loop else "symlink to a folder already read:"
                    skip(full, f"{what} {shown_path(_relative(top, real)) or '.'}")
                    continue
                visited.add(real)
                subfolders.append((full, real))
            elif not stat.S_ISREG(found[0].st_mode):
                skip(full, f"{kind_of(found[0].st_mode)}, not a regular file", Refused)
            elif unsupported(name):
                skip(full, unsupported(name))
            else:
                yield _relative(root, full), found[1]
        folders.extend(reversed(subfolders))


def _follow(path: str, resolved_if_no_link: str) -> tuple[os.stat_result, str] | str:
    """The stat and resolved path of what `path` names, or why it can't be read: a loop, a broken link.

    Only a symlink is resolved (os.path.realpath costs a call per folder of the path); anything else is
    where its resolved folder says."""
    try:
        status = os.lstat(path)
        if not stat.S_ISLNK(status.st_mode):
            return status, resolved_if_no_link
        status = os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop: the link never reaches a file"
        if error.errno == errno.ENOENT and os.path.islink(path):
            return f"broken symlink to {shown_path(os.readlink(path))}"
        return f"can't read: {error.strerror or error}"
    return status, os.path.realpath(path)


def open_regular_file(path: str) -> int:
    """Open a file for reading without blocking, and only if it is a regular file: the fd, or CorpusFileError.

    O_NONBLOCK guards against a FIFO swapped in after the walk's stat; fstat then refuses it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise CorpusFileError(f"{kind_of(mode)}, not a regular file")
    return fd


def _relative(root: str, path: str) -> str:
    """The corpus-relative posix path of `path` (absolute paths outside the corpus stay as they are)."""
    try:
        relative = os.path.relpath(path, root).replace(os.sep, "/")
    except ValueError:
        return path
    if relative == ".":
        return ""
    return path if relative == ".." or relative.startswith("../") else relative
