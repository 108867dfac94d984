"""`python -m agent` (what `pinnace agent` execs): flags, wiring, signals.

Builds the pieces and runs them until SIGTERM/SIGINT: a DockerRuntime for this
node, the Worker (reconcile loop) publishing into a StatusOutbox, and the Session
with the master. Exiting leaves every container running: a restarted agent adopts
them (they are found by label and re-registered), so upgrading or restarting the
agent never restarts the workloads. Flag errors are one sentence and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import re
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from agent.capacity import (
    DEFAULT_RESERVE_CPU,
    DEFAULT_RESERVE_MEMORY,
    NodeResources,
    compute_resources,
    detect_capacity,
)
from agent.claim_disks import DEFAULT_ROOT as CLAIM_ROOT
from agent.claim_disks import ClaimDisks, why_unavailable
from agent.claim_volumes import ClaimOrders, run_claim_keeper
from agent.credentials import default_state_dir
from agent.dns.address import derived_address
from agent.dns.render import names_from_table, srv_from_table
from agent.dns.server import DEFAULT_DIR as DEFAULT_DNS_DIR
from agent.dns.server import DnsServer, DnsStartError
from agent.exec import ExecRunner
from agent.fencing import FencePolicy
from agent.hostgw.routes import HostRoutes
from agent.join import JoinError, prepare
from agent.logs import LogStreamer, PreviousLogs
from agent.memory_volumes import DEFAULT_ROOT as MEMORY_ROOT
from agent.memory_volumes import MemoryVolumes
from agent.metrics import MetricsListenError, counted, start_metrics_server
from agent.model import NodeInfo, PodAssignment
from agent.nodeproxy.nodeaddresses import (
    NodePortAddresses,
    NodePortAddressesError,
    parse_nodeport_addresses,
)
from agent.nodeproxy.podroutes import pod_routes_for
from agent.nodeproxy.proxy import ListenerProblem, NodeProxy
from agent.nodeproxy.render import ProxySettings
from agent.nodeproxy.table import ServiceTable, ServiceTables
from agent.nodeproxy.udpkernel import UdpRules
from agent.outbox import StatusOutbox
from agent.poddns import NodeDns, ResolvConf, parse_resolv_conf, pod_resolv_conf
from agent.prober import run_probe
from agent.runtime.metered import MeteredRuntime
from agent.runtime.port import Runtime
from agent.runtime.sandbox import SANDBOX_IMAGE
from agent.session import Session
from agent.testhooks import install_wedge_hook
from agent.usage import UsageSampler
from agent.volume_files import DEFAULT_ROOT, VolumeFiles
from agent.volume_gc import run_volume_gc
from agent.watchdog import LoopWatchdog
from agent.witness import (
    WitnessClient,
    WitnessListenError,
    WitnessServicer,
    serve_witness,
    stop_witness,
)
from agent.worker import Worker
from kernel.bindprobe import bind_error
from kernel.clock import Clock, SystemClock
from kernel.haproxy_tuning import haproxy_threads
from kernel.listen import parse_listen
from kernel.names import is_node_name
from kernel.quantity import QuantityError, parse_quantity_cpu, parse_quantity_memory

if TYPE_CHECKING:
    from agent.runtime.docker_runtime import DockerRuntime

AGENT_VERSION = "0.1.0"
DEFAULT_MASTER = "127.0.0.1:7400"
log = logging.getLogger("pinnace.agent")
# Docker's own rule for network (and container) names.
_NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"pinnace agent: {message}\n")


def parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--labels: {item!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pinnace agent", description="Run the pods the master assigns to this node.")
    p.add_argument(
        "--master",
        default=os.environ.get("PINNACE_MASTER") or DEFAULT_MASTER,
        help="master address HOST:PORT (default: $PINNACE_MASTER, else 127.0.0.1:7400)",
    )
    p.add_argument("--name", default=socket.gethostname(), help="node name (default: hostname)")
    p.add_argument(
        "--advertise-address",
        default="127.0.0.1",
        help="the IP pod ports are published on (default: 127.0.0.1)",
    )
    p.add_argument(
        "--pod-network",
        default="",
        metavar="NAME",
        help="attach pods to this Docker network and report their IP there as the endpoint, "
        "instead of publishing their ports on the advertise address",
    )
    p.add_argument(
        "--pod-sandbox",
        dest="pod_sandbox",
        nargs="?",
        const="all",
        choices=("all", "multi"),
        default="multi",
        help="run a pod's containers in the network namespace of one holder container per "
        "pod (pinnace/pause, built by `make images`), as Kubernetes' pause container: the "
        "pod's containers share localhost, and a crashed one starts again without new network "
        "setup. multi (the default): only pods of more than one container, since a holder "
        "costs about a container start per pod; all (also --pod-sandbox alone): every pod",
    )
    p.add_argument(
        "--no-pod-sandbox",
        dest="pod_sandbox",
        action="store_const",
        const="none",
        help="give each container a network namespace of its own instead (no holder; a "
        "crashed container's restart makes its network again, and a pod's containers do not "
        "share localhost)",
    )
    p.add_argument(
        "--standby-sandbox",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give a pod that runs without a sandbox (one container, no fixed hostPort) a "
        "holder made once it runs and the engine is quiet, off the apply's clock; its crashed "
        "container is replaced by one joined to that holder, which starts without new network "
        "setup (~0.2 s less here). Costs a running holder per such pod (its shim, pause "
        "process and port proxies); the pod's address and ephemeral host ports change at its "
        "first crash. On by default; --no-standby-sandbox turns it off",
    )
    p.add_argument(
        "--pod-sandbox-image",
        default=SANDBOX_IMAGE,
        metavar="IMAGE",
        help=f"the image of a pod sandbox's holder (default {SANDBOX_IMAGE}; never pulled: "
        "without it on the node, pods run without a sandbox and say so)",
    )
    p.add_argument("--labels", default="", help="node labels, k=v,k2=v2")
    p.add_argument("--capacity-cpu", help="claim this CPU capacity instead of detecting it")
    p.add_argument("--capacity-memory", help="claim this memory capacity instead of detecting it")
    p.add_argument("--reserve-cpu", default=DEFAULT_RESERVE_CPU, help="CPU kept back from pods")
    p.add_argument(
        "--reserve-memory", default=DEFAULT_RESERVE_MEMORY, help="memory kept back from pods"
    )
    p.add_argument(
        "--fence-after",
        type=float,
        help="seconds without a heartbeat ack before stopping all pods (default: 0.8 x lease)",
    )
    p.add_argument("--no-fence", action="store_true", help="never stop pods on losing the master")
    p.add_argument(
        "--witness-port",
        type=int,
        default=0,
        metavar="PORT",
        help="port on the advertise address where peers ask this agent whether it hears the "
        "master, before they fence (default 0: any free port; -1: answer no peer)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("PINNACE_TOKEN", ""),
        help="join token from `pinnace token create` (default: $PINNACE_TOKEN); needed only "
        "until the node has a certificate in --state-dir",
    )
    p.add_argument(
        "--state-dir",
        default="",
        metavar="DIR",
        help="where the node key and certificates live (default: ~/.pinnace/agent/NODE)",
    )
    p.add_argument(
        "--claim-dir",
        default=CLAIM_ROOT,
        metavar="DIR",
        help="where claim volumes' files are kept, each a file of its claim's size "
        f"formatted ext4 and loop-mounted (the agent must be root) (default: {CLAIM_ROOT})",
    )
    p.add_argument(
        "--volume-dir",
        default=DEFAULT_ROOT,
        metavar="DIR",
        help="where configMap and secret volumes' files are kept; a tmpfs, so secrets never "
        f"reach the disk (default: {DEFAULT_ROOT})",
    )
    p.add_argument(
        "--memory-dir",
        default=MEMORY_ROOT,
        metavar="DIR",
        help="where memory emptyDirs live, each a tmpfs of its sizeLimit the agent mounts "
        "(a root agent), else a directory on this tmpfs without a size limit "
        f"(default: {MEMORY_ROOT})",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext, no certificates: only to a master on loopback started with --insecure",
    )
    p.add_argument(
        "--no-node-proxy",
        action="store_true",
        help="do not answer Services' cluster IPs on this node (by default the agent runs "
        "an HAProxy listening on each cluster IP:port and routes the service range to lo)",
    )
    p.add_argument(
        "--stop-node-proxy-on-exit",
        action="store_true",
        help="stop the node proxy when the agent stops (by default it keeps serving and the "
        "next agent adopts it)",
    )
    p.add_argument("--haproxy", default="haproxy", help="the haproxy binary (node proxy)")
    p.add_argument(
        "--nodeport-addresses",
        default="",
        metavar="CIDR,...",
        help="the node's addresses that answer on node ports, as kube-proxy's flag: those in "
        "these ranges (127.0.0.0/8 among them: loopback too, TCP only) and the advertise "
        "address (default: every address of the node but loopback)",
    )
    p.add_argument(
        "--cluster-dns",
        default="auto",
        metavar="IP|auto|none",
        help="the address this node's DNS server (dnsmasq) answers its pods on, port 53; the "
        "agent makes it an address of this machine if it is not one (auto: 169.254.x.y "
        "derived from the node name; none: no cluster DNS, pods use the node's resolvers)",
    )
    p.add_argument(
        "--cluster-domain",
        default="cluster.local",
        help="the cluster's DNS domain: Services are <svc>.<namespace>.svc.<domain> "
        "(default: cluster.local)",
    )
    p.add_argument(
        "--dns-dir",
        default=DEFAULT_DNS_DIR,
        metavar="DIR",
        help="where the node's dnsmasq keeps its config and the cluster's names (readable by "
        f"the unprivileged user dnsmasq runs as; default: {DEFAULT_DNS_DIR})",
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument(
        "--metrics-listen",
        default=os.environ.get("PINNACE_METRICS_LISTEN", "127.0.0.1:9401"),
        metavar="HOST:PORT",
        help="where /metrics (Prometheus) is served; '' turns it off "
        "(default: $PINNACE_METRICS_LISTEN, else 127.0.0.1:9401)",
    )
    return p


def _check_address(parser: argparse.ArgumentParser, flag: str, value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        parser.error(f"{flag}: expected HOST:PORT, got {value!r}")


def resolve(argv: Sequence[str] | None) -> tuple[argparse.Namespace, NodeResources]:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Several masters (HA): comma separated; the session moves on when one fails it.
    for master in args.master.split(","):
        _check_address(parser, "--master", master.strip())
    if not is_node_name(args.name):
        parser.error(
            f"--name: {args.name[:80]!r} is not a valid node name (lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, at most 253 characters)"
        )
    try:
        socket.inet_pton(
            socket.AF_INET6 if ":" in args.advertise_address else socket.AF_INET,
            args.advertise_address,
        )
    except OSError:
        parser.error(f"--advertise-address: {args.advertise_address!r} is not an IP address")
    try:
        args.nodeport_addresses = parse_nodeport_addresses(args.nodeport_addresses)
    except NodePortAddressesError as exc:
        parser.error(str(exc))
    if args.pod_network and not _NETWORK_NAME.fullmatch(args.pod_network):
        parser.error(f"--pod-network: {args.pod_network!r} is not a Docker network name")
    try:
        args.labels = parse_labels(args.labels)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        parse_listen(args.metrics_listen)
    except ValueError as exc:
        parser.error(str(exc))
    if args.cluster_dns not in ("auto", "none"):
        try:
            socket.inet_pton(socket.AF_INET, args.cluster_dns)
        except OSError:
            parser.error(
                f"--cluster-dns: {args.cluster_dns!r} is not an IPv4 address, auto or none"
            )
    if not is_node_name(args.cluster_domain):
        parser.error(f"--cluster-domain: {args.cluster_domain[:80]!r} is not a DNS domain")
    if args.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        parser.error(f"--log-level: {args.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    if not -1 <= args.witness_port <= 65535:
        parser.error(
            f"--witness-port: must be -1 (off), 0 (any) or a port, got {args.witness_port}"
        )
    if args.fence_after is not None and args.fence_after <= 0:
        parser.error(f"--fence-after: must be > 0, got {args.fence_after}")
    for flag in ("capacity_cpu", "capacity_memory", "reserve_cpu", "reserve_memory"):
        value = getattr(args, flag)
        parse = parse_quantity_cpu if flag.endswith("cpu") else parse_quantity_memory
        try:
            if value is not None:
                parse(value)
        except QuantityError as exc:
            parser.error(f"--{flag.replace('_', '-')}: {exc}")
    try:
        resources = compute_resources(
            detect_capacity(),
            capacity_cpu=args.capacity_cpu,
            capacity_memory=args.capacity_memory,
            reserve_cpu=args.reserve_cpu,
            reserve_memory=args.reserve_memory,
        )
    except QuantityError as exc:
        parser.error(str(exc))
    return args, resources


async def _memory_volumes(args: argparse.Namespace) -> tuple[MemoryVolumes, str]:
    """The node's memory emptyDirs, each its own tmpfs where the agent can mount one; else
    directories on --memory-dir, and the warning that says what that costs."""
    memory = MemoryVolumes(Path(args.memory_dir) / args.name)
    why = await asyncio.to_thread(memory.why_unavailable)
    if not why:
        return memory, ""
    memory.mounts = False
    trouble = (
        f"memory emptyDirs on this node are directories in {args.memory_dir}: kept for "
        f"their pod's life, but their sizeLimit is not enforced: {why}"
    )
    log.warning("%s", trouble)
    return memory, trouble


async def run_agent(
    args: argparse.Namespace, resources: NodeResources, runtime: Runtime | None = None
) -> None:
    # Credentials first (join if need be): an agent that cannot authenticate does nothing.
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir(args.name)
    security = await prepare(args.master, args.name, args.token, state_dir, args.insecure)
    disks = None
    docker_runtime: DockerRuntime | None = None
    memory, memory_trouble = None, ""
    if runtime is None:
        why = why_unavailable(args.claim_dir)
        if why:
            log.warning("claim sizes are not enforced on this node: %s", why)
        disks = None if why else ClaimDisks(Path(args.claim_dir) / args.name)
        memory, memory_trouble = await _memory_volumes(args)
        from agent.runtime.docker_runtime import DockerRuntime

        runtime = docker_runtime = DockerRuntime(
            args.name,
            pod_network=args.pod_network,
            disks=disks,
            memory=memory,
            pod_sandbox=args.pod_sandbox,
            sandbox_image=args.pod_sandbox_image,
            standby=args.standby_sandbox,
        )
    runtime = MeteredRuntime(runtime)
    metered = runtime
    claims = ClaimOrders()
    clock = SystemClock()
    outbox = StatusOutbox()
    fence = FencePolicy(enabled=not args.no_fence, fence_after=args.fence_after)
    check = counted(lambda target: run_probe(target, metered))
    previous = PreviousLogs()
    dns, dns_trouble = await start_dns(args)
    node_dns = NodeDns(dns.address if dns else "", args.cluster_domain)
    host_resolv = _host_resolv_conf()

    def resolv(assignment: PodAssignment) -> ResolvConf:
        namespace = assignment.namespace or "default"
        return pod_resolv_conf(assignment.spec.dns, namespace, node_dns, host_resolv)

    worker = Worker(
        runtime,
        args.advertise_address,
        clock,
        outbox.update,
        check=check,
        fence=fence,
        files=VolumeFiles(args.volume_dir, args.name),
        previous=previous,
        claims=claims,
        resolv=resolv,
    )
    metrics = start_metrics_server(args.metrics_listen)
    if metrics is not None:
        log.info("metrics on http://%s/metrics", metrics.address)
    creds = lambda: security.creds  # noqa: E731 - read at each use: certificates rotate
    witness = WitnessServicer(args.name, creds)
    witness_server, witness_port = None, 0
    if args.witness_port >= 0:
        try:
            witness_server, witness_port = await serve_witness(
                args.advertise_address, args.witness_port, witness
            )
        except WitnessListenError:
            if metrics is not None:
                metrics.close()
            raise
    node = NodeInfo(
        name=args.name,
        address=args.advertise_address,
        capacity=resources.capacity,
        allocatable=resources.allocatable,
        labels=args.labels,
        agent_version=AGENT_VERSION,
        os=platform.system().lower(),
        kernel=platform.release(),
        container_runtime="docker",
        witness_port=witness_port,
    )
    # The master's service table: the node proxy and the node's DNS serve from it.
    services = ServiceTables()
    # Pods reached at their own addresses from every node (agent/hostgw): routes to the
    # other nodes' pod subnets, planned before the DNS reads which nodes they reach.
    gateway = None
    if docker_runtime is not None and not args.pod_network:
        gateway = HostRoutes(
            args.name,
            clock,
            lambda reason, text: session.notify(reason, text),
            report=lambda ready, unreached: session.report_pod_routes(ready, unreached),
        )
        services.subscribe(gateway.offer)
    if dns is not None:
        server = dns

        def named(table: ServiceTable) -> None:
            reach = gateway.reachable if gateway is not None else frozenset()
            server.update(names_from_table(table, reach), srv_from_table(table, reach))

        services.subscribe(named)

    def pod_cidr(cidr: str) -> None:
        """The master gave this node a pod subnet: its pods go on a bridge of it."""
        settled = docker_runtime.use_pod_subnet(cidr) if docker_runtime is not None else None
        if settled is not None:
            settled.add_done_callback(lambda done: _bridge_settled(done, cidr, session.notify))

    session = Session(
        args.master,
        node,
        worker,
        outbox,
        clock,
        channel=security.channel,
        witness=WitnessClient(args.name, creds),
        logs=LogStreamer(runtime, previous),
        prefer=security.prefer,
        usage=UsageSampler(runtime, clock, disks=disks),
        claims=claims,
        services=services,
        execs=ExecRunner(runtime, args.advertise_address),
        pod_cidr=pod_cidr,
    )
    witness.bind(session.probe_master)
    if dns_trouble:
        session.notify("ClusterDNSUnavailable", dns_trouble)
    if memory_trouble:
        session.notify("MemoryVolumeSizeNotEnforced", memory_trouble)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    install_wedge_hook(loop)
    # A wedged loop ends the agent's connections to the master (agent/watchdog.py).
    watchdog = LoopWatchdog(
        loop,
        args.master.split(","),
        on_recovered=lambda stalled: session.notify(
            "AgentLoopStalled",
            f"the agent's event loop did not run for {stalled:.1f}s; it ended its "
            "connection to the master meanwhile, so the node showed NotReady",
        ),
    )
    watchdog.start()
    log.info(
        "agent %s for node %s: master %s, pods %s, allocatable %dm CPU / %d bytes",
        AGENT_VERSION,
        args.name,
        args.master,
        f"on network {args.pod_network}"
        if args.pod_network
        else f"published on {args.advertise_address}",
        resources.allocatable.cpu_millis,
        resources.allocatable.memory_bytes,
    )
    proxy = _node_proxy(
        args, state_dir, clock, services, session.notify, session.report_proxy_problems
    )
    # An agent that is not where its pods' packets leave (in a container of its own) gives
    # each pod a route to itself (agent/nodeproxy/podroutes.py); None when none is needed.
    routes = None
    if proxy is not None and docker_runtime is not None and args.pod_network:
        routes = await pod_routes_for(
            args.pod_network,
            docker_runtime.pod_network_ranges,
            metered.list_containers,
            session.notify,
        )
        if routes is not None:
            docker_runtime.call_after_start(routes.after_start)
            services.subscribe(routes.offer)
    tasks = [
        *([asyncio.create_task(proxy.run(), name="node-proxy")] if proxy else []),
        *([asyncio.create_task(routes.run(), name="pod-routes")] if routes else []),
        *([asyncio.create_task(gateway.run(), name="host-gw")] if gateway else []),
        asyncio.create_task(worker.run(), name="worker"),
        asyncio.create_task(session.run(), name="session"),
        asyncio.create_task(security.run(), name="certificate-rotation"),
        asyncio.create_task(run_volume_gc(runtime, clock, memory), name="volume-collector"),
        asyncio.create_task(run_claim_keeper(runtime, disks, claims, clock), name="claims"),
    ]
    if dns is not None:
        tasks.append(asyncio.create_task(dns.run(), name="dns"))
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    if stopper in done and await session.goodbye(
        "the agent is stopping (SIGTERM) and will be back; its containers keep running"
    ):
        log.info("told the master this agent will be back")
    watchdog.stop()
    if witness_server is not None:
        end = await stop_witness(witness_server)
        if end.cancelled or end.left:
            log.info(
                "witness: %d peers' questions still in flight at the stop, %d cancelled, %d left",
                end.running,
                end.cancelled,
                end.left,
            )
    for task in [*tasks, stopper]:
        task.cancel()
    await asyncio.gather(*tasks, stopper, return_exceptions=True)
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    if proxy is not None and args.stop_node_proxy_on_exit:
        stopped = await proxy.stop()
        if stopped is not None:
            log.info("node proxy stopped (HAProxy pid %d)", stopped)
    if dns is not None:
        await dns.stop()
    with contextlib.suppress(Exception):
        await runtime.close()
    if metrics is not None:
        metrics.close()
    log.info("agent stopped; its containers keep running and will be adopted on restart")


def _node_proxy(
    args: argparse.Namespace,
    state_dir: Path,
    clock: Clock,
    services: ServiceTables,
    notify: Callable[[str, str], None],
    report: Callable[[tuple[ListenerProblem, ...]], None],
) -> NodeProxy | None:
    """The node proxy (agent/nodeproxy), fed by the master's service table; None when off."""
    if args.no_node_proxy:
        log.info("node proxy off (--no-node-proxy): Services' cluster IPs are not served here")
        return None
    if shutil.which(args.haproxy) is None:
        why = (
            f"node proxy off: no HAProxy binary {args.haproxy!r} (install haproxy, pass "
            "--haproxy PATH, or --no-node-proxy); pods on this node cannot reach Services' "
            "cluster IPs"
        )
        log.error("%s", why)
        notify("NodeProxyUnavailable", why)
        return None
    # One HAProxy thread on a machine of two CPUs (kernel/haproxy_tuning.py says why).
    settings = ProxySettings(threads=haproxy_threads(os.cpu_count()))
    workdir = state_dir / "nodeproxy"
    proxy = NodeProxy(
        workdir,
        clock,
        args.haproxy,
        settings,
        notify=notify,
        report=report,
        node=NodePortAddresses(
            args.advertise_address,
            args.nodeport_addresses,
            ipv6=bind_error("::", 0) is None,
        ),
        udp=UdpRules(workdir, args.name, node_ranges=args.nodeport_addresses),
    )
    services.subscribe(proxy.offer)
    return proxy


