"""Build hook: a wheel carries IronCurtain's home (compose files, image contexts, default policy).

`ironcurtain.home` names what a session needs; this copies exactly that into the wheel's
`ironcurtain/_home/`, skipping build by-products the way image contexts do, so an installed copy
builds images with the same content hashes as the checkout it came from.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _home_module() -> ModuleType:
    # Executed from source: the package itself is not importable before it is built.
    path = ROOT / "services" / "ironcurtain" / "home.py"
    spec = importlib.util.spec_from_file_location("ironcurtain_home", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class BuildWithHome(build_py):
    def run(self) -> None:
        super().run()
        home = _home_module()
        target = Path(self.build_lib) / "ironcurtain" / home.PACKAGED_HOME
        shutil.rmtree(target, ignore_errors=True)
        for name in home.HOME_PATHS:
            source = ROOT / name
            paths = [source] if source.is_file() else sorted(source.rglob("*"))
            for path in paths:
                relative = path.relative_to(ROOT)
                if not path.is_file() or home.skipped(relative):
                    continue
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)  # keeps the executable bit (it is hashed)


setup(cmdclass={"build_py": BuildWithHome})
