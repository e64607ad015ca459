"""Shared test set-up: everything under tests/container/ is marked `container`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

CONTAINER_DIR = Path(__file__).parent / "container"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CONTAINER_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.container)


# Hypothesis: examples are judged, never timed. A loaded machine (CI beside other builds) makes
# generation and single examples slow, which is not a failure of the code under test.
settings.register_profile(
    "ironcurtain", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ironcurtain")
