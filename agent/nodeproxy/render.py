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

Each section has fixed server slots (agent/nodeproxy/slots.py): an empty one is
`0.0.0.0:0 disabled` and is filled at run time through the admin socket (`set server
... addr`), so the config always describes the whole slot table and a reload starts the
new worker with the addresses the old one had been given.

Same state in, same text out: the shell reloads HAProxy only when the text changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.nodeproxy.slots import Endpoint, ProxyState, Section, desired_state
from agent.nodeproxy.table import ServiceTable

# The Runtime API socket, relative to HAProxy's folder (it runs there): `set server` for
# endpoint changes; expose-fd lets a reloaded worker take the listeners over.
ADMIN_SOCKET = "admin.sock"


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


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


DEFAULT_SETTINGS = ProxySettings()


def render_config(table: ServiceTable, settings: ProxySettings = DEFAULT_SETTINGS) -> str:
    """The config for `table` with freshly assigned slots (a first start)."""
    return render_state(desired_state(table), table.version, table.service_cidr, settings)


def render_state(
    state: ProxyState, version: int, cidr: str, settings: ProxySettings = DEFAULT_SETTINGS
) -> str:
    s = settings
    lines = [
        "# Written by the pinnace agent (node proxy) from the master's service table.",
        f"# Service table version {version}; service range {cidr or '-'}.",
        "global",
        f"    stats socket unix@{ADMIN_SOCKET} mode 600 level admin expose-fd listeners",
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
    for section in state.sections:
        lines += ["", *_section(section)]
    return "\n".join(lines) + "\n"


def _section(section: Section) -> list[str]:
    lines = [
        f"listen {section.name}",
        *(f"    bind {_address(*bind)}{_v6only(bind)}" for bind in section.binds),
        *([f"    {section.rule}"] if section.rule else []),
        "    balance roundrobin",
    ]
    if section.http:
        lines += [
            "    mode http",
            "    retry-on conn-failure empty-response junk-response",
            "    http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }",
        ]
    lines += [f"    {server_line(i, slot)}" for i, slot in enumerate(section.slots)]
    return lines


def _v6only(bind: Endpoint) -> str:
    """[::] answers IPv6 alone: IPv4 is the 0.0.0.0 socket's (else the two would clash)."""
    return " v6only" if bind[0] == "::" else ""


def server_name(index: int) -> str:
    return f"s{index}"


def server_line(index: int, slot: Endpoint | None) -> str:
    if slot is None:
        return f"server {server_name(index)} 0.0.0.0:0 check disabled"
    return f"server {server_name(index)} {_address(*slot)} check"
