"""Build our images with the Docker engine, skipping those whose content hash is unchanged."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from ..config.settings import DEFAULT_BASE_IMAGE, load
from ..home import skipped
from .catalog import DEFAULT_TAG, HASH_LABEL, ImageSpec, build_order, discover
from .digest import ContextFile, content_hash

EXTRA_CA_NAME = "extra-ca.pem"  # always present in a context; empty when no extra CA is set
_TLS_FAILURE_MARKS = (
    "CERTIFICATE_VERIFY_FAILED",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "certificate verify",
)


class BuildError(RuntimeError):
    """An image could not be built; the message carries the end of the build log."""


@dataclass(frozen=True, slots=True)
class BuildSettings:
    repo_root: Path
    base_image: str = DEFAULT_BASE_IMAGE
    extra_ca_cert: Path | None = None
    image_tag: str = DEFAULT_TAG  # IRONCURTAIN_IMAGE_TAG: images of parallel worktrees stay apart

    @classmethod
    def from_environ(
        cls, repo_root: Path, environ: Mapping[str, str] | None = None, checkout: bool = True
    ) -> BuildSettings:
        """The settings as every command sees them: environment > user config > .env > default.

        An installed copy (`checkout=False`) has no `.env`: the user config file stands in.
        """
        environ = os.environ if environ is None else environ
        settings = load(environ, repo_root if checkout else None)
        return cls(
            repo_root=repo_root,
            base_image=settings.base_image,
            extra_ca_cert=settings.extra_ca_cert,
            image_tag=settings.image_tag,
        )


def _walk(root: Path, relative_to: Path) -> Iterator[ContextFile]:
    paths = [root] if root.is_file() else sorted(root.rglob("*"))
    for path in paths:
        if not path.is_file() or skipped(path.relative_to(relative_to)):
            continue
        yield ContextFile(
            path=path.relative_to(relative_to).as_posix(),
            executable=os.access(path, os.X_OK),
            data=path.read_bytes(),
        )


def context_files(spec: ImageSpec, settings: BuildSettings) -> list[ContextFile]:
    """The image folder, its declared extra paths, and the (possibly empty) extra CA bundle."""
    files = [f for f in _walk(spec.directory, spec.directory) if f.path != "context"]
    for extra in spec.extra_paths:
        files.extend(_walk(settings.repo_root / extra, settings.repo_root))
    ca = b""
    if settings.extra_ca_cert is not None:
        if not settings.extra_ca_cert.is_file():
            raise BuildError(f"EXTRA_CA_CERT={settings.extra_ca_cert} is not a readable file")
        ca = settings.extra_ca_cert.read_bytes()
    files.append(ContextFile(path=EXTRA_CA_NAME, executable=False, data=ca))
    return files


def context_tar(files: list[ContextFile]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for f in files:
            info = tarfile.TarInfo(f.path)
            info.size = len(f.data)
            info.mode = 0o755 if f.executable else 0o644
            info.mtime = 0  # the build cache keys on content, not on when we assembled it
            tar.addfile(info, io.BytesIO(f.data))
    buffer.seek(0)
    return buffer


class ImageBuilder:
    """Builds images in dependency order; each carries HASH_LABEL with the hash of its inputs."""

    def __init__(
        self,
        client: docker.DockerClient,
        settings: BuildSettings,
        say: Callable[[str], None] = print,
    ) -> None:
        self._client = client
        self._settings = settings
        self._say = say

    def _base_image_id(self) -> str:
        try:
            found = self._client.images.get(self._settings.base_image).id
        except docker.errors.ImageNotFound as exc:
            raise BuildError(
                f"base image {self._settings.base_image} is not in the engine; "
                "pull or load it (in a checkout: make base)"
            ) from exc
        if not found:  # the engine always gives an image an ID; never hash a base without one
            raise BuildError(f"base image {self._settings.base_image} has no ID")
        return found

    def _current_hash(self, tag: str) -> str | None:
        try:
            return self._client.images.get(tag).labels.get(HASH_LABEL)
        except docker.errors.ImageNotFound:
            return None

    def build(self, wanted: list[str] | None = None) -> dict[str, str]:
        """Build what changed among `wanted` (default all); returns name -> content hash."""
        specs = discover(self._settings.repo_root)
        base_id = self._base_image_id()
        hashes: dict[str, str] = {}
        for spec in build_order(specs, wanted):
            files = context_files(spec, self._settings)
            digest = content_hash(
                files,
                {
                    "BASE_IMAGE": self._settings.base_image,
                    "BASE_IMAGE_ID": base_id,
                    "IMAGE_TAG": self._settings.image_tag,
                },
                {parent: hashes[parent] for parent in spec.parents},
            )
            hashes[spec.name] = digest
            if self._current_hash(spec.ref(self._settings.image_tag)) == digest:
                self._say(f"images: {spec.ref(self._settings.image_tag)} is up to date")
                continue
            self._say(f"images: building {spec.ref(self._settings.image_tag)}")
            self._build_one(spec, files, digest)
        return hashes

    def _build_one(self, spec: ImageSpec, files: list[ContextFile], digest: str) -> None:
        log: list[str] = []
        tag = spec.ref(self._settings.image_tag)
        stream = self._client.api.build(
            fileobj=context_tar(files),
            custom_context=True,
            tag=tag,
            # IMAGE_TAG lets a Dockerfile build FROM ironcurtain/NAME:${IMAGE_TAG} of its worktree.
            buildargs={
                "BASE_IMAGE": self._settings.base_image,
                "IMAGE_TAG": self._settings.image_tag,
            },
            labels={HASH_LABEL: digest},
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                log.extend(chunk["stream"].rstrip("\n").splitlines())
            if "error" in chunk:
                tail = "\n".join(log[-30:])
                hint = ""
                if any(mark in tail for mark in _TLS_FAILURE_MARKS):
                    hint = (
                        "\nhint: TLS verification failed inside the build; if a TLS-intercepting"
                        " proxy sits in the way, set EXTRA_CA_CERT to its CA bundle (.env.example)"
                    )
                raise BuildError(f"building {tag} failed: {chunk['error'].strip()}\n{tail}{hint}")
        self._say(f"images: built {tag}")
