"""Run build_index with the fake embedder and stop at a chosen point, so a test can kill -9 the process there.

Usage: python tests/slow_build.py CORPUS INDEX_DIR [--pause-at STAGE:DONE] [--embed-delay SECONDS] [--checkpoint-chunks N]

The store is the one BYLINE_STORE names (local by default).

Prints one line per progress call ("STAGE DONE TOTAL"), and "PAUSED STAGE DONE" once it reaches the
pause point, where it sleeps until killed. Without --pause-at it runs to the end and prints "BUILT".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

from conftest import FakeEmbedder  # noqa: E402
from index.build import build_index  # noqa: E402
from index.stores.base import store_backend  # noqa: E402
from server.settings import Settings  # noqa: E402


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, sleeping before each batch so a build takes long enough to interrupt."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def embed(self, texts, progress=None, threads=None):
        time.sleep(self.delay)
        return super().embed(texts, progress)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("--pause-at", default="", help="STAGE:DONE, e.g. writing:2")
    parser.add_argument("--embed-delay", type=float, default=0.0)
    parser.add_argument("--checkpoint-chunks", type=int, default=2048)
    args = parser.parse_args()
    pause_stage, _, pause_done = args.pause_at.partition(":")

    def progress(stage: str, done: int, total: int) -> None:
        print(stage, done, total, flush=True)
        if stage == pause_stage and done >= int(pause_done or 0):
            print("PAUSED", stage, done, flush=True)
            time.sleep(600)

    backend = store_backend(Settings(index_dir=args.index_dir))  # BYLINE_STORE and its settings from the environment
    summary = build_index(args.corpus, args.index_dir, SlowEmbedder(args.embed_delay), progress=progress, backend=backend,
                          checkpoint_chunks=args.checkpoint_chunks)
    print("BUILT", summary.added, summary.changed, summary.removed, summary.chunks_embedded, summary.chunks_resumed, flush=True)


if __name__ == "__main__":
    main()
