"""Serve one Milvus Lite file on a TCP port, so several Byline processes can share it.

    python scripts/milvus_lite_server.py /data/byline.db --port 19530
    BYLINE_STORE=milvus BYLINE_MILVUS_URI=http://127.0.0.1:19530 byline serve

Milvus Lite lets one process open a file. This runs the engine from the `milvus-lite` package on its own,
listening on `--host:--port`, until it gets SIGTERM or Ctrl-C. For one machine; a Milvus standalone or
cluster is the real thing past that.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db_file", type=Path, help="the Milvus Lite file (name ending in .db)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19530)
    args = parser.parse_args()
    os.environ.setdefault("RUST_LOG", "error")  # the engine logs every text-index commit otherwise
    from milvus_lite.server import Server

    server = Server(str(args.db_file.resolve()), f"{args.host}:{args.port}")
    if not (server.init() and server.start()):
        print(f"Milvus Lite did not start on {args.db_file} (is another process using it?)", file=sys.stderr)
        return 1
    print(f"Milvus Lite serving {args.db_file} on http://{args.host}:{args.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
