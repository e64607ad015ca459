"""Build a repository's agent image (`.ironcurtain/agent.Dockerfile`) and judge it before use.

The context is the repository's `.ironcurtain/` folder alone (regular files only: a symlink
could carry a file from outside the repository into the build). The image is named by the hash
of its inputs and our parent image, so an unchanged project is not rebuilt. Its layers are read
from `docker save` without running anything in it (a check run inside the image would use the
project's own tools), and judged by images/project.py; a passing image id is remembered in the
state folder so the next session starts without reading the layers again.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from . import project
from .build import ContextFile, context_tar
from .catalog import HASH_LABEL, image_ref
from .layers import Change, changes, layer_changes

PROJECT_DIR = ".ironcurtain"
MAX_CONTEXT_BYTES = 50 * 1024 * 1024
MAX_DOCKERFILE_BYTES = 64 * 1024


class ProjectImageError(RuntimeError):
    """The project's image cannot be built or is refused; the message says what and why."""


TRUST_COMMAND = "ironcurtain images trust"


def verdicts_dir(state: Path) -> Path:
    """Where passing verdicts are remembered (`trusted/` below it: the trust records)."""
    return state / "project-images"


TRUSTED = "trusted"  # below the verdicts folder


def trusted_dir(state: Path) -> Path:
    return verdicts_dir(state) / TRUSTED


def content_hash(files: Iterable[ContextFile]) -> str:
    """What the user reviewed: the folder's files (not our parent image: no review on upgrades)."""
    return inputs_hash(files, "", "")


def _record(trusted: Path, workspace: Path) -> Path:
    """The one trust record of a workspace (by its real path): the folder's hash as trusted."""
    key = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()
    return trusted / key


def is_trusted(trusted: Path, workspace: Path, files: Iterable[ContextFile]) -> bool:
    """This workspace's folder is exactly what its user last trusted (not an older version the
    agent restored, nor another repository's folder copied in)."""
    try:
        lines = _record(trusted, workspace).read_text().splitlines()
    except OSError:
        return False
    return lines[:2] == [str(workspace.resolve()), content_hash(files)]


def trust(workspace: Path, trusted: Path) -> tuple[str, list[ContextFile]]:
    """Record that the user reviewed the project folder as it is now; (its hash, its files).

    The agent can write the workspace, so `.ironcurtain/` as it stands may be the agent's work:
    a build runs its steps on the host's engine with the network, outside the curtain. Only a
    folder whose exact content the user trusted (here, outside every container) is built. One
    record per workspace, replaced each time: what was trusted before is trusted no more."""
    if not (workspace / PROJECT_DIR).is_dir():
        raise ProjectImageError(f"{workspace / PROJECT_DIR} is not a folder")
    files = project_context(workspace)
    trusted.mkdir(parents=True, exist_ok=True)
    digest = content_hash(files)
    record = _record(trusted, workspace)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(f"{workspace.resolve()}\n{digest}\n" + "".join(f"{f.path}\n" for f in files))
    tmp.replace(record)
    return digest, files


def untrust(workspace: Path, trusted: Path) -> bool:
    """Forget the workspace's trust record; False when it had none."""
    try:
        _record(trusted, workspace).unlink()
    except FileNotFoundError:
        return False
    return True


def dockerfile_of(workspace: Path) -> Path | None:
    path = workspace / PROJECT_DIR / project.DOCKERFILE
    return path if path.is_file() and not path.is_symlink() else None


def project_context(workspace: Path) -> list[ContextFile]:
    """The `.ironcurtain/` folder's regular files, bounded; a symlink or oversize is refused."""
    root = workspace / PROJECT_DIR
    if root.is_symlink():
        raise ProjectImageError(f"{root} is a symlink; the project folder must be a real folder")
    files: list[ContextFile] = []
    total = 0
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            raise ProjectImageError(f"{PROJECT_DIR}/{relative} is a symlink (not in a context)")
        if not stat.S_ISREG(info.st_mode):
            continue
        total += info.st_size  # bounded before anything is read (a sparse 64 GiB file)
        if total > MAX_CONTEXT_BYTES:
            raise ProjectImageError(f"{PROJECT_DIR}/ is over {MAX_CONTEXT_BYTES >> 20} MiB")
        data = _read_regular(path, MAX_CONTEXT_BYTES - total + info.st_size)
        files.append(ContextFile(relative, bool(info.st_mode & 0o111), data))
    return files


