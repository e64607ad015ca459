"""Tiny real packages and the registry tree that lists them, for tests.

`build(root, packages, now, npm_host)` writes wheels, npm tarballs and .deb files (`dpkg-deb`),
PEP 691 pages with PEP 700 upload times, npm packuments with `time`, and an unsigned apt
repository (`[trusted=yes]` on the client side) under `root`, laid out for `server.py`.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

APT_SUITE = "stable"
APT_COMPONENT = "main"


@dataclass(frozen=True, slots=True)
class Package:
    kind: str  # pypi | npm | apt
    name: str
    version: str
    age: dt.timedelta  # how long ago it was published


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def wheel(name: str, version: str) -> tuple[str, bytes]:
    """A pure-Python wheel whose module prints its own version."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f'VERSION = "{version}"\n'.encode(),
        f"{dist}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: ironcurtain-test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
    return f"{module}-{version}-py3-none-any.whl", out.getvalue()


def npm_tarball(name: str, version: str) -> bytes:
    files = {
        "package/package.json": json.dumps(
            {"name": name, "version": version, "main": "index.js"}
        ).encode(),
        "package/index.js": f'module.exports = "{version}";\n'.encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1577836800
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def deb(name: str, version: str) -> bytes:
    """A .deb (architecture all) holding /usr/share/<name>/version, built by dpkg-deb."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        (tree / "DEBIAN").mkdir(parents=True)
        (tree / "DEBIAN" / "control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
            "Maintainer: IronCurtain tests <tests@example.invalid>\n"
            f"Description: {name} test package\n"
        )
        (tree / "usr" / "share" / name).mkdir(parents=True)
        (tree / "usr" / "share" / name / "version").write_text(version + "\n")
        out = Path(tmp) / "out.deb"
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build(
    root: Path, packages: Iterable[Package], now: dt.datetime, npm_host: str
) -> dict[str, str]:
    """Write the registry tree; returns {file name: sha256} of every package file written.

    npm tarball URLs are absolute (as real packuments have them): https://npm_host/npm/...
    """
    hashes: dict[str, str] = {}
    pypi: dict[str, list[dict[str, object]]] = {}
    npm: dict[str, dict[str, object]] = {}
    apt: list[str] = []
    for pkg in packages:
        published = now - pkg.age
        if pkg.kind == "pypi":
            filename, data = wheel(pkg.name, pkg.version)
            _write(root / "files" / filename, data)
            digest = hashlib.sha256(data).hexdigest()
            hashes[filename] = digest
            pypi.setdefault(pkg.name, []).append(
                {
                    "filename": filename,
                    "url": f"../../files/{filename}",
                    "hashes": {"sha256": digest},
                    "upload-time": _iso(published),
                    "yanked": False,
                }
            )
        elif pkg.kind == "npm":
            data = npm_tarball(pkg.name, pkg.version)
            filename = f"{pkg.name}-{pkg.version}.tgz"
            _write(root / "npm" / pkg.name / "-" / filename, data)
            hashes[filename] = hashlib.sha256(data).hexdigest()
            doc = npm.setdefault(
                pkg.name,
                {"name": pkg.name, "dist-tags": {}, "versions": {}, "time": {}},
            )
            integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
            doc["versions"][pkg.version] = {  # type: ignore[index]
                "name": pkg.name,
                "version": pkg.version,
                "dist": {
                    "tarball": f"https://{npm_host}/npm/{pkg.name}/-/{filename}",
                    "integrity": integrity,
                    "shasum": hashlib.sha1(data).hexdigest(),  # noqa: S324 - npm's own field
                },
            }
            doc["time"][pkg.version] = _iso(published)  # type: ignore[index]
            doc["dist-tags"]["latest"] = pkg.version  # type: ignore[index]
        elif pkg.kind == "apt":
            data = deb(pkg.name, pkg.version)
            filename = f"{pkg.name}_{pkg.version}_all.deb"
            rel = f"pool/{APT_COMPONENT}/{pkg.name[0]}/{pkg.name}/{filename}"
            _write(root / "debian" / rel, data)
            hashes[filename] = hashlib.sha256(data).hexdigest()
            apt.append(
                f"Package: {pkg.name}\nVersion: {pkg.version}\nArchitecture: all\n"
                f"Maintainer: IronCurtain tests <tests@example.invalid>\n"
                f"Filename: {rel}\nSize: {len(data)}\n"
                f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
                f"Description: {pkg.name} test package\n"
            )
        else:
            raise ValueError(f"unknown kind {pkg.kind!r}")
    for name, files in pypi.items():
        page = {"meta": {"api-version": "1.1"}, "name": name, "files": files}
        _write(root / "simple" / name / "index.json", json.dumps(page).encode())
    for name, doc in npm.items():
        _write(root / "npm" / f"{name}.json", json.dumps(doc).encode())
    if apt:
        _apt_indexes(root / "debian", "\n".join(apt).encode(), now)
    return hashes


def _apt_indexes(repo: Path, packages: bytes, now: dt.datetime) -> None:
    dists = repo / "dists" / APT_SUITE
    entries = []
    for arch in ("all", "amd64", "arm64"):
        rel = f"{APT_COMPONENT}/binary-{arch}/Packages"
        body = packages if arch == "all" else b""
        for suffix, data in (("", body), (".gz", gzip.compress(body, mtime=0))):
            _write(dists / (rel + suffix), data)
            entries.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {rel}{suffix}")
    release = (
        f"Suite: {APT_SUITE}\nCodename: {APT_SUITE}\n"
        f"Date: {now.astimezone(dt.UTC):%a, %d %b %Y %H:%M:%S UTC}\n"
        f"Architectures: all amd64 arm64\nComponents: {APT_COMPONENT}\n"
        "SHA256:\n" + "\n".join(entries) + "\n"
    )
    _write(dists / "Release", release.encode())
