"""`pinnace master`: wires the store, state, controllers and gRPC API together.

Start-up order matters: load the whole store into memory, give every known node
a fresh lease (the master was away, not the nodes), then serve. On SIGTERM or
SIGINT the master stops accepting calls, flushes queued writes and exits; a
kill -9 loses at most the last flush interval of agent status, which the agents
report again when they reconnect (desired state is flushed before every apply
returns, so it is never lost). A background task that ends (the controllers,
the flusher, the load balancer) ends the master with status 1 and the cause
(master/supervision.py), rather than leaving a master that answers but does
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from kernel import heap
from kernel.clock import Clock, SystemClock
from kernel.haproxy_tuning import haproxy_threads
from kernel.limits import MAX_MASTER_MESSAGE_BYTES
from kernel.rpc_tasks import finish_rpc_tasks
from master import heap_trim
from master.api.auth import AuthInterceptor
from master.api.cluster_servicer import ClusterServicer
from master.api.fieldowners import writer_fields
from master.api.forward import ForwardingInterceptor, admin_channels
from master.api.kube.server import start_kube_api
from master.api.logs import LogRelay
from master.api.metrics_interceptor import MetricsInterceptor
from master.api.node_servicer import NodeServicer
from master.api.security import DEFAULT_NODE_CERT_TTL, MasterSecurity, check_insecure_listen
from master.app.apply import ServiceAdmission
from master.app.clusterip import repair_cluster_ips
from master.app.usage import UsageTable
from master.controllers.heartbeat_budget import (
    LONGEST_INTERVAL,
    HeartbeatBudget,
    cluster_plan,
    planned_rate,
)
from master.controllers.heartbeats import DEFAULT_MAX_HEARTBEATS_PER_SECOND
from master.controllers.lifecycle import NodeHealthSettings
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.controllers.plan_pacing import PlanTally
from master.grpc_wakeups import drain_grpc_wakeups
from master.ha.documents import SharedDocuments
from master.ha.elector import MasterInfo
from master.ha.follower import Follower
from master.ha.leadership import LeaseTiming
from master.ha.masters import MastersView
from master.ha.role import HaRole
from master.lb.conflicts import admission_errors
from master.lb.controller import LoadBalancerController
from master.lb.haproxy import HAProxyDriver
from master.lb.ingress import IngressPorts, ingress_reserved
from master.lb.model import LbAddresses, LbSettings
from master.lb.reachability import PodReachability
from master.metrics import looplag
from master.metrics.cluster import (
    ClusterCollector,
    ClusterGauges,
    HeartbeatGauges,
    PodTally,
    lease_age_families,
    measure_cluster,
    state_families,
)
from master.metrics.http import MetricsServer, start_metrics_server
from master.model import (
    DEFAULT_NAMESPACE,
    DEFAULT_NODE_PORTS,
    DEFAULT_SERVICE_CIDR,
    Ingress,
    IngressClass,
    Namespace,
    Node,
    NodePortRange,
    ObjectMeta,
    Service,
    ServiceAccount,
)
from master.pki.admission import DEFAULT_JOINS_IN_FLIGHT, JoinAdmission
from master.pki.bootstrap import advertised_host, host_port, listen_host
from master.pki.identity import ClusterIdentity
from master.pki.shared import cluster_secret, load_or_create
from master.settler import Settler
from master.state import ClusterState
from master.stopping import StopTimes, arm_stop_deadline, disarm_stop_deadline
from master.store.datadir import DataDirLock
from master.store.etcd import EtcdStore
from master.store.etcd_client import EtcdSettings
from master.store.port import Store, StoreError, WriteConflict
from master.store.sealing import KEY_FILE, SealingStore, SecretSealer
from master.store.sqlite import SqliteStore
from master.supervision import TaskDied, supervise
from protos import cluster_pb2_grpc, node_pb2_grpc

log = logging.getLogger("pinnace.master")

# The master pings every connection every 2 s (HTTP/2 keepalive: gRPC's core sends the
# ping and the agent's gRPC core answers it, no Python on either side). Two clocks judge
# the answer:
#   * the kernel's, 2.5 s: gRPC sets TCP_USER_TIMEOUT to `keepalive_timeout`, so a ping
#     whose TCP segment no one acknowledges closes the connection: a dead machine or a cut
#     link (found by the 1.5 s clock below first, as nothing answers the ping either);
#   * gRPC's own, 1.5 s: `ping_timeout` for the HTTP/2 ping ack, which the agent's process
#     must send. The peer's kernel acknowledges the segment even when the agent's process
#     is frozen (SIGSTOP, a VM paused with its host's TCP still up, a proxy that stops
#     passing bytes), so only this clock finds a hung agent.
# So a killed agent's stream ends at once (its socket closes), a cut-off or frozen one's
# within 2 + 1.5 s (the next ping comes at most 2 s after the death, gRPC's core having
# reset its timer on every byte read), and the node is NotReady `session_grace` (1 s)
# later unless its agent is back: within 5 s at any cluster size
# (tests/unit/test_node_liveness.py), where the stretched heartbeat lease (22 s at 5,000
# nodes, master/controllers/heartbeats.py) cannot. The ack comes from the agent's gRPC
# core threads, not its Python: with 1,000 mTLS sessions pinged every 2 s beside 8 busy
# loops on 2 cores (load ~10), 12,252 pings took 2.9 ms p50, 112 ms p99, 370 ms at most
# (tests/bench/ping_cost.py --ping-rtt), so 1.5 s leaves a loaded agent machine 4x its
# worst. Many live agents missing their pings at once is the master's or the machine's
# trouble, and the session-loss valve forgives it (master/controllers/session_loss.py);
# one agent that cannot answer a ping in 1.5 s is as good as hung.
# The interval is what costs: each ping costs the master's gRPC core threads CPU (at
# 1,000 TLS connections pinged every second they used 0.14 core, twice the master's
# Python), so the interval is 2 s and the answer's clock 1.5 s rather than 1 s and
# 2.5 s: half the pings, the same 3.5 s to find a frozen agent. gRPC sends no more than
# two pings without data unless `max_pings_without_data` is 0. `--session-ping-seconds`
# and `--session-ping-answer-seconds` trade the cost against how soon a cut-off node is
# found.
SESSION_PING_SECONDS = 2.0
# TCP_USER_TIMEOUT: unacknowledged bytes (a ping) this long close the connection.
SESSION_LINK_TIMEOUT_SECONDS = 2.5
# How long the agent's gRPC core has to answer a ping (a frozen process never does).
SESSION_PING_ANSWER_SECONDS = 1.5


def _loop_lag_report(
    clock: Clock, manager: ControllerManager, budget: HeartbeatBudget, nodes: Callable[[], int]
) -> Callable[[looplag.Wakeup], None]:
    """The probe's report: the metrics, the node lifecycle's ledger of the loop's held
    spans (a node is not blamed for heartbeats the master could not read meanwhile), and
    the heartbeat budget, which shrinks while the loop is behind."""

    def report(wakeup: looplag.Wakeup) -> None:
        looplag.observe(wakeup)
        now = clock.monotonic()
        manager.loop_held.note(now, wakeup.lag)
        before = budget.rate
        if budget.observe(now, wakeup.lag, nodes() / LONGEST_INTERVAL):
            log.info(
                "heartbeat budget now %.0f a second (cap %.0f): %s",
                budget.rate,
                budget.cap,
                "cut, the loop is behind" if budget.rate < before else "grown, the loop keeps up",
            )

    return report


def session_keepalive(
    ping_seconds: float = SESSION_PING_SECONDS, answer_seconds: float = SESSION_PING_ANSWER_SECONDS
) -> tuple[tuple[str, int], ...]:
    """The server's keepalive options: a ping every `ping_seconds`; 2.5 s for the peer's
    kernel to acknowledge it (TCP_USER_TIMEOUT), `answer_seconds` for its gRPC core to
    answer it."""
    return (
        ("grpc.keepalive_time_ms", round(ping_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", round(SESSION_LINK_TIMEOUT_SECONDS * 1000)),
        ("grpc.http2.ping_timeout_ms", round(answer_seconds * 1000)),
        ("grpc.http2.max_pings_without_data", 0),
    )


# The largest gRPC message the master accepts: apply carries whole files
# (master.manifest caps each at 1 MiB), 8 MiB leaves room for several.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def server_options(
    ping_seconds: float = SESSION_PING_SECONDS, answer_seconds: float = SESSION_PING_ANSWER_SECONDS
) -> list[tuple[str, int]]:
    """The master's gRPC server options: message limits, the session keepalive, and no
    HTTP/2 BDP probes.

    Without `grpc.http2.bdp_probe` 0 gRPC's core answers data it reads with a
    bandwidth-delay ping of its own (to grow its receive window), so every status report
    and heartbeat a node sends costs the master a ping sent, a ping ack read and a timer,
    on its `event_engine` threads: at 5,000 hollow nodes those used more CPU than the
    master's event loop during an apply (issue 15). A mutual-TLS grpc.aio server with
    1,000 sessions each sending a small message a second and pinged every second used
    0.527 core with the probes, 0.447 without them (tests/bench/ping_cost.py, two rounds
    each, the same to 0.003). The node sessions carry small messages, so the window the
    probes would grow is not what bounds them; the agents' channels leave the probes off
    too (kernel/limits.py). The cost: a large message (an 8 MiB apply, a node's whole
    assignment set) crosses a long link at gRPC's fixed window per round trip instead of
    a grown one; on a LAN or loopback that window is not the bound either."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MASTER_MESSAGE_BYTES),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ("grpc.http2.bdp_probe", 0),
        *session_keepalive(ping_seconds, answer_seconds),
    ]