def _read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes, never through a symlink swapped in since it was listed, and at
    most `limit` (it may have grown since)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ProjectImageError(f"{path}: cannot read it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ProjectImageError(f"{path} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ProjectImageError(f"{PROJECT_DIR}/ is over {MAX_CONTEXT_BYTES >> 20} MiB")
    return data


def inputs_hash(files: Iterable[ContextFile], parent_id: str, tag: str) -> str:
    digest = hashlib.sha256(f"project-image\0{parent_id}\0{tag}\0".encode())
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{int(f.executable)}\0{len(f.data)}\0".encode())
        digest.update(f.data)
    return digest.hexdigest()


class _Chunks(io.RawIOBase):
    """A file over the chunks `docker save` streams."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._rest = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size], self._rest = self._rest[:size], self._rest[size:]
        return size


class _Hashing(io.RawIOBase):
    """Reads through `inner`, hashing every byte (a layer's diff id is its tar's SHA-256)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner, self.sha = inner, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self.sha.update(data)
        return len(data)


def _drain(stream: _Hashing) -> str:
    while True:
        block = stream.read(1 << 20)
        if not block:
            return "sha256:" + stream.sha.hexdigest()


def read_new_layers(image: Any, wanted: list[str]) -> list[list[Change]]:
    """The changes of the layers whose diff ids are `wanted`, in that order, from `docker save`."""
    found: dict[str, list[Change]] = {}
    outer_stream = io.BufferedReader(_Chunks(iter(image.save(named=False))), 1 << 20)
    with tarfile.open(fileobj=outer_stream, mode="r|") as outer:
        for member in outer:
            if not member.isreg() or member.size < 512:
                continue
            if not (member.name.endswith("layer.tar") or member.name.startswith("blobs/")):
                continue
            inner = outer.extractfile(member)
            assert inner is not None
            hashing = _Hashing(inner)
            try:
                entries = layer_changes(io.BufferedReader(hashing, 1 << 20))
            except tarfile.TarError:
                _drain(hashing)
                continue  # a config or manifest blob, not a layer
            digest = _drain(hashing)
            if digest in wanted:
                found[digest] = entries
    missing = [d for d in wanted if d not in found]
    if missing:
        raise ProjectImageError(f"could not read the image's layer(s) {', '.join(missing)}")
    return [found[d] for d in wanted]


def _untrusted(workspace: Path) -> ProjectImageError:
    return ProjectImageError(
        f"{PROJECT_DIR}/ is new or changed since you last trusted it (the agent can write "
        f"the workspace, and a build runs with the network): review it, then run "
        f"`{TRUST_COMMAND}` in {workspace}"
    )


def trusted_file(workspace: Path, trusted: Path, name: str) -> bytes | None:
    """`.ironcurtain/NAME`'s bytes as the user trusted them (None: the folder has no NAME).

    The bytes returned are the ones hashed, so what is used is what was checked."""
    if not (workspace / PROJECT_DIR / name).exists():
        return None
    files = project_context(workspace)
    if not is_trusted(trusted, workspace, files):
        raise _untrusted(workspace)
    for f in files:
        if f.path == name:
            return f.data
    raise ProjectImageError(f"{PROJECT_DIR}/{name} is not a regular file")


def ensure(
    client: docker.DockerClient,
    workspace: Path,
    base_name: str,
    tag: str,
    cli: str,
    verdicts: Path,
    say: Callable[[str], None],
) -> str | None:
    """The checked project image's reference, or None without `.ironcurtain/agent.Dockerfile`."""
    dockerfile = dockerfile_of(workspace)
    if dockerfile is None:
        return None
    if dockerfile.stat().st_size > MAX_DOCKERFILE_BYTES:
        raise ProjectImageError(f"{project.DOCKERFILE} is over {MAX_DOCKERFILE_BYTES >> 10} KiB")
    problems = project.dockerfile_problems(dockerfile.read_text(errors="replace"), base_name)
    if problems:
        raise ProjectImageError("; ".join(problems))
    files = project_context(workspace)
    if not is_trusted(verdicts / TRUSTED, workspace, files):
        raise _untrusted(workspace)
    try:
        base = client.images.get(image_ref(base_name, tag))
    except docker.errors.ImageNotFound:
        raise ProjectImageError(f"the agent image {image_ref(base_name, tag)} is missing") from None
    digest = inputs_hash(files, str(base.id), tag)
    ref = image_ref(f"project-{digest[:16]}", tag)
    image = _existing(client, ref, digest)
    if image is None:
        say(f"images: building the project's agent image {ref} from {PROJECT_DIR}/")
        image = _build(client, files, ref, digest, tag)
    verdict = verdicts / f"{image.id.replace(':', '-')}.v{project.CHECKS_VERSION}"
    if verdict.is_file():
        return ref
    layers = image.attrs["RootFS"]["Layers"]
    new = layers[len(layers) - project.new_layers(image.attrs, base.attrs) :]
    problems = project.config_problems(image.attrs, base.attrs)
    if not problems:
        final = changes(read_new_layers(image, list(new)))
        entrypoint = (base.attrs.get("Config") or {}).get("Entrypoint") or []
        problems = project.layer_problems(final, cli, entrypoint)
    if problems:
        more = f"; and {len(problems) - 12} more" if len(problems) > 12 else ""
        shown = "; ".join(problems[:12]) + more
        raise ProjectImageError(f"the project's agent image {ref} is refused: {shown}")
    verdicts.mkdir(parents=True, exist_ok=True)
    verdict.write_text(f"{ref}\n")
    say(f"images: the project's agent image {ref} passes the agent image checks")
    return ref


def _existing(client: docker.DockerClient, ref: str, digest: str) -> Any:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    return image if image.labels.get(HASH_LABEL) == digest else None


def _build(
    client: docker.DockerClient, files: list[ContextFile], ref: str, digest: str, tag: str
) -> Any:
    tar = context_tar(files)
    log: list[str] = []
    try:
        for event in client.api.build(
            fileobj=tar,
            custom_context=True,
            dockerfile=project.DOCKERFILE,
            tag=ref,
            buildargs={"IMAGE_TAG": tag},
            labels={HASH_LABEL: digest},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        ):
            if "error" in event:
                raise ProjectImageError(
                    f"building {PROJECT_DIR}/{project.DOCKERFILE} failed: {event['error'].strip()}"
                    + ("\n" + "".join(log[-20:]) if log else "")
                )
            if "stream" in event:
                log.append(str(event["stream"]))
    except docker.errors.APIError as exc:
        where = f"{PROJECT_DIR}/{project.DOCKERFILE}"
        raise ProjectImageError(f"building {where} failed: {exc}") from None
    return client.images.get(ref)
