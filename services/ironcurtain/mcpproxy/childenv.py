"""What a backend's child process inherits from the process that starts it (the proxy, or the
sandbox): a short list of ordinary variables, never the parent's own settings or secrets."""

from __future__ import annotations

from collections.abc import Mapping

INHERITED = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")


def inherited(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: environ[k] for k in INHERITED if k in environ}
