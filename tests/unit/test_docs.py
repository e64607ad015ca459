"""The docs name what exists: every test the threat model names, every module of the package."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_REF = re.compile(r"`(tests/[^`:\s]+\.py)?(?:::([A-Za-z_][A-Za-z_0-9]*))?`")


def _named_tests(row: str) -> list[tuple[str, str | None]]:
    """(path, test name) pairs of one table row; `::name` refers to the row's last path."""
    found: list[tuple[str, str | None]] = []
    last_path: str | None = None
    for path, name in _REF.findall(row):
        if path:
            last_path = path
        if last_path and (path or name):
            found.append((last_path, name or None))
    return found


def test_every_test_the_threat_model_names_exists() -> None:
    text = (REPO / "docs" / "threat-model.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    named = [ref for row in rows for ref in _named_tests(row)]
    assert len(named) > 50  # the table is really read: a broken pattern would find nothing
    missing = []
    for path, name in named:
        source = REPO / path
        if not source.is_file():
            missing.append(path)
        elif name and not re.search(
            rf"^\s*(async )?def {name}\b|^\s*class {name}\b", source.read_text(), re.M
        ):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/threat-model.md names tests that do not exist: {missing}"


def test_the_architecture_page_lists_every_module_and_no_other() -> None:
    package = REPO / "services" / "ironcurtain"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py")}
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Every module", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_/]+\.py)` \|", section, re.M))
    assert len(modules) > 150  # really read: the package is this large
    assert modules - listed == set(), "modules missing from docs/architecture.md"
    assert listed - modules == set(), "docs/architecture.md lists modules that do not exist"