def _bridge_settled(
    done: asyncio.Future[str], cidr: str, notify: Callable[[str, str], None]
) -> None:
    if done.cancelled():
        return
    failure = done.exception()
    if failure is None:
        log.info("pods on network %s (pod subnet %s)", done.result(), cidr)
        return
    log.warning("%s", failure)
    notify("PodSubnetUnavailable", str(failure))


def _host_resolv_conf() -> ResolvConf:
    try:
        return parse_resolv_conf(Path("/etc/resolv.conf").read_text())
    except OSError:
        return ResolvConf()


async def start_dns(args: argparse.Namespace) -> tuple[DnsServer | None, str]:
    """This node's DNS server, started; None (pods use the node's resolvers) when it is off,
    or when it cannot run: then also why, which is logged and becomes a node event."""
    if args.cluster_dns == "none":
        return None, ""
    address = derived_address(args.name) if args.cluster_dns == "auto" else args.cluster_dns
    server = DnsServer(args.name, address, args.cluster_domain, Path(args.dns_dir))
    try:
        await server.start()
    except (DnsStartError, OSError) as exc:
        why = f"no cluster DNS on this node, its pods use the node's resolvers: {exc}"
        log.warning("%s", why)
        await server.stop()
        return None, why
    return server, ""


def main(argv: Sequence[str] | None = None) -> int:
    args, resources = resolve(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Libraries' debug chatter (grpc logs a cancelled stream with a traceback) is not ours.
    for noisy in ("docker", "urllib3", "grpc", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        asyncio.run(run_agent(args, resources))
    except (JoinError, MetricsListenError, WitnessListenError) as e:
        print(f"pinnace agent: {e}", file=sys.stderr)
        return 1
    return 0
