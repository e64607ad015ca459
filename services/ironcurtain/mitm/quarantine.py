"""What a registry may hand the agent, decided from the registry's own metadata: pure, no I/O.

Names: a deny list, and an optional allow list (globs over normalised names). Age: a version
published less than `quarantine_days` ago is quarantined, and so is one whose publish time the
registry does not give (fail closed). Quarantined files stay in the index the agent sees but are
marked the way each tool already understands, so resolvers pick an older version by themselves
and a pinned request says why:
- PyPI (PEP 691 JSON + PEP 700 `upload-time`): the file is marked `yanked` with our reason; pip
  skips yanked files unless pinned with `==`, and then prints the reason before the download is
  refused by the proxy (403) with the same reason.
- npm (full packument, `time`): the version is marked `deprecated` with our reason and dist-tags
  that pointed at it move to the newest admitted version (or are dropped); npm prefers
  non-deprecated versions and the `latest` tag; a pinned one is refused at its tarball (403).
Every file URL is rewritten to a path on the registry's own host and remembered (`File`): the
proxy serves only files listed in an index it served, and checks their hashes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

FILES_PREFIX = "/.ironcurtain/files"  # where files from another host are served on the index host


class MetadataError(ValueError):
    """The registry's metadata is not what its protocol says; the proxy refuses (502)."""


@dataclass(frozen=True, slots=True)
class Rules:
    quarantine_days: float = 2.0  # 0 turns the quarantine off
    allow: tuple[str, ...] = ()  # globs over normalised names; empty = every name
    deny: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class File:
    """A file listed in a served index: where it really is, what it must hash to, or why not."""

    name: str
    version: str
    filename: str
    upstream: str  # absolute URL
    digests: tuple[tuple[str, str], ...] = ()  # (hashlib name, hex digest) from the metadata
    refusal: str | None = None  # set: the proxy answers 403 with this reason
    published: str = ""  # ISO time from the registry
    rule: str = "quarantine"  # the audit rule of the refusal


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes  # the index as the agent receives it
    files: Mapping[str, File]  # served path -> file
    quarantined: tuple[str, ...] = ()  # "name version: reason" for the audit
    extra: Mapping[str, Any] = field(default_factory=dict)


def normalise_name(kind: str, name: str) -> str:
    """PEP 503 for PyPI (runs of -_. become -, lower case); lower case for npm and apt."""
    if kind == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name.lower()


def name_refusal(rules: Rules, kind: str, name: str) -> str | None:
    """Why a package name is refused, or None."""
    normal = normalise_name(kind, name)
    if any(fnmatch.fnmatchcase(normal, normalise_name(kind, g)) for g in rules.deny):
        return f"{kind} package {name} is on the deny list"
    if rules.allow and not any(
        fnmatch.fnmatchcase(normal, normalise_name(kind, g)) for g in rules.allow
    ):
        return f"{kind} package {name} is not on the allow list"
    return None


