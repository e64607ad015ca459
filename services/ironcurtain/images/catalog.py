"""The images of ours under images/<name>/Dockerfile, and the order they build in.

Pure apart from reading the files it is pointed at: no Docker here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TAG_PREFIX = "ironcurtain/"
HASH_LABEL = "org.ironcurtain.content-hash"
DEFAULT_TAG = "latest"
EXTRA_CONTEXT_FILE = "context"  # repo-relative paths, one a line, added to an image's context

_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)


class CatalogError(ValueError):
    """The images folder describes something we cannot build."""


@dataclass(frozen=True, slots=True)
class ImageSpec:
    name: str
    directory: Path
    extra_paths: tuple[str, ...]  # repo-relative files or folders copied into the context
    parents: tuple[str, ...]  # names of our own images this one builds FROM

    def ref(self, tag: str = DEFAULT_TAG) -> str:
        return image_ref(self.name, tag)


def image_ref(name: str, tag: str = DEFAULT_TAG) -> str:
    """`ironcurtain/NAME:TAG`. Worktrees set their own tag so their images never collide."""
    return f"{TAG_PREFIX}{name}:{tag}"


def parents_of(dockerfile_text: str) -> tuple[str, ...]:
    """Names of our images that a Dockerfile builds FROM (`ironcurtain/NAME[:tag]`)."""
    names = []
    for ref in _FROM.findall(dockerfile_text):
        if ref.startswith(TAG_PREFIX):
            name = ref[len(TAG_PREFIX) :].split(":", 1)[0].split("@", 1)[0]
            if name not in names:
                names.append(name)
    return tuple(names)


def _extra_paths(image_dir: Path, repo_root: Path) -> tuple[str, ...]:
    listing = image_dir / EXTRA_CONTEXT_FILE
    if not listing.is_file():
        return ()
    paths = []
    for number, raw in enumerate(listing.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        resolved = (repo_root / line).resolve()
        if not resolved.is_relative_to(repo_root.resolve()) or not resolved.exists():
            raise CatalogError(f"{listing}:{number}: {line!r} is not a path inside the repository")
        paths.append(line.rstrip("/"))
    return tuple(paths)


def discover(repo_root: Path) -> dict[str, ImageSpec]:
    """Every images/<name>/ holding a Dockerfile, by name."""
    specs: dict[str, ImageSpec] = {}
    for dockerfile in sorted((repo_root / "images").glob("*/Dockerfile")):
        image_dir = dockerfile.parent
        specs[image_dir.name] = ImageSpec(
            name=image_dir.name,
            directory=image_dir,
            extra_paths=_extra_paths(image_dir, repo_root),
            parents=parents_of(dockerfile.read_text()),
        )
    return specs


def build_order(specs: dict[str, ImageSpec], wanted: list[str] | None = None) -> list[ImageSpec]:
    """The wanted images (default: all) and their parents, parents first."""
    order: list[ImageSpec] = []
    visiting: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if any(spec.name == name for spec in order):
            return
        if name not in specs:
            via = f" (needed by {chain[-1]})" if chain else ""
            raise CatalogError(f"no image named {name!r}{via}; known: {', '.join(sorted(specs))}")
        if name in visiting:
            raise CatalogError(f"images build FROM each other in a cycle: {' -> '.join(chain)}")
        visiting.add(name)
        for parent in specs[name].parents:
            visit(parent, (*chain, name))
        visiting.discard(name)
        order.append(specs[name])

    for name in wanted if wanted is not None else sorted(specs):
        visit(name, ())
    return order
