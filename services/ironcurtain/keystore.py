"""Real provider keys: files under the state directory, owner-only, never environment variables.

Only the MITM proxy ever reads them (as compose secrets); the agent gets fakes.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
# Values that are clearly examples or placeholders, not keys.
_PLACEHOLDER = re.compile(r"(change-?me|your[-_ ]?(api[-_ ]?)?key|example|xxxx|\.\.\.|<|>)", re.I)


class KeyStoreError(ValueError):
    """A key is missing, unsafe to use, or not a key at all; the message says which."""


@dataclass(frozen=True, slots=True)
class KeyStore:
    root: Path  # <state>/keys

    def path_for(self, provider: str) -> Path:
        if not _PROVIDER.match(provider):
            raise KeyStoreError(f"{provider!r} is not a provider name")
        return self.root / provider

    def set(self, provider: str, value: str) -> Path:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise KeyStoreError(f"the {provider} key is empty or contains white space")
        if _PLACEHOLDER.search(value):
            raise KeyStoreError(f"the {provider} key looks like a placeholder, not a real key")
        return self.write(provider, value + "\n")

    def write(self, name: str, text: str) -> Path:
        """Store `text` as the entry `name` (owner-only, replaced atomically)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path_for(name)
        tmp = path.with_name(f".{path.name}.tmp")
        old = os.umask(0o077)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, path)
        finally:
            os.umask(old)
        return path

    def has(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def checked_path(self, provider: str) -> Path:
        """The key file for a session; refused when missing or readable by others."""
        path = self.path_for(provider)
        if not path.is_file():
            raise KeyStoreError(
                f"no real key for {provider}: store one with `ironcurtain keys set {provider}` "
                f"(it goes to {path}, mode 0600)"
            )
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise KeyStoreError(f"refusing {path}: it is readable by others (chmod 600 it)")
        return path

    def providers(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_file() and not p.name.startswith(".")
        )
