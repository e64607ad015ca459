"""`ironcurtain images ...`: list our images or build the changed ones."""

from __future__ import annotations

import argparse

from ..home import Home, HomeMissing, locate
from .catalog import CatalogError, discover


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("images", help="list our images or build the changed ones")
    sub = parser.add_subparsers(dest="images_command", required=True)
    build = sub.add_parser("build", help="build images whose content hash changed")
    build.add_argument("names", nargs="*", help="images to build (default: all)")
    build.set_defaults(handler=_build)
    listing = sub.add_parser("list", help="list the images and what they build FROM")
    listing.set_defaults(handler=_list)
    trust = sub.add_parser(
        "trust", help="trust this repository's .ironcurtain/ as it is now (its agent image)"
    )
    trust.add_argument("workspace", nargs="?", default=".", help="the repository (default: .)")
    trust.set_defaults(handler=_trust)
    untrust = sub.add_parser(
        "untrust", help="forget that this repository's .ironcurtain/ is trusted"
    )
    untrust.add_argument("workspace", nargs="?", default=".", help="the repository (default: .)")
    untrust.set_defaults(handler=_untrust)


def _untrust(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..state import state_dir
    from .project_build import trusted_dir, untrust

    workspace = Path(args.workspace).resolve()
    if untrust(workspace, trusted_dir(state_dir())):
        print(f"images: {workspace}/.ironcurtain is no longer trusted")
    else:
        print(f"images: {workspace}/.ironcurtain was not trusted")
    return 0


def _trust(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..state import state_dir
    from .project_build import ProjectImageError, trust, trusted_dir

    workspace = Path(args.workspace).resolve()
    try:
        digest, files = trust(workspace, trusted_dir(state_dir()))
    except (ProjectImageError, OSError) as exc:
        print(f"images: error: {exc}")
        return 1
    for f in files:
        print(f"  {f.path} ({len(f.data)} bytes)")
    print(f"images: trusted {workspace}/.ironcurtain as it is now ({digest[:16]})")
    return 0


def _home() -> Home:
    try:
        return locate()
    except HomeMissing as exc:
        raise SystemExit(f"images: {exc}") from None


def _list(args: argparse.Namespace) -> int:
    for spec in discover(_home().root).values():
        parents = ", ".join(spec.parents) or "${BASE_IMAGE}"
        print(f"{spec.ref():32} FROM {parents}")
    return 0


def _build(args: argparse.Namespace) -> int:
    import docker  # imported here so `--help` works without an engine

    from ..config.settings import SettingsError
    from .build import BuildError, BuildSettings, ImageBuilder

    try:
        client = docker.from_env()
        home = _home()
        settings = BuildSettings.from_environ(home.root, checkout=home.checkout)
        builder = ImageBuilder(client, settings)
        builder.build(args.names or None)
    except (BuildError, CatalogError, SettingsError) as exc:
        print(f"images: error: {exc}")
        return 1
    return 0
