"""A backend's requests to the client (sampling: the agent's model; elicitation: a question to
the user) are not carried: the proxy's backend session answers them `Method not found`, so they
reach neither the agent's client nor the user, and the tool that asked fails, audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ironcurtain.mcpproxy.gate import Gate

from .test_resources import POLICY, run

ASKING = POLICY.replace(
    "      test_simple_text: {}",
    "      test_simple_text: {}\n      test_sampling: {prompt: none}\n"
    "      test_elicitation: {message: none}\n      test_elicitation_sep1034_defaults: {}",
).replace(
    "rules:\n",
    "rules:\n  - name: reference-tools\n    effect: allow\n    reason: harmless\n    server: ref\n",
)


def test_sampling_and_elicitation_requests_never_leave_the_proxy(tmp_path: Path) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        return [
            await gate.call("ref__test_simple_text", {}),  # the control
            await gate.call("ref__test_sampling", {"prompt": "write to the user"}),
            await gate.call("ref__test_elicitation", {"message": "your password?"}),
            await gate.call("ref__test_elicitation_sep1034_defaults", {}),
        ]

    results, lines = run(tmp_path, body, policy=ASKING)
    control, *asked = results
    assert not control.is_error
    for result in asked:
        assert result.is_error
        assert "Method not found" in result.content[0].text
    decisions = [x for x in lines if x["event"] == "decision"]
    assert [d["effect"] for d in decisions] == ["allow"] * 4
    outcomes = [x for x in lines if x["event"] == "outcome"]
    assert [o["ok"] for o in outcomes] == [True, False, False, False]
