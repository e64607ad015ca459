"""`python relay.py --target URL --prefix ref__`: the conformance test's own name mapping.

The suite calls the reference server's tools and prompts by their own names (`test_simple_text`);
behind the proxy they are `ref__test_simple_text`. This relay, in front of the proxy, renames
`tools/call`, `prompts/get` and a prompt's `completion/complete` to the prefixed names and
strips the prefix from `tools/list` and `prompts/list` answers; everything else (headers,
Host, status, bodies) passes as it is, an SSE answer streamed as it comes. It holds no
policy: the proxy decides every call.
Prints `relay: serving on URL`.
"""

from __future__ import annotations

import argparse
import json
import socket
from typing import Any

import anyio
import httpx
import uvicorn

_PASS = ("content-type", "accept", "mcp-session-id", "mcp-protocol-version", "origin", "host")


def _rename_request(body: bytes, prefix: str) -> bytes:
    try:
        message = json.loads(body)
    except ValueError:
        return body
    if not isinstance(message, dict) or not isinstance(message.get("params"), dict):
        return body
    params = message["params"]
    if message.get("method") == "completion/complete" and isinstance(params.get("ref"), dict):
        params = params["ref"]  # a prompt's argument: the prompt by its prefixed name
    renamed = message.get("method") in ("tools/call", "prompts/get", "completion/complete")
    if renamed and isinstance(params.get("name"), str):
        params["name"] = prefix + params["name"]
        return json.dumps(message).encode()
    return body


def _rename_response(body: bytes, prefix: str) -> bytes:
    try:
        message = json.loads(body)
    except ValueError:
        return body
    result = message.get("result") if isinstance(message, dict) else None
    if not isinstance(result, dict):
        return body
    for key in ("tools", "prompts"):
        for item in result.get(key) or ():
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                item["name"] = item["name"].removeprefix(prefix)
    return json.dumps(message).encode()


def app(target: str, prefix: str) -> Any:
    client = httpx.AsyncClient(timeout=60)

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {
            k.decode(): v.decode() for k, v in scope["headers"] if k.decode().lower() in _PASS
        }
        request = client.build_request(
            scope["method"], target, headers=headers, content=_rename_request(body, prefix)
        )
        reply = await client.send(request, stream=True)
        try:
            passed = [
                (k.encode(), v.encode())
                for k, v in reply.headers.items()
                if k.lower() in ("content-type", "mcp-session-id", "allow")
            ]
            start = {"type": "http.response.start", "status": reply.status_code}
            if reply.headers.get("content-type", "").startswith("text/event-stream"):
                # Streamed as it comes: a server's request on it must reach the client mid-call.
                await send({**start, "headers": passed})
                async for chunk in reply.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            out = await reply.aread()
            if reply.headers.get("content-type", "").startswith("application/json"):
                out = _rename_response(out, prefix)
            passed.append((b"content-length", str(len(out)).encode()))
            await send({**start, "headers": passed})
            await send({"type": "http.response.body", "body": out})
        finally:
            await reply.aclose()

    return asgi


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    web = uvicorn.Server(uvicorn.Config(app(args.target, args.prefix), log_level="warning"))

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(web.serve, [sock])
            while not web.started:  # polled: uvicorn offers no start event
                await anyio.sleep(0.01)
            print(f"relay: serving on http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)

    anyio.run(serve)


if __name__ == "__main__":
    main()
