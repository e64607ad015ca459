"""Answers already checked, by content hash of what was asked: unchanged inputs cost no LLM call.

Only answers that passed every check are kept, and a cached answer is checked again when used,
so a stale or edited cache entry can never skip validation.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Cache:
    root: Path  # <state>/llm-cache

    def _path(self, kind: str, digest: str) -> Path:
        if not _DIGEST.match(digest) or not kind.isidentifier():
            raise ValueError(f"bad cache key {kind}/{digest}")
        return self.root / kind / digest

    def get(self, kind: str, digest: str) -> str | None:
        try:
            return self._path(kind, digest).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def put(self, kind: str, digest: str, text: str) -> None:
        path = self._path(kind, digest)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
