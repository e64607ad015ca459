"""Package registries inside a tunnel: the I/O around `registries.route` and `quarantine`.

The server hands a registry host's decrypted connection here (`Depot.serve`). Per request: the
Host header must be the tunnel's host, the method a read, the path one the registry kind serves
(`registries.route`); then
- a PyPI/npm index is fetched whole (as PEP 691 JSON / a full packument, so publish times are
  there), filtered by `quarantine`, and every file it lists is remembered;
- a file is served only if a served index listed it (apt: any `pool/*.deb`, apt checks hashes
  itself), only if not quarantined or denied, and only after its bytes matched the index's hash,
  the audit line (name, version, SHA-256, size) was written and the inventory updated;
- an apt index under `dists/` passes unchanged (apt verifies the signed Release file).
Refusals carry the reason in the HTTP reason phrase (pip and apt print it) and in a JSON body's
`error` (npm prints it), with header `x-ironcurtain-refused: RULE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import ssl
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

import h11

from . import driver, quarantine
from .audit import Audit, Entry
from .errors import Refusal, bounded, http_error
from .fetch import Fetched, FetchError, fetch
from .headers import upgrade_refused
from .inventory import Inventory, Item
from .providers import ConfigError
from .registries import Kind, Registry
from .routes import Route, route
from .settings import Settings
from .stream import Stream

_ACCEPT = {
    Kind.PYPI: b"application/vnd.pypi.simple.v1+json",
    Kind.NPM: b"application/json",
}
_PYPI_JSON = b"application/vnd.pypi.simple.v1+json"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def read_tokens(settings: Settings) -> dict[str, str]:
    """Each registry's token from its secret file (refuse unreadable or empty files)."""
    tokens = {}
    for registry in settings.registries.registries:
        if registry.token_file is None:
            continue
        try:
            token = registry.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"registry {registry.name}: cannot read {registry.token_file}: {exc.strerror}"
            ) from None
        if not token:
            raise ConfigError(f"registry {registry.name}: {registry.token_file} is empty")
        tokens[registry.name] = token
    return tokens


def _reason_phrase(reason: str) -> bytes:
    text = "IronCurtain: " + " ".join(reason.split())
    return text.encode("ascii", "replace")[:400]


