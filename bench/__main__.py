"""`python -m bench [NAME ...]`: run benchmarks and write bench/results/NAME.json.

Every benchmark measures its own baseline in the same run and reports both, so the figures are
ratios against something measured on the same (shared, noisy) machine at the same time.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def available() -> list[str]:
    return sorted(
        p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "common"
    )


def run(name: str) -> dict[str, float | int | str]:
    module = importlib.import_module(f"bench.{name}")
    figures = module.run()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"bench: no benchmark named {', '.join(unknown)}; have: {', '.join(available())}")
        return 2
    if not names:
        print("bench: no benchmarks yet")
        return 0
    for name in names:
        print(f"bench: {name}")
        for key, value in sorted(run(name).items()):
            print(f"  {key:40} {value}")
        print(f"  -> {RESULTS / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
