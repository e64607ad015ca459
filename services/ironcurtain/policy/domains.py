"""Which entries a domain list (`domains_in` / `domains_not_in`) may hold. Pure, apart from
reading the Public Suffix List that the `publicsuffixlist` package ships (never fetched).

An entry names a host and covers its sub-domains, so an entry is a wildcard over everything
below it. Below a shared-hosting suffix (readthedocs.io, github.io, pages.dev, netlify.app,
vercel.app, ...) anyone can publish a site under a name of their choice: an agent could pick
one and send data there with no human in the loop. So such a suffix (or a public suffix like
`io`, `co.uk`) is never an entry, with or without `*.`; a named site below it
(`requests.readthedocs.io`, `NAME.github.io`) is, like any other host name. Shared hosting is
what the Public Suffix List's private section lists, plus the few below that it does not.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

# Shared hosting the Public Suffix List leaves out (aliases of ones it lists).
EXTRA_SHARED = frozenset({"rtfd.io", "rtfd.org", "readthedocs.org"})

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@functools.cache
def _suffix_rules() -> frozenset[str]:
    text = (resources.files("publicsuffixlist") / "public_suffix_list.dat").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return frozenset(rule for rule in lines if rule and not rule.startswith("//"))


def is_public_suffix(name: str) -> bool:
    """Whether `name` (lower case, ASCII) is itself a public or shared-hosting suffix."""
    if name in EXTRA_SHARED:
        return True
    if "xn--" in name:  # the list spells IDN suffixes in Unicode
        try:
            return is_public_suffix(name.encode("ascii").decode("idna")) or _listed(name)
        except UnicodeError:
            pass
    return _listed(name)


def _listed(name: str) -> bool:
    rules = _suffix_rules()
    if "!" + name in rules:
        return False
    if name in rules:
        return True
    parent = name.partition(".")[2]
    if parent and "*." + parent in rules:
        return True
    return "." not in name  # a top-level name (the list's implicit "*" rule)


def entry_problem(entry: str) -> str | None:
    """Why `entry` cannot be in a domain list, or None."""
    name = entry.lower().removeprefix("*.").rstrip(".")
    if not name.isascii():
        return f"{entry!r} is not an ASCII host name (write IDN hosts in punycode)"
    if "*" in name:
        return f"{entry!r}: a wildcard may only lead ('*.example.com'); this one matches too much"
    labels = name.split(".")
    if len(labels) < 2:
        return f"{entry!r} would match every host under a top-level domain"
    if not all(_LABEL.fullmatch(label) for label in labels):
        return f"{entry!r} is not a host name (no scheme, port, path or wildcard inside)"
    if labels[-1].isdigit():
        return f"{entry!r} is an IP address, not a host name"
    if is_public_suffix(name):
        return (
            f"{name!r} is a public or shared-hosting suffix: anyone can publish a site under it, "
            f"so it can never be a wildcard; name the sites instead (e.g. 'project.{name}')"
        )
    return None