class Depot:
    """Serves registry hosts for one proxy (one session); remembers files of served indexes."""

    def __init__(
        self,
        settings: Settings,
        audit: Audit,
        tls: Callable[[str], ssl.SSLContext],
        tokens: dict[str, str],
        now: Callable[[], dt.datetime] = _utcnow,
        audit_refusal: Callable[[Entry], bool] | None = None,
    ) -> None:
        self._settings = settings
        self._config = settings.registries
        self._audit = audit
        self._tls = tls
        self._tokens = tokens
        self._now = now
        # The proxy's refusal gate (rate limit shared with the vendor hosts); alone: write all.
        self._audit_refusal = audit_refusal or self._write_refusal
        self._files: dict[tuple[str, str], tuple[Registry, quarantine.File]] = {}
        path = self._config.inventory_path or settings.audit_path.parent / "packages.json"
        self.inventory = Inventory(path, settings.session)

    def _write_refusal(self, entry: Entry) -> bool:
        self._audit.write(entry)
        return True

    # ---- the connection loop -----------------------------------------------------------------

    async def serve(self, reader: Stream, writer: Stream, host: str) -> None:
        tuning = self._settings.tuning
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=tuning.max_header_bytes)
        while True:
            try:
                event = await driver.read_head(
                    conn,
                    reader,
                    tuning.idle_timeout_s,
                    tuning.header_timeout_s,
                    tuning.max_header_bytes,
                )
            except TimeoutError:
                return
            except h11.RemoteProtocolError as exc:
                self._refuse(writer, conn, host, None, "", "", http_error(exc))
                return
            if not isinstance(event, h11.Request):
                return
            keep = await self._request(reader, writer, conn, host, event)
            await writer.drain()
            if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _request(
        self,
        reader: Stream,
        writer: Stream,
        conn: h11.Connection,
        host: str,
        request: h11.Request,
    ) -> bool:
        method = request.method.decode("ascii", "replace")
        path = request.target.partition(b"?")[0].decode("ascii", "replace")
        registry = None
        try:
            if method not in ("GET", "HEAD"):
                raise Refusal(
                    403,
                    "registry-write",
                    f"{method} refused: registries are read-only through IronCurtain "
                    "(publishing, login and other writes are not allowed)",
                )
            registry = self._check_head(request, host)
            found = route(registry, method, request.target)
            await self._drain_body(reader, conn)
            if found.action == "index":
                await self._index(writer, conn, registry, request, found, path)
            elif found.action == "apt-index":
                await self._apt_index(writer, conn, registry, request, path)
            else:
                await self._file(writer, conn, registry, request, found, path)
        except Refusal as refusal:
            self._refuse(writer, conn, host, registry, method, path, refusal)
            return False
        return True

    def _check_head(self, request: h11.Request, host: str) -> Registry:
        hosts = [v for n, v in request.headers if n == b"host"]
        if len(hosts) != 1 or hosts[0].lower() not in (host.encode(), host.encode() + b":443"):
            raise Refusal(403, "host-header", f"the Host header must be {host} (the tunnel's host)")
        upgrade = upgrade_refused(n for n, _ in request.headers)
        if upgrade is not None:
            raise upgrade
        target = request.target.decode("ascii", "replace")
        for registry in self._config.for_host(host):
            if target.startswith(registry.base + "/"):
                return registry
        raise Refusal(403, "registry-path", f"{target} is not under a configured registry")

    async def _drain_body(self, reader: Stream, conn: h11.Connection) -> None:
        """GET/HEAD carry no body; one that does is refused rather than read."""
        async with asyncio.timeout(self._settings.tuning.body_timeout_s):
            event = await driver.next_event(conn, reader)
        if not isinstance(event, h11.EndOfMessage):
            raise Refusal(400, "http", "a body on a registry read is refused")

    # ---- answers -----------------------------------------------------------------------------

    def _audit_served(
        self,
        event: str,
        decision: str,
        rule: str,
        registry: Registry,
        request: h11.Request,
        path: str,
        size: int,
        *,
        package: str = "",
        version: str = "",
        sha256: str = "",
        reason: str = "",
        flag: str = "",
    ) -> None:
        """The audit line of an answer served with 200, written before any byte is sent."""
        self._audit.write(
            Entry(
                self._settings.session,
                event,
                decision,
                rule,
                host=registry.host,
                provider=registry.name,
                method=request.method.decode(),
                path=path,
                status=200,
                bytes_out=size,
                package=package,
                version=version,
                sha256=sha256,
                reason=reason,
                flag=flag,
            )
        )

    def _send(
        self,
        writer: Stream,
        conn: h11.Connection,
        status: int,
        headers: list[tuple[bytes, bytes]],
        data: bytes,
        head: bool,
        reason: bytes = b"",
    ) -> None:
        headers = [*headers, (b"content-length", b"%d" % len(data))]
        if conn.their_state is not h11.DONE:
            headers.append((b"connection", b"close"))
        writer.write(driver.answer(conn, status, headers, data, head, reason))

    def _refuse(
        self,
        writer: Stream,
        conn: h11.Connection,
        host: str,
        registry: Registry | None,
        method: str,
        path: str,
        refusal: Refusal,
    ) -> None:
        entry = Entry(
            self._settings.session,
            "request",
            "refuse",
            refusal.rule,
            host=host,
            provider=registry.name if registry else "",
            method=bounded(method, 16),
            path=bounded(path),
            status=refusal.status,
            reason=refusal.reason,
        )
        if not self._audit_refusal(entry):
            return  # over the session's refusal rate (throttle.py): closed unanswered
        message = f"IronCurtain: {refusal.reason}"
        data = json.dumps({"error": message, "rule": refusal.rule}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"x-ironcurtain-refused", refusal.rule.encode()),
        ]
        with contextlib.suppress(h11.LocalProtocolError):
            self._send(
                writer,
                conn,
                refusal.status,
                headers,
                data,
                method == "HEAD",
                _reason_phrase(refusal.reason),
            )

    async def _upstream(
        self,
        scheme: str,
        host: str,
        port: int,
        target: bytes,
        accept: bytes | None,
        token: str | None,
        limit: int,
    ) -> Fetched:
        headers = [(b"accept-encoding", b"identity"), (b"user-agent", b"IronCurtain")]
        if accept:
            headers.append((b"accept", accept))
        if token:
            headers.append((b"authorization", b"Bearer " + token.encode()))
        tuning = self._settings.tuning
        try:
            return await fetch(
                scheme,
                host,
                port,
                "GET",
                target,
                headers,
                tls=self._tls,
                override=self._settings.upstream.get(host),
                limit=limit,
                connect_timeout=tuning.connect_timeout_s,
                response_timeout=tuning.response_timeout_s,
            )
        except FetchError as exc:
            raise Refusal(502, "upstream", str(exc)) from None

    def _check_status(self, fetched: Fetched, what: str) -> None:
        if fetched.status == 404:
            raise Refusal(404, "not-found", f"{what} does not exist in the registry")
        if fetched.status != 200:
            raise Refusal(502, "upstream", f"the registry answered {fetched.status} for {what}")

    async def _index(
        self,
        writer: Stream,
        conn: h11.Connection,
        registry: Registry,
        request: h11.Request,
        found: Route,
        path: str,
    ) -> None:
        page = await self._load_index(registry, found.name, request.target)
        self._audit_served(
            "request",
            "allow",
            "registry:index",
            registry,
            request,
            path,
            len(page.body),
            package=found.name,
            reason="; ".join(page.quarantined)[:2000],
            flag="quarantined" if page.quarantined else "",
        )
        content = _PYPI_JSON if registry.kind is Kind.PYPI else b"application/json"
        headers = [(b"content-type", content), (b"cache-control", b"no-store")]
        self._send(writer, conn, 200, headers, page.body, request.method == b"HEAD")

    async def _load_index(self, registry: Registry, name: str, target: bytes) -> quarantine.Page:
        """Fetch, check and filter one project page / packument; remember the files it lists."""
        kind = registry.kind.value
        refusal = quarantine.name_refusal(self._config.rules, kind, name)
        if refusal and registry.kind is not Kind.PYPI:
            raise Refusal(403, "registry-name", refusal)  # npm prints the reason as is
        fetched = await self._upstream(
            registry.scheme,
            registry.host,
            registry.port,
            target,
            _ACCEPT[registry.kind],
            self._tokens.get(registry.name),
            self._config.max_metadata_bytes,
        )
        self._check_status(fetched, f"{kind} package {name}")
        content_type = (fetched.header(b"content-type") or b"").split(b";")[0].strip().lower()
        path = target.partition(b"?")[0].decode("ascii")
        try:
            if registry.kind is Kind.PYPI:
                if content_type != _PYPI_JSON:
                    raise Refusal(
                        502,
                        "registry-metadata",
                        "the index did not answer PEP 691 JSON, which IronCurtain needs to "
                        "read upload times",
                    )
                # Parsing a big index takes a while (100+ ms for thousands of files): off the loop.
                page = await asyncio.to_thread(
                    quarantine.pypi_page,
                    fetched.body,
                    f"https://{registry.host}{path}",
                    registry.host,
                    registry.base,
                    name,
                    self._config.rules,
                    self._now(),
                    refusal,
                )
            else:
                page = await asyncio.to_thread(
                    quarantine.npm_packument,
                    fetched.body,
                    registry.host,
                    registry.base,
                    name,
                    self._config.rules,
                    self._now(),
                )
        except quarantine.MetadataError as exc:
            raise Refusal(502, "registry-metadata", str(exc)) from None
        for served, file in page.files.items():
            self._files[(registry.host, unquote(served))] = (registry, file)
        return page

    async def _apt_index(
        self,
        writer: Stream,
        conn: h11.Connection,
        registry: Registry,
        request: h11.Request,
        path: str,
    ) -> None:
        fetched = await self._upstream(
            registry.scheme,
            registry.host,
            registry.port,
            request.target,
            None,
            self._tokens.get(registry.name),
            self._config.max_metadata_bytes,
        )
        self._check_status(fetched, path)
        self._audit_served(
            "request",
            "allow",
            "registry:apt-index",
            registry,
            request,
            path,
            len(fetched.body),
        )
        content = fetched.header(b"content-type") or b"application/octet-stream"
        head = request.method == b"HEAD"
        self._send(writer, conn, 200, [(b"content-type", content)], fetched.body, head)

    async def _file(
        self,
        writer: Stream,
        conn: h11.Connection,
        registry: Registry,
        request: h11.Request,
        found: Route,
        path: str,
    ) -> None:
        kind = registry.kind.value
        rules = self._config.rules
        if registry.kind is Kind.APT:
            name, version, published = found.name, found.version, ""
            digests: tuple[tuple[str, str], ...] = ()
            url = f"{registry.upstream_url}{path[len(registry.base) :]}"
            token = self._tokens.get(registry.name)
        else:
            entry = self._files.get((registry.host, unquote(path)))
            owner = _npm_tarball_owner(registry, path)
            if entry is None and owner is not None:
                # A lockfile names tarballs directly (npm ci): read the packument first, so
                # the same quarantine, name and hash checks apply.
                await self._load_index(
                    registry, owner, f"{registry.base}/{quote(owner, safe='@')}".encode()
                )
                entry = self._files.get((registry.host, unquote(path)))
            if entry is None:
                raise Refusal(
                    403,
                    "registry-unlisted",
                    f"{path} was not listed in a package index served in this session "
                    "(fetch the package's index first, as pip and npm do)",
                )
            _reg, file = entry
            if file.refusal:
                raise Refusal(403, file.rule, file.refusal)
            name, version, published = file.name, file.version, file.published
            digests, url = file.digests, file.upstream
            if not digests:
                raise Refusal(
                    403, "registry-hash", f"the index gives no hash for {file.filename}; refused"
                )
            # The token goes to the registry's own host only, never to a file host it lists.
            same = urlsplit(url).hostname == registry.host
            token = self._tokens.get(registry.name) if same else None
        refusal = quarantine.name_refusal(rules, kind, name)
        if refusal:
            raise Refusal(403, "registry-name", refusal)
        parts = urlsplit(url)
        if parts.hostname is None or not parts.path.isascii():
            raise Refusal(502, "registry-metadata", f"bad file URL for {name}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        fetched = await self._upstream(
            parts.scheme,
            parts.hostname,
            port,
            parts.path.encode("ascii", "strict"),
            None,
            token,
            self._config.max_file_bytes,
        )
        self._check_status(fetched, f"{name} {version}")
        # Hashing a large file takes a while (hashlib releases the GIL): off the loop.
        sha256, mismatch = await asyncio.to_thread(_digests, fetched.body, digests)
        if mismatch:
            raise Refusal(
                502,
                "registry-hash",
                f"{name} {version}: the file's {mismatch} does not match the index; refused",
            )
        filename = unquote(path.rpartition("/")[2])
        self._audit_served(
            "package",
            "served",
            "registry:file",
            registry,
            request,
            path,
            len(fetched.body),
            package=name,
            version=version,
            sha256=sha256,
        )
        if request.method == b"GET":
            self.inventory.add(
                Item(
                    registry.name,
                    kind,
                    name,
                    version,
                    filename,
                    sha256,
                    len(fetched.body),
                    f"https://{registry.host}{path}",
                    published,
                )
            )
        content = fetched.header(b"content-type") or b"application/octet-stream"
        head = request.method == b"HEAD"
        self._send(writer, conn, 200, [(b"content-type", content)], fetched.body, head)


def _npm_tarball_owner(registry: Registry, path: str) -> str | None:
    """`<base>/name/-/file.tgz` or `<base>/@scope/name/-/file.tgz` -> the package name."""
    if registry.kind is not Kind.NPM or not path.endswith(".tgz"):
        return None
    parts = unquote(path[len(registry.base) :]).split("/")[1:]
    if len(parts) == 3 and parts[1] == "-":
        return parts[0]
    if len(parts) == 4 and parts[0].startswith("@") and parts[2] == "-":
        return f"{parts[0]}/{parts[1]}"
    return None


def _digests(data: bytes, expected: tuple[tuple[str, str], ...]) -> tuple[str, str | None]:
    """The file's SHA-256, and the first expected digest it does not match (or None)."""
    for algo, digest in expected:
        if hashlib.new(algo, data).hexdigest() != digest:
            return "", algo
    return hashlib.sha256(data).hexdigest(), None
