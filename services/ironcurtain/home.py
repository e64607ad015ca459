"""Where IronCurtain's own files live: the compose files, image build contexts and default policy.

In a checkout that is the checkout; in an installed copy (a wheel) it is the package's `_home/`
folder, copied there at build time by setup.py. Found from where this package is, never from the
current directory: an installed `ironcurtain run` works in any repository, and a checkout's
commands find their checkout wherever they are started. Standard library only, because setup.py
reads the names and skip rules below before any dependency is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

# What a session needs from the home, relative to it; setup.py copies exactly these.
HOME_PATHS: tuple[str, ...] = (
    "compose.yaml",
    "compose.shared.yaml",
    "compose.team.yaml",
    "pyproject.toml",
    "images",
    "policy",
    "services",
)
PACKAGED_HOME = "_home"  # inside the package, in a wheel
_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"})


def skipped(path: PurePath) -> bool:
    """Build by-products that belong neither in an image context nor in the wheel's home."""
    if _SKIP_DIRS.intersection(path.parts) or path.suffix == ".pyc":
        return True
    return any(part.endswith(".egg-info") or part == PACKAGED_HOME for part in path.parts)


def is_home(root: Path) -> bool:
    return (root / "compose.yaml").is_file() and (root / "images").is_dir()


class HomeMissing(RuntimeError):
    """Neither a checkout nor a packaged home is where this package is."""


@dataclass(frozen=True, slots=True)
class Home:
    root: Path
    checkout: bool  # True in a source checkout (it may hold a .env); False in an installed copy


def locate(package_dir: Path | None = None) -> Home:
    """The home of the package at `package_dir` (default: this one)."""
    package = (package_dir or Path(__file__).parent).resolve()
    packaged = package / PACKAGED_HOME
    if is_home(packaged):
        return Home(packaged, checkout=False)
    source = package.parent.parent  # <checkout>/services/ironcurtain
    if is_home(source) and (source / "pyproject.toml").is_file():
        return Home(source, checkout=True)
    raise HomeMissing(
        f"no IronCurtain files next to {package}: reinstall the package "
        "(`make install` in a checkout) or run from a checkout"
    )