@dataclass(frozen=True, slots=True)
class MasterConfig:
    listen: str
    data_dir: Path
    heartbeat_interval: float = 1.0
    lease_seconds: float = 3.0
    # Heartbeats stretch beyond this total rate (master/controllers/heartbeats.py); 0: never.
    max_heartbeats_per_second: float = DEFAULT_MAX_HEARTBEATS_PER_SECOND
    # Joins in flight (JoinNode until the node registers); beyond, joins are told to come
    # back later (master/pki/admission.py).
    max_joins_in_flight: int = DEFAULT_JOINS_IN_FLIGHT
    # How often the master pings each connection (a cut-off node is found within this
    # plus the answer timeout below, plus the session grace).
    session_ping_seconds: float = SESSION_PING_SECONDS
    # How long an agent's gRPC core has to answer a ping before its session ends.
    session_ping_answer_seconds: float = SESSION_PING_ANSWER_SECONDS
    # The scheduler's share of nodes to score (Kubernetes' percentageOfNodesToScore;
    # 0: its adaptive default, 100: every node).
    percentage_of_nodes_to_score: int = 0
    eviction_timeout: float = 0.0
    # A node believed alive though silent (its agent said goodbye, or its pods answer
    # the master's probe) keeps its pods this long.
    node_grace: float = 60.0
    # Evictions pause while more than this fraction of the nodes is silent at once.
    unhealthy_threshold: float = 0.5
    # The load balancer: HAProxy binds lb_listen:(service port + lb_port_offset);
    # LoadBalancer services show lb_advertise (default lb_listen) as their ingress.
    lb_enabled: bool = True
    lb_listen: str = "127.0.0.1"
    lb_advertise: str = ""
    lb_internal: str = ""
    lb_port_offset: int = 0
    # Stop HAProxy when the master exits; by default it keeps serving (and is adopted).
    lb_stop_on_exit: bool = False
    # LoadBalancer Services' own addresses (--lb-address-pool, parsed); () = one shared address.
    lb_address_pool: tuple[str, ...] = ()
    # Where Ingresses are served on lb_listen (0: off); bound only while an Ingress exists.
    ingress_http_port: int = 8880
    ingress_https_port: int = 8443
    # --service-cidr: Services' cluster IPs (master/app/clusterip.py).
    service_cidr: str = DEFAULT_SERVICE_CIDR
    # --cluster-cidr / --node-cidr-mask-size: nodes' pod subnets (master/app/podcidr.py);
    # "" gives none.
    cluster_cidr: str = ""
    node_cidr_mask: int = 24
    # --service-node-port-range: node ports (master/app/nodeport.py), inclusive.
    node_port_range: tuple[int, int] = (DEFAULT_NODE_PORTS.first, DEFAULT_NODE_PORTS.last)
    haproxy_bin: str = "haproxy"
    # Where /metrics is served (HOST:PORT, port 0 picks one); '' serves none.
    metrics_listen: str = ""
    # Plaintext without authorisation (loopback only); else TLS as master/api/security.py says.
    insecure: bool = False
    tls_sans: tuple[str, ...] = ()
    node_cert_ttl: float = DEFAULT_NODE_CERT_TTL
    # The Kubernetes API (HTTPS, master/api/kube); empty: not served.
    api_listen: str = "127.0.0.1:6443"
    # --store etcd: where etcd is; None keeps the state in SQLite under data_dir.
    etcd: EtcdSettings | None = None
    # --leader-elect (needs etcd): one of several masters leads; `name` tells them apart.
    leader_elect: bool = False
    # --leader-lease: the leader's etcd lease, renewed every quarter of it (whole seconds).
    leader_lease: float = 1.0
    name: str = ""
    # --advertise-address: where other masters, agents and clients are told to reach this
    # one ('' : the listen host, or an interface address for a wildcard listen).
    advertise_address: str = ""
    # --store etcd: the file holding the secret that seals the shared cluster identity
    # (master/pki/shared.py); None: <data-dir>/cluster-secret, made by a cluster's first master.
    cluster_secret_file: Path | None = None


