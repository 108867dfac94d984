"""Render the HAProxy configuration for a set of service ports (pure: data in, text out).

A service port is proxied in TCP mode unless it is known to speak HTTP (see
master/lb/endpoints.py `lb_mode`); in HTTP mode HAProxy also retries
idempotent requests that a dying server closed without an answer.

Why TCP mode: a service port carries whatever its pods speak, and all we know is TCP. HAProxy's
`retries` and `option redispatch` act on connection failures in TCP mode too (refused or timed
out connects are retried, and with `option redispatch 1` every retry goes to another server), so
a dead endpoint costs a client a retry, not an error, until health checks mark it DOWN.

Why HTTP ports stay in HTTP mode although it costs: HAProxy spends 1.4-1.9x the CPU per
request of TCP mode on them (tests/bench/lb_tuning.py, variants threads1 and tcp; issue 15's
paired runs on 2 busy CPUs: 150-215 us against 95-125 us), but in TCP
mode a pod killed mid-request costs its client an error, and so does a killed container whose
published port still accepts (Docker's userland proxy) and then closes: only an HTTP-mode
retry hides them. With every port in TCP mode, tests/integration/test_load_balancer.py's
disruptions test lost 4 of 1448 requests ("closed connection without response") at the
docker kill and the node death. `appProtocol: tcp` is the user's way out.

What is not rendered, and why (lb_tuning, paired runs at -c16 and -c64, 2 CPUs at load 15-75):
HAProxy 2.6's defaults (option http-keep-alive, http-reuse safe, tune.bufsize 16384, global
maxconn 4096) stay, because no alternative moved HAProxy's CPU per request in HTTP mode beyond
the spread between runs: http-reuse always, option prefer-last-server, tune.bufsize 8k/64k,
option abortonclose, a per-server maxconn with a queue, global maxconn 8192, option
splice-auto, a second thread (more CPU, kernel/haproxy_tuning.py). option http-server-close
doubles it (a new server connection per request: 290-470 us). Nor did balance static-rr or
tune.sched.low-latency, and not even dropping the retries and X-Forwarded-For together
(lb_tuning's http-lean; 3 runs at load 5-11: 45-104 us against 52-126 as rendered). Where
HTTP mode's CPU goes (perf, cpu-clock, wrk -c64 through 3 pods): two thirds in the kernel,
loopback TCP both ways and the wake-ups, as in TCP mode; a third in HAProxy, spread over a
stream's life (stream_new/free, H1 parsing of both messages, HTX copies, the scheduler).
Health checks are 0.05% of a CPU (3 servers, 1 s apart); empty slots are not checked.

Issue 15's 0.9x of the direct throughput is out of reach when client, proxy and pods share
2 busy CPUs: then every CPU-second HAProxy spends is one the pods do not get, and 0.9x needs
its CPU a request to be at most 11% of the direct path's. Here the direct path (wrk, Docker's
port proxy, nginx, and what nginx costs outside its cgroup: its fuse-overlayfs mount serving
the page, its shim and dockerd carrying the access log) spends ~490 us a request (one -c2
run), so 0.9x needs HAProxy at <= 54 us; HTTP mode costs 77-138 us, TCP mode 53-72 (session
13's lb_tuning runs). Nothing left to cut per request: as rendered HAProxy makes 4.9
syscalls a request (2 recvfrom, 2 sendto, 0.3 epoll_wait; strace -c, wrk -c16 through 3
pods; edge-triggered polling 6.3, http-reuse always 6.0) and reuses its server connections
(show stat: 6 connects for 2,040 requests), so keep-alive and reuse already do what they
can; the rest is loopback TCP in the kernel and HTTP parsing. With the proxy on a CPU of its
own (lb_tuning --pin, 2 runs) HTTP mode gave 0.66-1.20 against a control of 0.84-1.27; a
shared machine cannot say whether 0.9x holds there. Figures: tests/bench/README.md, lb_tuning.
Reaching the pods of nodes publishing on loopback at their own IPs takes Docker's userland
proxy (~78 us of those 490) off the proxied path only: against a client at the published port
the ratio went from 0.80/0.81 to 0.92/1.18 (lb_tuning podip, -c16, unlimited/500m), against a
client at the pod's own IP 0.58/0.86. Reverted once because endpoint addresses flipped between
the two forms through agent restarts (a restarted agent registered without the pod's bridge
address, agent/status.py `adopted_status`; every slot of its pods went through maint and a
health check, and requests failed with 503); back since the agent reports the address there
and the master keeps it through a report that leaves it out for the same running containers
(master/app/reports.py `kept_pod_ip`). Figures: tests/bench/README.md, lb and lb_tuning.

Every backend is pre-allocated with a power-of-two number of server slots (see `slots.py`); empty
slots are `0.0.0.0:0 disabled` and are filled at run time with `set server ... addr`. The config
rendered here always reflects a full slot table, so after a reload the new worker starts with the
right addresses, and only states a config cannot express (drain) are re-applied afterwards.
Ready slots render enabled, maint and drain slots render `disabled`: a draining endpoint must not
receive new connections from the fresh worker even before its drain state is re-applied.
"""

