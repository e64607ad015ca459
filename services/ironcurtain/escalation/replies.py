"""Redis replies as what we read them as. Our clients keep `decode_responses` off, so a reply
is bytes; redis-py's types allow str (and more) too, and this is where that is narrowed, failing
loudly on anything else. Pure."""

from __future__ import annotations


def raw(value: object) -> bytes:
    """A reply's bytes (a str, from a client that decodes, is encoded back as UTF-8)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"a Redis reply that is not a string: {type(value).__name__}")


def text(value: object, errors: str = "strict") -> str:
    """A reply as text, decoded as UTF-8 (`errors` as for bytes.decode)."""
    if isinstance(value, str):
        return value
    return raw(value).decode(errors=errors)
