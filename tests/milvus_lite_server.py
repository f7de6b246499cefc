"""A Milvus Lite engine serving one file on a loopback port, so several processes can share it over gRPC.

Milvus Lite lets one process open a file; tests that need several processes on one Milvus point them all
at this server's http:// URI, the same code path as a Milvus standalone or cluster.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def lite_server(db_file: Path) -> Iterator[str]:
    """Run Milvus Lite's engine on `db_file`, listening on a free loopback port; yields its http:// URI."""
    from milvus_lite.server import Server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.setdefault("RUST_LOG", "error")
    server = Server(str(db_file), f"127.0.0.1:{port}")
    if not (server.init() and server.start()):
        raise RuntimeError(f"Milvus Lite did not start on {db_file}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
