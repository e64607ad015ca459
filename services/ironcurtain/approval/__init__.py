"""The approval service: a human sees pending escalations and decides (Flask, served by gunicorn).

`create_app(test_config=None)` (app.py) builds it. It loads on first use: the CLI imports this
package for every command (`ironcurtain approve`, and the proxies' own start-up), and Flask with
its views took a fifth of a second of CPU to import there.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name != "create_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .app import create_app

    return create_app
