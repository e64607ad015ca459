"""python -m ironcurtain.fakeregistry --root DIR --cert CERT --key KEY [--host H] [--port P]"""

from __future__ import annotations

import argparse
from pathlib import Path

from .server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="fakeregistry")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    args = parser.parse_args()
    serve(args.root, args.host, args.port, args.cert, args.key)


if __name__ == "__main__":
    main()