# Each conflict means another master wrote first; a few suffice even when all start at once.
DEFAULTS_ATTEMPTS = 5


async def ensure_defaults(state: ClusterState) -> None:
    """What every cluster has from its first start: the `default` Namespace and its
    `default` ServiceAccount (a cluster from before namespaces gets them on its next
    start; other namespaces get theirs from the namespace controller); and every Service
    with a cluster IP of the service range (stored by an older master, or before
    --service-cidr changed)."""

    def plan() -> None:
        if state.get("Namespace", DEFAULT_NAMESPACE) is None:
            state.put(Namespace(ObjectMeta(name=DEFAULT_NAMESPACE)))
        if state.get("ServiceAccount", "default") is None:
            state.put(ServiceAccount(ObjectMeta(name="default")))
        services = [s for s in state.objects("Service") if isinstance(s, Service)]
        for svc in repair_cluster_ips(services, state.service_cidr):
            log.info("service/%s: cluster IP %s", svc.meta.name, svc.cluster_ip)
            state.put(svc)

    for attempt in range(1, DEFAULTS_ATTEMPTS + 1):
        try:
            await state.commit(plan)
            return
        except WriteConflict:
            # Masters started together on one etcd all do this before any of them leads;
            # the first write wins and the others read what it wrote and decide again
            # (nothing of theirs was stored). It used to stop the master that lost.
            if attempt == DEFAULTS_ATTEMPTS:
                raise
            log.info("the cluster's defaults were written by another master; reading them")
            await state.reload()


