"""A tiny MCP door for the builtin agent's unit tests: initialize, tools/list, tools/call, over
HTTP in a thread. Each tool's answer is a function of its arguments (tests choose them)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], dict[str, Any]]


def text(value: str, is_error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": is_error}


class Door:
    def __init__(self, tools: list[dict[str, Any]], answers: dict[str, Answer]) -> None:
        self.tools = tools
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sessions = 0
        self.url = ""


@contextmanager
def serve(door: Door) -> Iterator[Door]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            session = self.headers.get("mcp-session-id")
            method = body.get("method")
            if method == "initialize":
                door.sessions += 1
                self._reply(200, {"protocolVersion": "2025-06-18", "capabilities": {}}, body, "s1")
                return
            if session != "s1":
                self.send_response(400)
                self.end_headers()
                return
            if "id" not in body:
                self.send_response(202)
                self.end_headers()
                return
            if method == "tools/list":
                self._reply(200, {"tools": door.tools}, body)
            elif method == "tools/call":
                name, args = body["params"]["name"], body["params"]["arguments"]
                door.calls.append((name, args))
                self._reply(200, door.answers[name](args), body)

        def _reply(self, status: int, result: Any, request: dict, session: str = "s1") -> None:
            raw = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.send_header("mcp-session-id", session)
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    door.url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
    try:
        yield door
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
