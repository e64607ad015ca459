"""`ironcurtain login claude`: import a Claude subscription into the key store.

From Claude Code's credentials file (`~/.claude/.credentials.json`, or under
`$CLAUDE_CONFIG_DIR`): access and refresh tokens and their expiry; the file's path is kept so
each refresh re-reads it first and writes back what it refreshed (session/refresh.py). Or,
with `--token`, a long-lived token from `claude setup-token` (read from the terminal or stdin).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..keystore import KeyStore, KeyStoreError
from .oauth import (
    STORE_NAME,
    OAuthCredentials,
    OAuthError,
    dump_store,
    from_setup_token,
    parse_claude_file,
)


def claude_credentials_file(environ: dict[str, str] | None = None) -> Path:
    environ = dict(os.environ) if environ is None else environ
    base = environ.get("CLAUDE_CONFIG_DIR")
    home = Path(base) if base else Path(environ.get("HOME", str(Path.home()))) / ".claude"
    return home / ".credentials.json"


def import_login(
    store: KeyStore, file: Path | None = None, token: str | None = None
) -> tuple[Path, OAuthCredentials]:
    """Store the login; raise OAuthError (or KeyStoreError) saying what is wrong."""
    if token is not None:
        creds, source = from_setup_token(token), None
    else:
        assert file is not None
        try:
            text = file.read_text()
        except FileNotFoundError:
            raise OAuthError(
                f"{file} does not exist: sign in with `claude` first (on macOS Claude Code "
                "keeps its login in the Keychain: use `claude setup-token` and --token)"
            ) from None
        creds, source = parse_claude_file(text), str(file.resolve())
    return store.write(STORE_NAME, dump_store(creds, source)), creds


def register_login(commands: argparse._SubParsersAction) -> None:
    login = commands.add_parser("login", help="use a subscription login (Claude) in sessions")
    sub = login.add_subparsers(dest="login_provider", required=True)
    claude = sub.add_parser("claude", help="import Claude Code's OAuth login into the key store")
    claude.add_argument(
        "--file", type=Path, default=None, help="Claude Code's credentials file to import"
    )
    claude.add_argument(
        "--token", action="store_true", help="read a `claude setup-token` token instead"
    )
    claude.set_defaults(handler=_login_claude)


def _login_claude(args: argparse.Namespace) -> int:
    import getpass
    import sys

    from ..state import state_dir

    store = KeyStore(state_dir() / "keys")
    try:
        if args.token:
            prompt = "token from `claude setup-token` (not echoed): "
            value = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.read()
            path, creds = import_login(store, token=value)
        else:
            path, creds = import_login(store, file=args.file or claude_credentials_file())
    except (OAuthError, KeyStoreError) as exc:
        print(f"login: refused: {exc}")
        return 1
    kind = "refreshed by each session" if creds.refreshable else "long-lived"
    print(
        f"login: stored your Claude {creds.subscription or ''} subscription ({kind}) in {path} "
        "(mode 0600); Claude Code sessions now use it, the agent only ever sees a fake token"
    )
    return 0
