"""`ironcurtain images ...`: list our images or build the changed ones."""

from __future__ import annotations

import argparse
from pathlib import Path

from .catalog import CatalogError, discover


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("images", help="list our images or build the changed ones")
    sub = parser.add_subparsers(dest="images_command", required=True)
    build = sub.add_parser("build", help="build images whose content hash changed")
    build.add_argument("names", nargs="*", help="images to build (default: all)")
    build.set_defaults(handler=_build)
    listing = sub.add_parser("list", help="list the images and what they build FROM")
    listing.set_defaults(handler=_list)


def _repo_root() -> Path:
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "images").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise SystemExit("images: run this inside an IronCurtain checkout (no images/ folder found)")


def _list(args: argparse.Namespace) -> int:
    for spec in discover(_repo_root()).values():
        parents = ", ".join(spec.parents) or "${BASE_IMAGE}"
        print(f"{spec.ref():32} FROM {parents}")
    return 0


def _build(args: argparse.Namespace) -> int:
    import docker  # imported here so `--help` works without an engine

    from ..config.settings import SettingsError
    from .build import BuildError, BuildSettings, ImageBuilder

    try:
        client = docker.from_env()
        builder = ImageBuilder(client, BuildSettings.from_environ(_repo_root()))
        builder.build(args.names or None)
    except (BuildError, CatalogError, SettingsError) as exc:
        print(f"images: error: {exc}")
        return 1
    return 0
