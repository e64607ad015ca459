"""A session on a Claude subscription: the stored login, its Refresher wired to the host's
file, the token endpoint and the key store, the agent's fake credentials, the MITM's entry.

Chosen when the agent's provider has a subscription login (provider data `oauth`) and one is
stored (`ironcurtain login claude`); otherwise the session uses the API key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..keystore import KeyStore, KeyStoreError
from ..mitm.fake_keys import new_fake_key
from ..mitm.providers import Provider
from .oauth import (
    STORE_NAME,
    OAuthCredentials,
    dump_store,
    fake_credentials,
    load_store,
    refresh_body,
)
from .plan import Upstream
from .refresh import Refresher
from .tokens import ClaudeFile, TokenServer, grant_client

SOCKET_DIR = "oauth"  # in the session folder; mounted into the MITM only
SOCKET_NAME = "token.sock"
SOCKET_IN_MITM = f"/run/ironcurtain/{SOCKET_DIR}/{SOCKET_NAME}"


@dataclass
class Subscription:
    provider: Provider
    refresher: Refresher
    fake_access: str
    fake_refresh: str
    server: TokenServer | None = None

    def agent_credentials(self) -> str:
        """The agent's `~/.claude/.credentials.json`: fakes only."""
        return fake_credentials(self.refresher.current, self.fake_access, self.fake_refresh)

    def mitm_entry(self) -> dict[str, str]:
        return {"fake": self.fake_access, "oauth_socket": SOCKET_IN_MITM}

    def serve(self, folder: Path, reader_uid: int | None) -> None:
        self.server = TokenServer(folder / SOCKET_NAME, self.refresher, reader_uid).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def load(
    store: KeyStore, provider: Provider, upstreams: Sequence[Upstream] = ()
) -> Subscription | None:
    """The stored subscription for `provider`, or None (the session then needs an API key)."""
    spec = provider.oauth
    if spec is None or not store.has(STORE_NAME):
        return None
    path = store.checked_path(STORE_NAME)  # refused when readable by others
    try:
        creds, source = load_store(path.read_text())
    except ValueError as exc:
        raise KeyStoreError(str(exc)) from None
    # Tests and mirrors: an upstream declared for the token host takes the host's refresh too
    # (its address as the host reaches it), TLS still verified for the token host's name.
    override = next((u for u in upstreams if u.host == spec.token_host), None)
    address = None
    if override is not None:
        name, _, port = override.address.rpartition(":")
        address = (name, int(port))
    post = grant_client(spec.token_url, override.ca_file if override else None, address)

    def save(new: OAuthCredentials) -> None:
        store.write(STORE_NAME, dump_store(new, source))

    refresher = Refresher(
        creds,
        grant=lambda refresh: post(refresh_body(refresh, spec.client_id)),
        save=save,
        clock=time.time,
        host=ClaudeFile(Path(source)) if source else None,
    )
    return Subscription(
        provider, refresher, new_fake_key(spec.token_prefix), new_fake_key(spec.refresh_prefix)
    )
