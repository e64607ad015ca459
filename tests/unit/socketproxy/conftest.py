from __future__ import annotations

from collections.abc import Iterator

import pytest

from .lua import Lua


@pytest.fixture(scope="module")
def lua() -> Iterator[Lua]:
    interpreter = Lua()
    try:
        yield interpreter
    finally:
        interpreter.close()
