"""Serve a directory the way registries do, over TLS: PEP 691 pages, npm packuments, apt files.

Layout under the root (written by the tests): `simple/<project>/index.json` (PEP 691 JSON,
served for `/simple/<project>/`), `npm/<name>.json` (a packument, served for `/npm/<name>` and
`/npm/@scope%2fname`), and any other file as is (wheels, tarballs, `debian/dists/...`,
`debian/pool/...`). Writes are answered 201 as a real registry would accept a publish, and every
request is printed (`fakeregistry: METHOD PATH`), so a test sees whether a write ever arrived.
"""

from __future__ import annotations

import http.server
import ssl
from pathlib import Path
from urllib.parse import unquote

PEP691 = "application/vnd.pypi.simple.v1+json"


def make_handler(root: Path) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _file(self) -> tuple[Path, str] | None:
            path = unquote(self.path.partition("?")[0])
            if ".." in path.split("/"):
                return None
            if path.startswith("/simple/"):
                project = path[len("/simple/") :].strip("/")
                return root / "simple" / project / "index.json", PEP691
            if path.startswith("/npm/") and not path.endswith(".tgz"):
                return root / "npm" / (path[len("/npm/") :] + ".json"), "application/json"
            kind = "application/octet-stream"
            return root / path.lstrip("/"), kind

        def _serve(self, body: bool) -> None:
            print(f"fakeregistry: {self.command} {self.path}", flush=True)
            found = self._file()
            if found is None or not found[0].is_file():
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            data = found[0].read_bytes()
            self.send_response(200)
            self.send_header("content-type", found[1])
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve(True)

        def do_HEAD(self) -> None:
            self._serve(False)

        def _write(self) -> None:
            print(f"fakeregistry: {self.command} {self.path}", flush=True)
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            data = b'{"ok":true}'
            self.send_response(201)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = do_DELETE = do_PATCH = _write

    return Handler


def serve(root: Path, host: str, port: int, cert: Path, key: Path) -> None:
    server = http.server.ThreadingHTTPServer((host, port), make_handler(root))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"fakeregistry: listening on {host}:{port}", flush=True)
    server.serve_forever()
