"""The team stack's compose files, read as data: what they hand the containers."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def services(name: str) -> dict[str, dict]:
    return yaml.safe_load((REPO / name).read_text())["services"]


def test_no_service_gets_a_webhook_url_from_the_environment() -> None:
    """A webhook URL is a credential: the worker reads it from its file (webhook.py), and no
    compose file passes one through an environment variable."""
    for name in ("compose.shared.yaml", "compose.team.yaml"):
        for service, spec in services(name).items():
            environment = spec.get("environment") or {}
            names = (
                environment
                if isinstance(environment, dict)
                else [e.split("=", 1)[0] for e in environment]
            )
            assert not [n for n in names if "WEBHOOK" in n and n != "IRONCURTAIN_WEBHOOK_FILE"], (
                name,
                service,
            )


def test_control_the_worker_gets_the_webhook_file_read_only() -> None:
    worker = services("compose.shared.yaml")["worker"]
    assert worker["environment"]["IRONCURTAIN_WEBHOOK_FILE"] == "/run/notify/webhook.json"
    assert any(v.endswith("/notify:/run/notify:ro") for v in worker["volumes"])
