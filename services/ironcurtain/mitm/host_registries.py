"""The registries the host's own pip, npm and apt use, asked of them: the one I/O of adoption.

It runs the tools (`pip config list`, `npm config get registry`, pip itself for its built-in
default) and reads apt's source lists; adopt.py parses what they say and `registries.adopted`
merges it, both pure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from . import adopt
from .registries import Registry, adopted


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        result = subprocess.run(  # fixed argv: the user's own tools
            argv, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def adopt_from_host(
    run: Callable[[list[str]], str | None] = _run,
    read: Callable[[Path], str | None] = _read,
    env: Mapping[str, str] | None = None,
    apt_dir: Path = Path("/etc/apt"),
) -> list[Registry]:
    """Ask the host's pip, npm and apt which registries they use (I/O at the edge)."""
    env = os.environ if env is None else env
    pip_urls = adopt.pip_env(env) or adopt.pip_config_list(run(["pip", "config", "list"]) or "")
    if not pip_urls:
        # pip's own built-in default, asked from pip itself (we ship no registry name).
        default = run(
            ["python3", "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"]
        )
        pip_urls = adopt.npm_registry_output(default or "")
    npm_urls = adopt.npm_registry_output(run(["npm", "config", "get", "registry"]) or "")
    sources: list[adopt.AptSource] = []
    main = read(apt_dir / "sources.list")
    if main:
        sources += adopt.apt_one_line(main)
    parts = apt_dir / "sources.list.d"
    for file in sorted(parts.glob("*.list")) if parts.is_dir() else ():
        sources += adopt.apt_one_line(read(file) or "")
    for file in sorted(parts.glob("*.sources")) if parts.is_dir() else ():
        sources += adopt.apt_deb822(read(file) or "")
    return adopted(pip_urls, npm_urls, sources)
