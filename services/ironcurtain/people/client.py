"""A small client for the approval service's JSON API (what the CLI uses)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_PORT = 8470  # the approval service's, on the host's 127.0.0.1


class ApiError(Exception):
    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


@dataclass(frozen=True, slots=True)
class Client:
    base_url: str
    token: str
    timeout_s: float = 10.0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self.base_url.startswith(("http://", "https://")):
            raise ApiError(0, f"the approval URL must be http(s): {self.base_url!r}")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            self.base_url.rstrip("/") + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                data = json.loads(exc.read())
            except ValueError:
                data = {}
            message = data.get("message") or data.get("error") or exc.reason
            raise ApiError(exc.code, str(message), data) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(
                0, f"the approval service at {self.base_url} is unreachable ({exc})"
            ) from None

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
        self, escalation_id: str, action: str, *, reason: str = "", remember: str = ""
    ) -> dict[str, Any]:
        # No `by`: the service records the member whose token this is.
        body = {"reason": reason, "remember": remember}
        return self.call("POST", f"/api/v1/escalations/{escalation_id}/{action}", body)
