"""Everything under tests/conformance/ is marked `conformance`: it runs the official MCP
conformance suite (scripts/conformance.sh provides it and Node 22; `make test` runs that)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.conformance)