async def serve(config: MasterConfig) -> None:
    clock = SystemClock()
    # Before anything in the data dir is read or written: one master per directory.
    lock = DataDirLock.acquire(config.data_dir, config.listen)
    try:
        await _serve_locked(config, clock, lock)
    finally:
        lock.release()


async def _serve_locked(config: MasterConfig, clock: SystemClock, lock: DataDirLock) -> None:
    store, shared = await asyncio.to_thread(_open_store, config, clock)
    state = ClusterState(store, clock)
    state.writer_fields = writer_fields
    state.service_cidr = ipaddress.ip_network(config.service_cidr)
    if config.cluster_cidr:
        state.cluster_cidr = ipaddress.IPv4Network(config.cluster_cidr)
        state.node_cidr_mask = config.node_cidr_mask
    state.node_port_range = NodePortRange(*config.node_port_range)
    await state.load()
    await ensure_defaults(state)
    leases = LeaseTable()
    node_lease = _node_lease(config)
    health = NodeHealthSettings(
        node_lease, config.eviction_timeout, config.node_grace, config.unhealthy_threshold
    )
    manager = ControllerManager(
        state,
        clock,
        leases,
        health=health,
        percentage_of_nodes_to_score=config.percentage_of_nodes_to_score,
    )
    manager.start_grace()
    # Before anything is served: a taken metrics port stops the master with one sentence.
    # The heartbeat budget and the sessions' plans: the node servicer moves them, /metrics
    # shows them.
    heartbeat_budget = HeartbeatBudget(config.max_heartbeats_per_second)
    plan_tally = PlanTally()
    heartbeats = _heartbeat_gauges(config, state, heartbeat_budget, plan_tally, node_lease)
    metrics = _metrics(config, state, manager, leases, clock, heartbeats)
    reachability = PodReachability(
        state,
        clock,
        lambda node: (
            bool(node.status.session_lost_at) or leases.goodbye_at(node.meta.name) is not None
        ),
    )
    manager.set_reachability(reachability)

    options = server_options(config.session_ping_seconds, config.session_ping_answer_seconds)
    security = None
    if config.insecure:
        check_insecure_listen(config.listen)
    else:
        security = await MasterSecurity.start(
            config.data_dir,
            config.listen,
            [*config.tls_sans, *([config.advertise_address] if config.advertise_address else [])],
            config.node_cert_ttl,
            store,
            state,
            clock,
            shared,
        )
    interceptors: list[grpc.aio.ServerInterceptor] = [
        MetricsInterceptor(),
        # Without TLS the interceptor only guards request decoding.
        security.auth if security is not None else AuthInterceptor(None, None),
    ]
    if config.leader_elect:
        # Inside the authorisation: a follower passes an authorised write to the leader.
        pki = security.pki if security is not None else None
        interceptors.append(
            ForwardingInterceptor(
                state,
                admin_channels(
                    pki.ca.pem if pki else None,
                    pki.admin_key_pem if pki else None,
                    pki.admin_cert_pem if pki else None,
                ),
            )
        )
    server = grpc.aio.server(options=options, interceptors=interceptors)
    # One loop turn takes every completion gRPC has, not one (master/grpc_wakeups.py).
    drain_grpc_wakeups(asyncio.get_running_loop())
    joins = JoinAdmission(config.max_joins_in_flight)
    if security is not None:
        security.add_servicers(server, state, joins)
    admission = _lb_admission(config, state)
    masters = MastersView(_etcd_of(store) if config.leader_elect else None)
    # Container logs: asked for on either API, carried by the node sessions.
    logs = LogRelay()
    usage = UsageTable()
    cluster_pb2_grpc.add_ClusterServiceServicer_to_server(
        ClusterServicer(state, manager, clock, admission, masters.list_masters, logs, usage),
        server,
    )
    node_servicer = NodeServicer(
        state,
        leases,
        manager,
        clock,
        config.heartbeat_interval,
        node_lease,
        logs,
        usage,
        heartbeat_budget=heartbeat_budget,
        plan_tally=plan_tally,
        session_grace=health.session_grace,
        on_registered=lambda name: joins.finished(name, clock.monotonic()),
        joining=joins.holds,
    )
    node_pb2_grpc.add_NodeServiceServicer_to_server(node_servicer, server)
    lb = _load_balancer(config, state, clock)
    if lb is not None:
        node_servicer.gate_stops(lb.is_released)
        lb.on_released(node_servicer.refresh)
    port = (
        security.add_port(server, config.listen)
        if security is not None
        else server.add_insecure_port(config.listen)
    )
    if port == 0:
        raise SystemExit(f"pinnace master: cannot listen on {config.listen}")
    await server.start()
    kube = None
    if config.api_listen:
        if security is None:
            check_insecure_listen(config.api_listen)
        try:
            kube = await start_kube_api(
                config.api_listen,
                security.pki if security is not None else None,
                state,
                manager,
                clock,
                logs,
                admission,
                leases,
                node_lease,
                usage,
            )
        except OSError as e:
            raise SystemExit(
                f"pinnace master: cannot serve the Kubernetes API on {config.api_listen}: "
                f"{e.strerror or e} (choose another with --api-listen HOST:PORT, or "
                f"--api-listen '' to serve none)"
            ) from None
    if security is not None:
        others = [
            m["spec"]["address"]
            for m in await _masters_now(masters)
            if not config.name or m["metadata"]["name"] != config.name  # its own, from before
        ]
        security.write_config(
            port,
            kube.url if kube is not None else "",
            others,
            host_port(config.advertise_address, port) if config.advertise_address else "",
        )
    host = config.listen.rsplit(":", 1)[0]
    # What the other masters and the agents are told (the leader hint, `get masters`,
    # pinnace.conf): never a wildcard, which nobody can dial.
    advertised = advertised_host(config.listen, config.advertise_address)
    lock.advertise(host_port(advertised, port))
    masters.me = MasterInfo(
        config.name or f"{socket.gethostname()}-{port}",
        host_port(advertised, port),
        clock.now(),
        _reachable_url(kube.url, config.api_listen, advertised) if kube is not None else "",
    )
    # Tests and scripts read this line to learn the port when --listen asked for 0.
    print(f"pinnace master listening on {host}:{port}", flush=True)
    if kube is not None:
        # The second line: the Kubernetes API's URL (its port when --api-listen asked for 0).
        print(f"pinnace master Kubernetes API on {kube.url}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Loaded and serving: what lives now lives on; the collector stops walking it, and
    # from now on what each full collection leaves (heap.py).
    uninstall_heap = heap.install()
    tasks = [
        _leader_or_controllers(config, store, state, manager, masters.me, clock),
        asyncio.create_task(state.run_flusher(), name="flusher"),
        asyncio.create_task(state.run_event_writer(), name="event-writer"),
        asyncio.create_task(reachability.run(), name="pod-probe"),
        asyncio.create_task(
            looplag.run_probe(
                clock,
                report=_loop_lag_report(
                    clock, manager, heartbeat_budget, lambda: state.count("Node")
                ),
            ),
            name="loop-lag",
        ),
        asyncio.create_task(heap.run(clock), name="heap"),
        asyncio.create_task(node_servicer.run_shrink_offers(), name="shrink-offers"),
    ]
    trim = heap_trim.glibc_trim()
    if trim is not None:
        # glibc's free pages back to the system once a burst of changes is over.
        tasks.append(
            asyncio.create_task(
                heap_trim.run(clock, lambda: state.resource_version, trim, heap.resident_bytes),
                name="heap-trim",
            )
        )
    if security is not None and config.etcd is not None:
        # Join tokens and node bindings changed through another master reach this one.
        documents = SharedDocuments(_etcd_of(store), security.registry.take, security.registry.load)
        tasks.append(asyncio.create_task(documents.run(), name="shared-documents"))
    lb_task = asyncio.create_task(lb.run(), name="load-balancer") if lb is not None else None
    if lb_task is not None:
        tasks.append(lb_task)
    try:
        await supervise(tasks, stop)
        log.info("stopping")
    finally:
        # Bounded: a stop that hangs dumps every thread's stack and exits (master/stopping.py).
        arm_stop_deadline()
        times = StopTimes()
        if lb_task is not None:
            # First freeze the data plane: HAProxy keeps serving exactly what it serves
            # now, whatever the controllers conclude from agents cut off by the shutdown.
            with times.stage("load balancer"):
                lb_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await lb_task
        # Controllers first: while the API drains, every agent's session ends and its
        # heartbeats stop; controllers still running would take that for dead nodes and
        # replace every pod (durably) as the master goes down.
        with times.stage("controllers"):
            tasks[0].cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await tasks[0]
        if kube is not None:
            with times.stage("Kubernetes API"), contextlib.suppress(Exception):
                await kube.stop()
        node_servicer.stopping()
        with times.stage("gRPC server and sessions"):
            await server.stop(grace=2.0)
        with times.stage("gRPC calls' tasks"):
            # Ended before the loop closes: one cancelled by asyncio.run's teardown prints
            # a CancelledError traceback (kernel/rpc_tasks.py).
            end = await finish_rpc_tasks()
            if end.running:
                log.info(
                    "%d gRPC calls' tasks were still ending after the server stopped; "
                    "%d handlers cancelled after the wait, %d tasks left",
                    end.running,
                    end.cancelled,
                    end.left,
                )
        with times.stage("background tasks"):
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with times.stage("last flush"), contextlib.suppress(Exception):
            state.write_events()  # (queued ones are written with the rest)
            await state.flush()
        with times.stage("store and metrics"):
            store.close()
            if metrics is not None:
                metrics.close()
        uninstall_heap()
        if slow := times.slow():
            log.warning("%s", slow)


async def _masters_now(masters: MastersView) -> list[dict[str, Any]]:
    """The other masters running now (empty without --leader-elect or when etcd fails)."""
    try:
        return await masters.list_masters()
    except StoreError as e:
        log.warning("cannot list the other masters for pinnace.conf: %s", e)
        return []


def _reachable_url(url: str, api_listen: str, advertised: str) -> str:
    """The Kubernetes API URL other masters can use: for a wildcard --api-listen `url`
    shows loopback; this master's advertised host is where the others reach it."""
    wildcard = listen_host(api_listen) in ("", "0.0.0.0", "::", "[::]", "*")
    if wildcard and advertised:
        host = f"[{advertised}]" if ":" in advertised else advertised
        return url.replace("://127.0.0.1:", f"://{host}:", 1)
    return url


def _heartbeat_gauges(
    config: MasterConfig,
    state: ClusterState,
    budget: HeartbeatBudget,
    tally: PlanTally,
    node_lease: float,
) -> Callable[[], HeartbeatGauges]:
    """The heartbeat budget and plans as /metrics shows them (on the loop, at a scrape)."""

    def measure() -> HeartbeatGauges:
        nodes = state.count("Node")
        plan = cluster_plan(nodes, config.heartbeat_interval, node_lease, budget)
        return HeartbeatGauges(
            planned_rate(nodes, budget), budget.cap, plan.interval, tally.rate, tally.by_interval()
        )

    return measure


def _metrics(
    config: MasterConfig,
    state: ClusterState,
    manager: ControllerManager,
    leases: LeaseTable,
    clock: SystemClock,
    heartbeats: Callable[[], HeartbeatGauges],
) -> MetricsServer | None:
    """/metrics on --metrics-listen, with the cluster gauges measured on this loop."""

    # Pods by phase, kept by each change: counting every pod at each scrape walked them all.
    tally = PodTally(state.pods())
    unsubscribe = state.subscribe(tally.on_change)

    def measure() -> ClusterGauges:
        return measure_cluster(
            tally.totals(),
            [],
            leases.last_seen,
            clock.monotonic(),
            manager.queue_depths(),
            heartbeats(),
        )

    def measure_ages() -> ClusterGauges:
        nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
        return measure_cluster(tally.totals(), nodes, leases.last_seen, clock.monotonic(), {})

    # Two collectors: a scrape asking only for pods or the budget walks no node.
    loop = asyncio.get_running_loop()
    collectors = (
        ClusterCollector(loop, measure, families=state_families),
        ClusterCollector(loop, measure_ages, families=lease_age_families),
    )
    server = start_metrics_server(config.metrics_listen, *collectors)
    if server is not None:
        log.info("metrics on http://%s/metrics", server.address)
    else:
        unsubscribe()
    return server


# With several masters a node's lease must outlast a failover (leader lease 1 s by default,
# etcd's 0.5 s expiry check, taking over, the agent finding the new leader): an agent must not
# fence itself, nor the new leader judge the node, while the masters change hands.
HA_NODE_LEASE_FLOOR = 6.0


def _node_lease(config: MasterConfig) -> float:
    if config.leader_elect and config.lease_seconds < HA_NODE_LEASE_FLOOR:
        log.info(
            "--leader-elect: node lease %gs raised to %gs so a failover never fences a node",
            config.lease_seconds,
            HA_NODE_LEASE_FLOOR,
        )
        return HA_NODE_LEASE_FLOOR
    return config.lease_seconds


def _etcd_of(store: Store) -> EtcdStore:
    inner = store.inner if isinstance(store, SealingStore) else store
    if not isinstance(inner, EtcdStore):
        raise TypeError("--leader-elect runs only on an etcd store (checked when parsing flags)")
    return inner


def _leader_or_controllers(
    config: MasterConfig,
    store: Store,
    state: ClusterState,
    manager: ControllerManager,
    me: MasterInfo | None,
    clock: SystemClock,
) -> asyncio.Task[None]:
    """Without --leader-elect this master runs the controllers (on etcd: paused while a
    write is in doubt); with it, only while it leads."""
    if not config.leader_elect:
        inner = store.inner if isinstance(store, SealingStore) else store
        if isinstance(inner, EtcdStore):
            # No elector pauses it when a write's outcome is unknown: the settler does.
            settler = Settler(inner, state, manager, clock)
            return asyncio.create_task(settler.run(), name="controllers")
        return asyncio.create_task(manager.run(), name="controllers")
    if me is None or not isinstance(store, SealingStore):
        raise TypeError("--leader-elect needs this master's entry and the sealed etcd store")
    follower = Follower(_etcd_of(store), state, store.load_all, store.opened)
    timing = LeaseTiming.of(config.leader_lease)
    role = HaRole(_etcd_of(store), state, manager, me, timing, follower=follower)
    return asyncio.create_task(role.run(), name="leader-election")


def _open_store(config: MasterConfig, clock: SystemClock) -> tuple[Store, ClusterIdentity | None]:
    """The store, Secrets sealed on their way in, and (etcd) the cluster's shared identity.

    On SQLite the Secrets key stays in the data dir (one master per cluster). On etcd
    it is part of the cluster identity every master loads from the store (sealed with
    the cluster secret), with the CA and the admin credentials."""
    if config.etcd is None:
        sealer = SecretSealer.in_data_dir(config.data_dir)
        sqlite = SqliteStore.in_data_dir(
            config.data_dir, cluster_exists=(config.data_dir / "pki").is_dir()
        )
        return SealingStore(sqlite, sealer), None
    store = EtcdStore(config.etcd)
    log.info("state in etcd at %s under %s", store.client.urls, config.etcd.prefix)
    try:
        secret = cluster_secret(config.cluster_secret_file, config.data_dir, store)
        now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
        shared = load_or_create(store, secret, config.data_dir, now)
        sealer = SecretSealer(shared.secrets_key)
        _check_sealing_key(store, sealer)
    except BaseException:
        store.close()
        raise
    return SealingStore(store, sealer), shared


SEALING_KEY_META = "secrets_key_id"


def _check_sealing_key(store: Store, sealer: SecretSealer) -> None:
    """The key of the shared identity must be the one etcd's Secrets are sealed with (they
    are, unless the prefix holds Secrets of a master from before the shared identity):
    its id is recorded in etcd, and a master with another key refuses to start."""
    recorded = store.meta_get(SEALING_KEY_META)
    if recorded is None:
        try:
            store.meta_set(SEALING_KEY_META, sealer.key_id)
        except StoreError:
            recorded = store.meta_get(SEALING_KEY_META)  # another master recorded one first
        else:
            return
    if recorded != sealer.key_id:
        raise StoreError(
            f"the cluster identity's secrets key is {sealer.key_id}, but this cluster's "
            f"Secrets in etcd are sealed with key {recorded}: the identity was made without "
            f"the {KEY_FILE} of the master that stored them; use another --etcd-prefix"
        )


def _lb_addresses(config: MasterConfig) -> LbAddresses:
    return LbAddresses(
        config.lb_listen,
        config.lb_advertise,
        config.lb_internal,
        config.lb_port_offset,
        config.lb_address_pool,
    )


def _ingress_ports(config: MasterConfig) -> IngressPorts:
    """The ingress ports, shifted by --lb-port-offset as every load-balancer port is (so
    masters sharing a machine with their own offsets never want the same port); 0 stays
    off."""
    offset = config.lb_port_offset
    http, https = config.ingress_http_port, config.ingress_https_port
    return IngressPorts(
        config.lb_listen,
        http + offset if http else 0,
        https + offset if https else 0,
        config.lb_advertise,
    )


def _lb_admission(config: MasterConfig, state: ClusterState) -> ServiceAdmission | None:
    if not config.lb_enabled:
        return None
    addresses = _lb_addresses(config)
    ports = _ingress_ports(config)

    def admit(new: Sequence[Service], existing: Sequence[Service]) -> list[str]:
        ingresses = [i for i in state.objects("Ingress") if isinstance(i, Ingress)]
        classes = [c for c in state.objects("IngressClass") if isinstance(c, IngressClass)]
        reserved = ingress_reserved(ports, ingresses, classes)
        return admission_errors(new, existing, addresses, reserved)

    return admit


def _load_balancer(
    config: MasterConfig, state: ClusterState, clock: SystemClock
) -> LoadBalancerController | None:
    if not config.lb_enabled:
        return None
    if shutil.which(config.haproxy_bin) is None:
        raise SystemExit(
            f"pinnace master: {config.haproxy_bin} not found: install HAProxy "
            f"(apt-get install haproxy) or start the master with --no-lb"
        )
    # HAProxy's runtime files live with the master's state; HAProxy outlives the master.
    workdir = config.data_dir / "lb"
    # One HAProxy thread on a machine of two CPUs (kernel/haproxy_tuning.py says why).
    settings = LbSettings(listen_address=config.lb_listen, threads=haproxy_threads(os.cpu_count()))
    driver = HAProxyDriver(workdir, settings, config.haproxy_bin)
    return LoadBalancerController(
        state,
        clock,
        driver,
        _lb_addresses(config),
        stop_on_exit=config.lb_stop_on_exit,
        ingress_ports=_ingress_ports(config),
    )


def run_master(config: MasterConfig, bounded_exit: bool = False) -> int:
    """Serve until stopped. The stop is bounded from the signal on (master/stopping.py);
    with `bounded_exit` (the `pinnace master` process) the bound also covers the
    process's own exit after this returns, otherwise (in-process tests) it ends here."""
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except (OSError, StoreError, TaskDied) as e:
        print(f"pinnace master: {e}", file=sys.stderr)
        return 1
    finally:
        if not bounded_exit:
            disarm_stop_deadline()
    return 0
