"""`python -m ironcurtain.fakemcp [--http PORT]`: the reference MCP backend, on stdio (a proxy
backend) or on Streamable HTTP at http://127.0.0.1:PORT/mcp (the conformance suite's target;
port 0 picks one, and the line `fakemcp: serving on URL` says which, once it listens)."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from .server import build


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ironcurtain.fakemcp")
    parser.add_argument("--http", type=int, default=None, help="serve HTTP on this port")
    parser.add_argument("--files", type=Path, default=None, help="serve FILES/{name} by file URI")
    args = parser.parse_args()
    server = build(args.files)
    if args.http is None:
        anyio.run(server.run_stdio_async)
        return
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", args.http))
    sock.listen()
    web = uvicorn.Server(
        uvicorn.Config(server.streamable_http_app(host="127.0.0.1"), log_level="warning")
    )

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(web.serve, [sock])
            while not web.started:  # polled: uvicorn offers no start event
                await anyio.sleep(0.01)
            print(f"fakemcp: serving on http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)

    anyio.run(serve)


if __name__ == "__main__":
    main()
