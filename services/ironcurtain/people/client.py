"""A small client for the approval service's JSON API (what the CLI uses)."""

from __future__ import annotations

import argparse
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import bearer
from ..state import team_ca_file

DEFAULT_PORT = 8470  # the approval service's, on the host's 127.0.0.1


class ApiError(bearer.CallError):
    pass


@dataclass(frozen=True, slots=True)
class Client:
    """`context` is the only trust anchor over https (the CLI passes the team CA's); None: the
    system store. The token goes to `base_url` alone: no redirect is followed, no proxy used."""

    base_url: str
    token: str
    context: ssl.SSLContext | None = None
    timeout_s: float = 10.0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self.base_url.startswith(("http://", "https://")):
            raise ApiError(0, f"the approval URL must be http(s): {self.base_url[:100]!r}")
        url = self.base_url.rstrip("/") + path
        try:
            return bearer.call(
                url, method, self.token, body, context=self.context, timeout_s=self.timeout_s
            )
        except bearer.CallError as exc:
            if exc.status and not 300 <= exc.status < 400:
                raise ApiError(exc.status, str(exc), exc.body) from None
            where = f"the approval service at {self.base_url[:100]}"
            raise ApiError(exc.status, f"{where} {exc}", exc.body) from None

    def whoami(self) -> str:
        return str(self.call("GET", "/api/v1/whoami")["member"])

    def pending(self, most: int = 10_000) -> list[dict[str, Any]]:
        """Every pending escalation (up to `most`), latest deadline first, page by page."""
        found: list[dict[str, Any]] = []
        query = {"limit": "200"}
        while len(found) < most:
            page = self.call("GET", "/api/v1/escalations?" + urllib.parse.urlencode(query))
            found += page["escalations"]
            if not page.get("next"):
                break
            query = {"limit": "200", "cursor": str(page["next"])}
        return found[:most]

    def decide(
        self,
        escalation_id: str,
        action: str,
        *,
        reason: str = "",
        remember: str = "",
        digest: str | None = None,
    ) -> dict[str, Any]:
        """`digest`: of the escalation as it was shown (`escalation.digest` of a GET); the
        service refuses (409) if the record is not that one any more. Required to approve."""
        # No `by`: the service records the member whose token this is.
        body: dict[str, Any] = {"reason": reason, "remember": remember}
        if digest is not None:
            body["digest"] = digest
        return self.call("POST", f"/api/v1/escalations/{escalation_id}/{action}", body)


def add_ca_option(parser: argparse.ArgumentParser) -> None:
    """`--ca`: the only CA trusted for an https approval URL (the team's page)."""
    stored = team_ca_file()
    parser.add_argument(
        "--ca",
        type=Path,
        default=stored if stored.exists() else None,
        help="over https, trust only this CA (default: the team CA `shared join` stored, "
        "if any; else the system's)",
    )
