"""The state folder: where IronCurtain keeps what outlives a command, and the files in it.

`<state>` is `$IRONCURTAIN_STATE_DIR`, else `$XDG_STATE_HOME/ironcurtain`, else
`$HOME/.local/state/ironcurtain` (HOME from the environment given, else the process's).
Pure: nothing is read or made here.

    <state>/keys/           the real API keys, 0600 (keystore.py)
    <state>/shared/         the team-shared stack's secrets and certificates (shared/files.py)
    <state>/team/           a joined machine's team server files (registrar/client.py)
    <state>/member_token    this person's approval token, stored by `ironcurtain shared login`
    <state>/sessions/       one folder per session (session/layout.py)
    <state>/llm-cache/      the LLM answers of annotate-tools and compile-policy (english/cache.py)
    <state>/approval-sessions/  the approval service's web sessions (approval/sessions.py)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The state folder named by `environ` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    if env.get("IRONCURTAIN_STATE_DIR"):
        return Path(env["IRONCURTAIN_STATE_DIR"])
    base = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME", "~")).expanduser() / ".local/state"
    )
    return Path(base) / "ironcurtain"


def shared_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The team-shared stack's folder: `$IRONCURTAIN_SHARED_DIR`, else `<state>/shared`."""
    env = os.environ if environ is None else environ
    return Path(env.get("IRONCURTAIN_SHARED_DIR") or state_dir(env) / "shared")


def member_token_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where `ironcurtain shared login` stores this person's approval token."""
    return state_dir(environ) / "member_token"


def team_dir(environ: Mapping[str, str] | None = None) -> Path:
    """A joined machine's team server files (`ironcurtain shared join`; registrar/client.py)."""
    return state_dir(environ) / "team"


def team_ca_file(environ: Mapping[str, str] | None = None) -> Path:
    """The team CA `shared join` stored: the only anchor for the team's HTTPS services."""
    return team_dir(environ) / "ca.pem"
