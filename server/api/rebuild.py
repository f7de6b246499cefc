"""Background incremental rebuilds: a thread runs `build_index`, then the live Searcher swaps to the new
generation. Until the swap, requests keep being answered from the old index."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from index.errors import BylineError, IndexBusy
from index.types import BuildSummary
from server.settings import Settings


@dataclass(frozen=True)
class RebuildStatus:
    """What the rebuild endpoint reports: the running build's progress and the last build's outcome."""

    running: bool = False
    stage: str = ""
    done: int = 0
    total: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    last_summary: dict | None = None
    last_error: str | None = None
    generation: str | None = None
    builds: int = 0
    chunks_done: int = 0  # chunks embedded (or resumed from a checkpoint) by the running build
    chunks_total: int = 0  # chunks the running build has to embed
    chunks_saved: int = 0  # of those, checkpointed: a build stopped now resumes from here
    eta_s: float | None = None  # seconds of embedding left at the rate seen so far

    def to_dict(self) -> dict:
        """JSON shape of GET /api/index/status."""
        return asdict(self)


def eta_seconds(done: int, total: int, first_done: int, elapsed: float) -> float | None:
    """Seconds until `total` at the rate seen since `first_done` chunks (a resumed build starts above 0).

    >>> eta_seconds(300, 1000, 100, 20.0), eta_seconds(100, 1000, 100, 5.0)
    (70.0, None)
    """
    if done <= first_done or elapsed <= 0:
        return None
    return round((total - done) * elapsed / (done - first_done), 1)


def summary_to_dict(summary: BuildSummary) -> dict:
    """A BuildSummary as JSON, skipped files listed with their reasons.

    >>> summary_to_dict(BuildSummary(added=1))["added"]
    1
    """
    data = asdict(summary)
    data["skipped"] = [{"path": s.path, "reason": s.reason} for s in summary.skipped]
    return data


@dataclass
class Rebuilder:
    """Starts at most one background build at a time and records its progress."""

    settings: Settings
    embedder: object
    searcher: object
    build: Callable[..., BuildSummary] | None = None
    _status: RebuildStatus = field(default_factory=RebuildStatus)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _embedding_since: tuple[float, int] | None = None  # when embedding was first reported, and how far it was

    def status(self) -> RebuildStatus:
        """The current status (an immutable snapshot)."""
        with self._lock:
            return self._status

    def start(self) -> RebuildStatus:
        """Start a rebuild in a thread; raise IndexBusy when one is already running."""
        with self._lock:
            if self._status.running:
                raise IndexBusy("a rebuild is already running; see GET /api/index/status")
            self._status = replace(
                self._status, running=True, stage="starting", done=0, total=0, started_at=time.time(), finished_at=None,
                chunks_done=0, chunks_total=0, chunks_saved=0, eta_s=None,
            )
            self._embedding_since = None
            self._thread = threading.Thread(target=self._run, name="byline-rebuild", daemon=True)
            self._thread.start()
            return self._status

    def start_when_idle(self) -> RebuildStatus:
        """Start a rebuild as soon as none is running: for corpus changes noticed while a build runs."""
        while True:
            self.wait()
            try:
                return self.start()
            except IndexBusy:
                continue  # another caller started one between our wait and start: wait for that one too

    def wait(self, timeout: float | None = None) -> RebuildStatus:
        """Block until the running build (if any) ends; for tests and scripts."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def _progress(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            if stage == "checkpoint":
                self._status = replace(self._status, chunks_saved=done)
                return
            status = replace(self._status, stage=stage, done=done, total=total, eta_s=None)
            if stage == "embedding":
                if self._embedding_since is None:
                    self._embedding_since = (time.monotonic(), done)
                since, first_done = self._embedding_since
                eta = eta_seconds(done, total, first_done, time.monotonic() - since)
                status = replace(status, chunks_done=done, chunks_total=total, eta_s=eta)
            self._status = status

    def _run(self) -> None:
        summary, error = None, None
        try:
            summary = self._build()
            self._progress("swapping", 0, 0)
            self.searcher.reload()
        except BylineError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a crashed build must show in the status, not vanish in a thread
            error = f"unexpected {type(exc).__name__}: {exc}"
        with self._lock:
            self._status = replace(
                self._status,
                running=False,
                stage="done" if error is None else "failed",
                finished_at=time.time(),
                last_summary=summary_to_dict(summary) if summary is not None else self._status.last_summary,
                last_error=error,
                generation=_generation(self.searcher),
                builds=self._status.builds + 1,
            )

    def _build(self) -> BuildSummary:
        if self.build is not None:
            return self.build(
                self.settings.corpus_dir,
                self.settings.index_dir,
                self.embedder,
                self.settings.chunk_settings(),
                limits=self.settings.corpus_limits(),
                progress=self._progress,
            )
        from index.build import build_from_settings

        return build_from_settings(self.settings, self.embedder, progress=self._progress)


def watch_corpus(rebuilder: Rebuilder, settings: Settings) -> Callable[[], None]:
    """Rebuild (incrementally, then swap) after each debounced batch of corpus changes; returns the stop function."""
    from index.watch import watch_in_thread

    return watch_in_thread(
        settings.corpus_dir,
        settings.index_dir,
        lambda paths: rebuilder.start_when_idle(),
        debounce_ms=settings.watch_debounce_ms,
    )


def _generation(searcher) -> str | None:
    """The version the searcher is serving, if it can tell."""
    store = getattr(searcher, "store", None)
    return getattr(store, "version", None)
