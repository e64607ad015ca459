from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Stack, start


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start(tmp_path_factory.mktemp("mitm"))
    yield running
    running.close()


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Path:
    return tmp_path