def parse_time(value: object) -> dt.datetime | None:
    """An ISO 8601 time from registry metadata (Z or offset; naive = UTC), or None."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _ago(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def age_refusal(
    rules: Rules, name: str, version: str, published: dt.datetime | None, now: dt.datetime
) -> str | None:
    """Why this version is quarantined, or None."""
    days = rules.quarantine_days
    if days <= 0:
        return None
    if published is None:
        return (
            f"quarantined: {name} {version} has no publish time in the registry's metadata, "
            f"so its age ({days:g}-day quarantine) cannot be checked"
        )
    age = now - published
    if age < dt.timedelta(days=days):
        shown = _ago(age) if age.total_seconds() >= 0 else "in the future"
        return (
            f"quarantined: {name} {version} was published {shown} ago; "
            f"versions younger than {days:g} days are refused"
        )
    return None


def served_path(url: str, host: str, base: str) -> str:
    """The path on the registry host (under its base) where the agent fetches `url`."""
    parts = urlsplit(url)
    if parts.hostname == host and parts.scheme == "https" and parts.path.startswith(base + "/"):
        return parts.path
    return f"{base}{FILES_PREFIX}/{parts.scheme}/{parts.netloc}{parts.path}"


def _object(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise MetadataError("the registry's metadata is not JSON") from None
    if not isinstance(doc, dict):
        raise MetadataError("the registry's metadata is not a JSON object")
    return doc


def _filename_version(filename: str) -> str:
    if filename.endswith(".whl"):
        parts = filename.split("-")
        return parts[1] if len(parts) >= 5 else ""
    for ext in (".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tgz", ".egg"):
        if filename.endswith(ext):
            stem = filename[: -len(ext)]
            return stem.rpartition("-")[2] if "-" in stem else ""
    return ""


_PEP658 = ("core-metadata", "data-dist-info-metadata", "dist-info-metadata", "data-core-metadata")


def pypi_page(
    data: bytes,
    page_url: str,
    host: str,
    base: str,
    project: str,
    rules: Rules,
    now: dt.datetime,
    denied: str | None = None,
) -> Page:
    """A PEP 691 JSON project page -> the page the agent sees, and the files it lists.

    `denied` (the project's name is refused) refuses every file with that reason: pip hides a
    refused index page at its default verbosity, but prints a refused download's reason.
    """
    doc = _object(data)
    files_in = doc.get("files")
    if not isinstance(files_in, list):
        raise MetadataError("PEP 691 page without a 'files' list")
    files_out: list[dict[str, Any]] = []
    yank: list[tuple[dict[str, Any], str]] = []
    admitted = False
    remembered: dict[str, File] = {}
    quarantined: list[str] = []
    for entry in files_in:
        if not isinstance(entry, dict):
            raise MetadataError("PEP 691 file entry is not an object")
        filename, url = entry.get("filename"), entry.get("url")
        if not isinstance(filename, str) or not isinstance(url, str) or not filename:
            raise MetadataError("PEP 691 file entry without filename or url")
        raw_hashes = entry.get("hashes")
        hashes = raw_hashes if isinstance(raw_hashes, dict) else {}
        digests = tuple(
            (algo, value.lower())
            for algo, value in sorted(hashes.items())
            if algo in ("sha256", "sha384", "sha512")
            and isinstance(value, str)
            and re.fullmatch(r"[0-9a-fA-F]{64,128}", value)
        )
        absolute = urljoin(page_url, url).partition("#")[0]
        if urlsplit(absolute).scheme != "https" or urlsplit(absolute).query:
            refusal: str | None = f"{filename} is listed at a non-HTTPS URL or with a query"
        else:
            refusal = age_refusal(
                rules,
                project,
                _filename_version(filename) or filename,
                parse_time(entry.get("upload-time")),
                now,
            )
        refusal = denied or refusal
        version = _filename_version(filename)
        path = served_path(absolute, host, base)
        remembered[path] = File(
            project,
            version,
            filename,
            absolute,
            digests,
            refusal,
            str(entry.get("upload-time") or ""),
            "registry-name" if denied else "quarantine",
        )
        out = {k: v for k, v in entry.items() if k not in _PEP658}
        out["url"] = f"https://{host}{path}"
        if refusal is not None:
            quarantined.append(f"{filename}: {refusal}")
            yank.append((out, f"IronCurtain {refusal}"))
        elif not entry.get("yanked"):
            admitted = True
        files_out.append(out)
    # Yank refused files only when an admitted one remains for pip to choose: with nothing
    # left, pip would say only "no matching distribution"; unyanked, it picks one and prints
    # our 403 reason when the download is refused.
    if admitted:
        for out, reason in yank:
            out["yanked"] = reason
    doc["files"] = files_out
    body = json.dumps(doc, separators=(",", ":")).encode()
    return Page(body, remembered, tuple(quarantined))


def _integrity(dist: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    digests: list[tuple[str, str]] = []
    integrity = dist.get("integrity")
    if isinstance(integrity, str):
        for item in integrity.split():
            algo, _, b64 = item.partition("-")
            if algo in ("sha512", "sha384", "sha256"):
                try:
                    digests.append((algo, base64.b64decode(b64, validate=True).hex()))
                except (binascii.Error, ValueError):
                    raise MetadataError("npm dist.integrity is not valid base64") from None
    shasum = dist.get("shasum")
    if isinstance(shasum, str) and re.fullmatch(r"[0-9a-fA-F]{40}", shasum):
        digests.append(("sha1", shasum.lower()))
    return tuple(digests)


def npm_packument(
    data: bytes, host: str, base: str, name: str, rules: Rules, now: dt.datetime
) -> Page:
    """A full npm packument -> the packument the agent sees, and the tarballs it lists."""
    doc = _object(data)
    versions = doc.get("versions")
    raw_times = doc.get("time")
    times = raw_times if isinstance(raw_times, dict) else {}
    if not isinstance(versions, dict):
        raise MetadataError("npm packument without a 'versions' object")
    remembered: dict[str, File] = {}
    quarantined: list[str] = []
    admitted: dict[str, dt.datetime] = {}
    for version, manifest in versions.items():
        if not isinstance(manifest, dict) or not isinstance(manifest.get("dist"), dict):
            raise MetadataError(f"npm version {version!r} without a 'dist' object")
        dist = manifest["dist"]
        tarball = dist.get("tarball")
        if not isinstance(tarball, str) or not tarball:
            raise MetadataError(f"npm version {version!r} without dist.tarball")
        published = parse_time(times.get(version))
        absolute = tarball.partition("#")[0]
        if urlsplit(absolute).scheme != "https" or urlsplit(absolute).query:
            refusal: str | None = f"{name} {version} is listed at a non-HTTPS URL or with a query"
        else:
            refusal = age_refusal(rules, name, version, published, now)
        path = served_path(absolute, host, base)
        remembered[path] = File(
            name,
            str(version),
            absolute.rpartition("/")[2],
            absolute,
            _integrity(dist),
            refusal,
            str(times.get(version) or ""),
        )
        dist["tarball"] = f"https://{host}{path}"
        if refusal is not None:
            quarantined.append(f"{name} {version}: {refusal}")
            manifest["deprecated"] = f"IronCurtain {refusal}"
        elif published is not None:
            admitted[version] = published
        elif rules.quarantine_days <= 0:
            admitted[version] = dt.datetime.min.replace(tzinfo=dt.UTC)
    found_tags = doc.get("dist-tags")
    raw_tags = found_tags if isinstance(found_tags, dict) else {}
    tags = {str(k): v for k, v in raw_tags.items() if isinstance(v, str)}
    moved: dict[str, str] = {}
    for tag, version in tags.items():
        if version in admitted:
            moved[tag] = version
        elif tag == "latest" and admitted:
            moved[tag] = max(admitted, key=lambda v: admitted[v])
    # Nothing admitted: tags stay, so npm picks a version and prints our 403 for its tarball.
    doc["dist-tags"] = moved if admitted else tags
    body = json.dumps(doc, separators=(",", ":")).encode()
    return Page(body, remembered, tuple(quarantined))
