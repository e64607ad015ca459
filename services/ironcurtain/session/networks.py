"""The session's networks, as data compose.yaml's are checked against (test_compose_file). Pure.

The agent network is internal *and* has no gateway address on the host bridge: on an internal
network the gateway is the host itself (PLATFORM.md), reachable by anything bound to 0.0.0.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INHIBIT_IPV4 = "com.docker.network.bridge.inhibit_ipv4"


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    role: str  # agent | control | egress
    internal: bool
    options: dict[str, str] = field(default_factory=dict)

    @property
    def subnet_variable(self) -> str:
        """The compose variable with the subnet `ironcurtain run` leased for it (leases.py)."""
        return f"IRONCURTAIN_{self.role.upper()}_SUBNET"

    @property
    def gateway_variable(self) -> str:
        """Its gateway address, given too: with a given subnet the engine reports no gateway
        unless one is given, and the isolation check probes the gateways the engine reports."""
        return f"IRONCURTAIN_{self.role.upper()}_GATEWAY"

    def compose(self) -> dict[str, object]:
        """The network's entry under compose's `networks:`: its subnet is always given (from
        IronCurtain's pool, never Docker's default pools: session/subnets.py)."""
        entry: dict[str, object] = {"driver": "bridge", "internal": self.internal}
        if self.options:
            entry["driver_opts"] = dict(self.options)
        subnet = f"${{{self.subnet_variable}:?set by ironcurtain run (session/subnets.py)}}"
        gateway = f"${{{self.gateway_variable}:?set by ironcurtain run (session/subnets.py)}}"
        entry["ipam"] = {"config": [{"subnet": subnet, "gateway": gateway}]}
        return entry


# The agent's only network: it and the sidecar, nothing else, no route anywhere.
AGENT = NetworkSpec("agent", internal=True, options={INHIBIT_IPV4: "true"})
# The sidecar and the doors (mcp-proxy, mitm-proxy, socket-proxy).
CONTROL = NetworkSpec("control", internal=True)
# The doors that must reach upstreams (LLM vendors, remote MCP servers).
EGRESS = NetworkSpec("egress", internal=False)

# Each takes one subnet of the pool, in this order.
SESSION_NETWORKS = (AGENT, CONTROL, EGRESS)