from __future__ import annotations

import re
from pathlib import Path

from master.lb.model import BackendState, LbSettings, LbState, Slot
from master.lb.render_ingress import render_ingress
from master.lb.slots import (
    backend_name,
    format_address,
    frontend_name,
    server_name,
)

# Pod names go into a comment; anything that could end it or the line is replaced.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def render_state(state: LbState, settings: LbSettings, runtime_socket: Path | str) -> str:
    """The full haproxy.cfg for an already assigned slot table."""
    parts = [_global(settings, runtime_socket), _defaults(settings)]
    for backend in state.backends:
        if backend.frontend:
            parts.append(_frontend(backend, settings))
        parts.append(_backend(backend))
    ingress = render_ingress(state.ingress)
    if ingress:
        parts.append(ingress)
    return "\n".join(parts)


def _global(settings: LbSettings, runtime_socket: Path | str) -> str:
    lines = [
        "# Generated by pinnace (master/lb); changes are overwritten.",
        "global",
        "    master-worker",
        # level admin for set server; expose-fd listeners lets a reloaded worker take over the
        # listening sockets, so a reload never refuses a connection.
        f"    stats socket {runtime_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        f"    maxconn {settings.max_connections}",
        f"    hard-stop-after {settings.hard_stop_after_ms}ms",
    ]
    if settings.threads:
        lines.append(f"    nbthread {settings.threads}")
    if settings.log_connections:
        lines.append("    log stderr format raw local0 info")
    return "\n".join(lines) + "\n"


def _defaults(settings: LbSettings) -> str:
    lines = [
        "defaults",
        "    mode tcp",
        f"    timeout connect {settings.connect_timeout_ms}ms",
        f"    timeout client {settings.client_timeout_ms}ms",
        f"    timeout server {settings.server_timeout_ms}ms",
        f"    retries {settings.retries}",
        # 1: redispatch on every retry, not only the last; a refused endpoint is gone, trying it
        # again only adds latency.
        "    option redispatch 1",
        "    balance roundrobin",
        # init-addr none: slots start without resolving anything; addresses come from us.
        "    default-server init-addr none check"
        f" inter {settings.check_interval_ms}ms"
        f" fall {settings.check_fall} rise {settings.check_rise}"
        f" downinter {settings.down_check_interval_ms}ms"
        # A failed connect marks the server down at once instead of after the next
        # failed health checks, so retries stop going to a dead endpoint.
        " observe layer4 error-limit 1 on-error mark-down",
    ]
    if settings.log_connections:
        lines[1:1] = ["    log global", "    option tcplog"]
    return "\n".join(lines) + "\n"


def _frontend(backend: BackendState, settings: LbSettings) -> str:
    name = frontend_name(backend.service, backend.port_name)
    addresses = backend.bind_addresses or (settings.listen_address,)
    lines = [f"frontend {name}"]
    lines += [f"    bind {format_address(a, backend.listen_port)}" for a in addresses]
    if backend.mode == "http":
        lines += ["    mode http", "    option forwardfor"]
    lines.append(f"    default_backend {backend_name(backend.service, backend.port_name)}")
    return "\n".join(lines) + "\n"


def _backend(backend: BackendState) -> str:
    lines = [f"backend {backend_name(backend.service, backend.port_name)}"]
    if backend.mode == "http":
        lines += [
            "    mode http",
            # A server that closes without answering (killed mid-request, or a published
            # port whose container just died) gets the request retried on another
            # server, but only for methods that are safe to repeat.
            "    retry-on conn-failure empty-response junk-response",
            "    http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }",
        ]
    lines.extend(f"    {_server_line(i, slot)}" for i, slot in enumerate(backend.slots))
    return "\n".join(lines) + "\n"


def _server_line(index: int, slot: Slot) -> str:
    line = f"server {server_name(index)} {format_address(slot.address, slot.port)}"
    if slot.empty or slot.mode != "ready":
        line += " disabled"
    if not slot.empty:
        # Comments survive into the config so an operator reading it sees which pod is where.
        line += f"  # {_UNSAFE.sub('_', slot.pod)}"
    return line
