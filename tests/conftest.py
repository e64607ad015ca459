"""Shared test set-up: everything under tests/container/ is marked `container`."""

from __future__ import annotations

from pathlib import Path

import pytest

CONTAINER_DIR = Path(__file__).parent / "container"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CONTAINER_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.container)
