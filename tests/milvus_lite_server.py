"""scripts/milvus_lite_server.py in a subprocess: one Milvus Lite file shared by several processes over gRPC.

Milvus Lite lets one process open a file; tests that need several processes on one Milvus point them all
at this server's http:// URI, the same code path as a Milvus standalone or cluster.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import REPO_ROOT


@contextmanager
def lite_server(db_file: Path) -> Iterator[str]:
    """Serve `db_file` on a free loopback port until the block ends; yields its http:// URI."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(REPO_ROOT / "scripts" / "milvus_lite_server.py"), str(db_file), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"Milvus Lite server exited: {process.stdout.read()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Milvus Lite server did not listen within 60 s"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
        process.stdout.close()
