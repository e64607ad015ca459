"""A lean load generator for the MCP proxy, run as its own process by bench/policy.py.

`python -m bench._load URL CLIENTS CALLS_PER_CLIENT TOOL PATH...` opens CLIENTS kept-alive HTTP
connections and sends, on each, CALLS_PER_CLIENT `tools/call` requests one after another, byte
for byte as the MCP Python SDK's client sends them (protocol 2026-07-28, JSON-RPC over
Streamable HTTP, `Accept: application/json, text/event-stream`), framed by h11. It prints one
JSON line: calls, seconds, calls_per_s, errors, cpu_ms_per_call (its own CPU).

Why not the SDK's client: it spends about 3 ms of CPU per call, so 16 of them on the same two
cores measure the client, not the proxy. This one spends a fraction of that; every response is
still checked to be a successful tool result.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import h11

PROTOCOL = "2026-07-28"


def request_body(call_id: int, tool: str, path: str) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": call_id,
            "method": "tools/call",
            "params": {
                "name": tool,
                "arguments": {"path": path},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": PROTOCOL,
                    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        },
        separators=(",", ":"),
    ).encode()


async def one_client(
    host: str, port: int, target: str, tool: str, paths: list[str], first: int, count: int
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    conn = h11.Connection(h11.CLIENT)
    errors = 0
    try:
        for n in range(count):
            body = request_body(first + n, tool, paths[(first + n) % len(paths)])
            headers = [
                ("Host", f"{host}:{port}"),
                ("Accept", "application/json, text/event-stream"),
                ("Content-Type", "application/json"),
                ("MCP-Protocol-Version", PROTOCOL),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", tool),
                ("Content-Length", str(len(body))),
            ]
            writer.write(conn.send(h11.Request(method="POST", target=target, headers=headers)))
            writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
            status, chunks = 0, []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        raise ConnectionError("the proxy closed the connection")
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
            result = json.loads(b"".join(chunks)).get("result", {})
            if status != 200 or result.get("isError") is not False:
                errors += 1
            conn.start_next_cycle()
    finally:
        writer.close()
    return errors


async def main(url: str, clients: int, per_client: int, tool: str, paths: list[str]) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    cpu, start = time.process_time(), time.perf_counter()
    errors = await asyncio.gather(
        *(
            one_client(host, port, parts.path, tool, paths, i * per_client, per_client)
            for i in range(clients)
        )
    )
    seconds = time.perf_counter() - start
    calls = clients * per_client
    return {
        "calls": calls,
        "seconds": round(seconds, 3),
        "calls_per_s": round(calls / seconds, 1),
        "errors": sum(errors),
        "cpu_ms_per_call": round((time.process_time() - cpu) * 1000 / calls, 3),
    }


if __name__ == "__main__":
    url, clients, per_client, tool, *paths = sys.argv[1:]
    print(json.dumps(asyncio.run(main(url, int(clients), int(per_client), tool, paths))))
