"""Watch a corpus folder with watchfiles: debounced batches of the files added, changed or removed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

DEBOUNCE_MS = 1600  # a batch closes once the folder has been quiet this long (an editor's save is several events)


def is_corpus_change(path: str, corpus: Path, index_dir: Path) -> bool:
    """Whether a changed path can alter what a build reads: inside the corpus, no hidden part, not the index itself.

    >>> is_corpus_change("/c/news/a.md", Path("/c"), Path("/idx")), is_corpus_change("/c/.a.md.tmp", Path("/c"), Path("/idx"))
    (True, False)
    >>> is_corpus_change("/c/index/CURRENT", Path("/c"), Path("/c/index"))
    False
    """
    changed = Path(path)
    if changed == index_dir or index_dir in changed.parents:
        return False
    try:
        parts = changed.relative_to(corpus).parts
    except ValueError:
        return False
    return bool(parts) and not any(part.startswith(".") or part.endswith("~") for part in parts)


def corpus_changes(
    corpus: Path,
    index_dir: Path,
    *,
    stop: threading.Event,
    debounce_ms: int = DEBOUNCE_MS,
    on_ready: Callable[[], None] | None = None,
) -> Iterator[list[str]]:
    """Yield, until `stop` is set, the sorted corpus-relative paths of each debounced batch of changes.

    `on_ready` runs once the watcher is listening: a build started there can't miss a change made meanwhile,
    because the watcher collects events while it runs and the next batch carries them.
    """
    import watchfiles

    corpus, index_dir = Path(corpus).resolve(), Path(index_dir).resolve()

    def wanted(_change, path: str) -> bool:
        return is_corpus_change(path, corpus, index_dir)

    # rust_timeout bounds how long a set `stop` goes unnoticed when the folder is quiet; the first timeout's
    # empty batch says the watcher is listening.
    for batch in watchfiles.watch(
        corpus, watch_filter=wanted, debounce=debounce_ms, stop_event=stop, rust_timeout=500,
        yield_on_timeout=True, raise_interrupt=False,
    ):
        if on_ready is not None:
            on_ready, ready = None, on_ready
            ready()
        if batch:
            yield sorted({Path(path).relative_to(corpus).as_posix() for _change, path in batch})


def watch_in_thread(
    corpus: Path, index_dir: Path, on_changes: Callable[[list[str]], None], *, debounce_ms: int = DEBOUNCE_MS
) -> Callable[[], None]:
    """Call `on_changes(paths)` from a daemon thread after each batch; returns a function that stops the watch."""
    stop = threading.Event()

    def run() -> None:
        for paths in corpus_changes(corpus, index_dir, stop=stop, debounce_ms=debounce_ms):
            on_changes(paths)

    thread = threading.Thread(target=run, name="byline-watch", daemon=True)
    thread.start()

    def stop_watching() -> None:
        stop.set()
        thread.join(5)

    return stop_watching
