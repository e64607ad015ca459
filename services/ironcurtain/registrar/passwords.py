"""Session passwords the registrar can recognise again after Redis forgot them (pure).

The team Redis keeps no users across a restart (only its ACL file's service users), and the
registrar keeps no state of its own, so after a restart it cannot look up who had which session
user. Instead each password it hands out carries its own proof: `nonce + HMAC(key, user, member,
nonce)`. A member presenting that password for that session proves the registrar issued it to
them; the registrar then puts back exactly that user with exactly that password (never a new
one: nobody gets a second password for a session's keys). The key is derived from the admin
credential, which only the registrar (and the team host's CLI) holds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

NONCE_HEX = 32
MAC_HEX = 64
_LABEL = b"ironcurtain registrar session passwords v1"


def derive_key(admin_password: str) -> bytes:
    """The MAC key: a separate key for a separate use, from the admin's secret."""
    return hmac.new(admin_password.encode(), _LABEL, hashlib.sha256).digest()


def _mac(key: bytes, user: str, member: str, nonce: str) -> str:
    message = "\0".join((user, member, nonce)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def issue(key: bytes, user: str, member: str) -> str:
    """A fresh password for `user`, bound to the member it is handed to (96 hex digits)."""
    nonce = secrets.token_hex(NONCE_HEX // 2)
    return nonce + _mac(key, user, member, nonce)


def verify(key: bytes, user: str, member: str, password: str) -> bool:
    """Whether the registrar issued `password` for `user` to `member` (constant time)."""
    if len(password) != NONCE_HEX + MAC_HEX:
        return False
    nonce, given = password[:NONCE_HEX], password[NONCE_HEX:]
    return hmac.compare_digest(_mac(key, user, member, nonce), given)
