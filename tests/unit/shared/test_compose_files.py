"""The team stack's compose files, read as data: what they hand the containers."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


class ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags (`!override`, `!reset`) read as the plain values they carry."""


for _tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: (
            loader.construct_sequence(node)
            if isinstance(node, yaml.SequenceNode)
            else loader.construct_mapping(node)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_scalar(node)
        ),
    )


def services(name: str) -> dict[str, dict]:
    return yaml.load((REPO / name).read_text(), Loader=ComposeLoader)["services"]  # noqa: S506


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


def test_the_team_approval_page_is_tls_and_on_no_network_a_session_joins() -> None:
    page = services("compose.team.yaml")["approval-team"]
    assert page["networks"] == ["team", "lan"]
    assert page["environment"]["IRONCURTAIN_APPROVAL_TLS_KEY"] == "/run/secrets/approval_tls_key"
    assert "approval_tls_key" in page["secrets"]
    assert [p.rsplit(":", 1)[1] for p in page["ports"]] == ["8443"]
    for name, spec in services("compose.team.yaml").items():  # its key: that container alone
        assert ("approval_tls_key" in spec.get("secrets", [])) == (name == "approval-team")
