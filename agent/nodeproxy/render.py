"""The node proxy's HAProxy config, rendered from the service table (pure).

One `listen` section per Service port that has a cluster IP: HAProxy binds
cluster_ip:port (the service range is local to the node, agent/nodeproxy/route.py)
and spreads TCP connections round-robin over the ready endpoints, each a pod's
published address (its node's advertise address and host port). Layer 4, as
kube-proxy, where a refused connect is retried on another endpoint; a port the
master judged HTTP (appProtocol, name or number, as for its own load balancer)
is proxied at layer 7 so that an idempotent request whose server closed without
answering (a pod killed mid-request) is retried elsewhere too.

HAProxy checks each endpoint itself (a TCP connect every second, out after two
failures): a pod or node that dies while the master is away stops taking new
connections anyway -- the data plane outlives the master. A port with no ready
endpoint still binds, and a connection to it is closed at once (kube-proxy
rejects it), rather than hanging.

Several agents may share one network namespace (a test host running many
nodes): HAProxy binds with SO_REUSEPORT by default, so each agent's proxy binds
the same addresses and the kernel spreads connections between them; every
agent gets the same table from the master, so the union answers alike.

Same table in, same text out: the shell reloads HAProxy only when the text changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.nodeproxy.table import ServiceTable, TableService

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """How the node proxy's HAProxy behaves; the defaults suit pods on one LAN."""

    # A connect that takes longer goes to a dead machine: give up and try another endpoint.
    connect_timeout_ms: int = 1000
    client_timeout_ms: int = 600_000
    server_timeout_ms: int = 600_000
    check_interval_ms: int = 1000
    check_fall: int = 2
    check_rise: int = 1
    down_check_interval_ms: int = 250
    retries: int = 2
    # HAProxy needs two file descriptors per connection; 4096 stays under common limits.
    max_connections: int = 4096
    # After a reload the old worker keeps its connections this long (long-lived TCP such as
    # a Redis client would otherwise keep old workers forever).
    hard_stop_after_ms: int = 600_000
    # Old workers kept alive by connections beyond this many reloads are stopped.
    max_reloads: int = 50
    # HAProxy's nbthread; 0 leaves its default (one per CPU). The agent passes
    # kernel.haproxy_tuning.haproxy_threads(cpus): one thread on a machine of two CPUs.
    threads: int = 0


def _name(text: str) -> str:
    return _UNSAFE.sub("_", text)


def section_name(svc: TableService, port_name: str, port: int) -> str:
    """A unique, readable proxy name: <namespace>.<service>:<port name or number>."""
    ns = svc.namespace or "default"
    return _name(f"{ns}.{svc.name}:{port_name or port}")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def served(table: ServiceTable) -> list[TableService]:
    """The Services the proxy answers for: every one with a cluster IP (not headless)."""
    return [s for s in table.services if s.cluster_ip and not s.headless]


DEFAULT_SETTINGS = ProxySettings()


def render_config(table: ServiceTable, settings: ProxySettings = DEFAULT_SETTINGS) -> str:
    s = settings
    lines = [
        "# Written by the pinnace agent (node proxy) from the master's service table.",
        f"# Service table version {table.version}; service range {table.service_cidr or '-'}.",
        "global",
        f"    maxconn {s.max_connections}",
        f"    hard-stop-after {s.hard_stop_after_ms}ms",
        f"    mworker-max-reloads {s.max_reloads}",
        *([f"    nbthread {s.threads}"] if s.threads else []),
        "",
        "defaults",
        "    mode tcp",
        f"    timeout connect {s.connect_timeout_ms}ms",
        f"    timeout client {s.client_timeout_ms}ms",
        f"    timeout server {s.server_timeout_ms}ms",
        f"    retries {s.retries}",
        # 1: every retry goes to another endpoint (a refused one is gone).
        "    option redispatch 1",
        # A failed connect marks the endpoint down at once, not after the next checks.
        f"    default-server inter {s.check_interval_ms}ms fall {s.check_fall} rise {s.check_rise}"
        f" downinter {s.down_check_interval_ms}ms observe layer4 error-limit 1 on-error mark-down",
        "",
        "# HAProxy will not start without a listener: this one, on a socket in its own folder",
        "# (HAProxy runs there), is always present, so a table without Services is valid.",
        "listen idle",
        "    bind unix@idle.sock",
    ]
    for svc in served(table):
        for port in svc.ports:
            if port.protocol.upper() != "TCP":
                continue
            lines += [
                "",
                f"listen {section_name(svc, port.name, port.port)}",
                f"    bind {_address(svc.cluster_ip, port.port)}",
                "    balance roundrobin",
            ]
            if port.app_protocol.lower() == "http":
                lines += [
                    "    mode http",
                    "    retry-on conn-failure empty-response junk-response",
                    "    http-request disable-l7-retry unless"
                    " { method GET HEAD OPTIONS PUT DELETE }",
                ]
            for i, backend in enumerate(port.backends):
                server = _name(f"{backend.pod or 'ep'}-{i}")
                lines.append(f"    server {server} {_address(backend.address, backend.port)} check")
    return "\n".join(lines) + "\n"
