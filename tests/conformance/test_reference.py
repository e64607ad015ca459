"""Our reference backend (ironcurtain.fakemcp) passes the conformance suite on its own: the
proof that what the proxy tests run against is a full MCP server."""

from __future__ import annotations

from pathlib import Path

from . import suite

# The suite's active server scenarios (0.1.16): `conformance list --server` less the two
# pending ones (json-schema-2020-12, server-sse-polling), which `--suite active` leaves out.
ACTIVE = 30


def test_the_reference_backend_passes_every_active_scenario_alone(tmp_path: Path) -> None:
    command = [suite.PYTHON, "-m", "ironcurtain.fakemcp", "--http", "0"]
    with suite.started(command, "fakemcp: serving on") as url:
        results = suite.run(url, tmp_path)
    failed = {name: s.failures for name, s in results.items() if not s.passed}
    assert failed == {}
    assert len(results) == ACTIVE
