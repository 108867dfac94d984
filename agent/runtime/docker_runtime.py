"""DockerRuntime: the Runtime port over the Docker Engine API (the `docker` SDK).

Every call is filtered by the `pinnace.node=<node>` label, so agents sharing an
engine never see each other's containers. The SDK blocks, so each call runs in a
worker thread of this runtime's own pool (a stop waits out a grace period; the
event loop's small default pool would let a few slow stops stall every start).
The start/die event stream is one long-lived HTTP response read by a daemon thread
that hands events to the loop. Listing is one `GET /containers/json`; the full
inspect a ContainerInfo needs is cached per (id, state), since neither ports nor
exit facts change until the state does.

With a pod network (`pod_network`, e.g. a docker-compose network the master's
HAProxy is on), pods are attached to that network instead of publishing ports on
the host: a pod is then reached at its container IP on that network and its
container ports, which is what ContainerInfo.address/ports report. Without one, pods
run on Docker's default bridge, or, once the master gives the node a pod subnet
(`use_pod_subnet`), on the node's own bridge of it (agent/hostgw/bridge.py), their
ports still published.

With `pod_sandbox` (the agent's --pod-sandbox: every pod, or by default only a pod of more
than one container, agent/runtime/sandbox.py wants_sandbox), a pod's containers join the
network namespace of one holder container per pod, which publishes the pod's ports and carries its
hostname and DNS (agent/runtime/sandbox.py decides what to create and remove; this module
only makes the calls): a crashed container then starts again without a new namespace, veth
or port proxy. Holders are never listed as containers; a container that joined one is
described with its holder's ports and addresses. Whatever the flag, holders found on the
engine are kept in step with their pods (an agent restarted without the flag still removes
a holder whose pod is gone).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import os
import posixpath
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import docker
import docker.errors
import docker.types
from docker.utils import parse_repository_tag

from agent.claim_disks import ClaimDisks, DiskError
from agent.hostgw.bridge import (
    BRIDGE_OPTIONS,
    GATEWAY_MODE,
    LABEL_POD_CIDR,
    BridgeNet,
    bridge_name,
    bridge_plan,
)
from agent.memory_volumes import MemoryVolumeError, MemoryVolumes
from agent.mount_paths import SubPathEscape, make_host_path, make_sub_path, path_kind
from agent.mountns import why_mounts_stay_here
from agent.restart_timeline import ENGINE_SWAP, SWAP_MARKS
from agent.runtime.docker_exec import DockerAttachSession, DockerExecSession
from agent.runtime.docker_stats import parse_stats
from agent.runtime.image_gate import ImageGate, PullCounts
from agent.runtime.image_ids import kubelet_image_id
from agent.runtime.keyed_lock import KeyedLock
from agent.runtime.port import (
    LABEL_CONTAINER,
    LABEL_NODE,
    LABEL_SANDBOX,
    LABEL_STANDBY,
    LABEL_STANDBY_FACTS,
    LABEL_VOLUME_KIND,
    BeforeRemove,
    ContainerConfig,
    ContainerCreateError,
    ContainerInfo,
    ContainerStats,
    ExecResult,
    ExecSession,
    ImagePullError,
    LogOptions,
    Mount,
    Ran,
    RuntimeEvent,
    RuntimeFailure,
    RuntimeUnavailable,
    VolumeInfo,
    fallback_note,
    pod_of,
    restarted_name,
)
from agent.runtime.sandbox import (
    SANDBOX_IMAGE,
    STANDBY_WAIT,
    Member,
    SandboxMode,
    adoptable_standbys,
    holder_config,
    holder_step,
    is_holder,
    joined_config,
    joined_holder,
    joined_info,
    known_holders,
    member_of,
    missing_image_note,
    network_mode,
    pod_standbys,
    standby_config,
    standby_due,
    standby_facts,
    standby_from_facts,
    standby_still_wanted,
    sweep,
    usable_standby,
    wants_sandbox,
    wants_standby,
    with_standby,
)
from agent.runtime.single_flight import SingleFlight, ThreadSingleFlight
from agent.runtime.summaries import info_from_summary, starting_unlisted
from agent.runtime.thread_pump import pumped
from agent.sub_paths import (
    BindSubDir,
    MakeSubDir,
    SubPathRefused,
    check_host_path,
    plan_sub_path,
    serve_made,
    sub_path_escape,
    volume_directory,
)
from agent.volume_owner import set_volume_ownership

log = logging.getLogger(__name__)
T = TypeVar("T")
log = logging.getLogger(__name__)
_POOL_SIZE = 64
# At most this many starts may hold an engine thread while they wait for their pull
# (ImageGate): the pull needs a thread of the same pool, and so do the agent's other engine
# calls. Starts beyond it wait for their pull before the create, as before the overlap.
_WAITING_STARTS_MAX = _POOL_SIZE // 2
_CONFLICT = 409  # the engine's answer to a create whose name is taken
# An exec probe's output is only shown in a message; keep its tail.
_EXEC_OUTPUT_MAX = 4096


class _NoSandboxImage(Exception):
    """The engine has no sandbox image: the pod runs without a sandbox."""


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


def _parse_time(text: str | None) -> float:
    """Docker's RFC 3339 with nanoseconds ("...T12:00:00.123456789Z"); 0 for its zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    head, _, rest = text.partition(".")
    if rest:
        zone = rest.lstrip("0123456789")
        digits = rest[: len(rest) - len(zone)][:6]
        text = f"{head}.{digits}{zone}"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def log_window(options: LogOptions, restarted_at: float, now: float) -> dict[str, Any]:
    """The engine's since/until for a log read. A container started again in place keeps
    its log file, so its log starts at that restart (Kubernetes shows the current
    container's run only), unless `until` asks for the time before it (the previous run)."""
    window: dict[str, Any] = {}
    since = now - options.since_seconds if options.since_seconds > 0 else 0.0
    if options.until > 0:
        window["until"] = options.until
    elif restarted_at > since:
        since = restarted_at
    if since > 0:
        window["since"] = since
    return window


def _port_key(key: str) -> tuple[str, int]:
    """Docker's "80/tcp" -> ("80/TCP", 80)."""
    port, _, proto = key.partition("/")
    return f"{port}/{proto.upper() or 'TCP'}", int(port)


@functools.lru_cache(maxsize=64)
def is_local_address(ip: str) -> bool:
    """Whether `ip` is an address of this machine (a socket can bind to it).

    A container network whose gateway is local is a bridge on this machine: the agent
    runs on the engine's host (or shares its network namespace) and can route to the
    containers on it. Not so from inside another container or a desktop VM's client."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((ip, 0))
    except OSError:
        return False
    return True


def _routable_ip(settings: dict[str, Any], routable: Callable[[str], bool]) -> str:
    """The container's IP on a network whose gateway `routable` accepts, or ""."""
    for network in (settings.get("Networks") or {}).values():
        ip, gateway = (network or {}).get("IPAddress"), (network or {}).get("Gateway")
        if ip and gateway and routable(str(gateway)):
            return str(ip)
    return ""


def info_from_inspect(
    attrs: dict[str, Any],
    pod_network: str = "",
    routable: Callable[[str], bool] | None = None,
    repo_digests: Callable[[str], Sequence[str]] | None = None,
) -> ContainerInfo:
    """`routable(gateway)`: whether the agent reaches containers on the network with that
    gateway; then probes go to the container's own IP rather than a published port.
    `repo_digests(image_id)`: the RepoDigests of the container's image (none: the image is
    named by its id)."""
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    settings = attrs.get("NetworkSettings") or {}
    ports: dict[str, int] = {}
    for key, bindings in (settings.get("Ports") or {}).items():
        if not bindings:
            continue
        ports[_port_key(key)[0]] = int(bindings[0]["HostPort"])
    # On a pod network nothing is published: the pod answers on its own IP there, on its
    # container ports. The IP exists only while the container runs.
    network = (settings.get("Networks") or {}).get(pod_network) if pod_network else None
    address = str((network or {}).get("IPAddress") or "")
    if address:
        ports = dict(_port_key(key) for key in config.get("ExposedPorts") or {})
    image = str(attrs.get("Image") or "")
    host_config = attrs.get("HostConfig") or {}
    return ContainerInfo(
        id=attrs["Id"],
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        state=str(state.get("Status", "unknown")),
        labels=dict(config.get("Labels") or {}),
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        started_at=_parse_time(state.get("StartedAt")),
        finished_at=_parse_time(state.get("FinishedAt")),
        ports=ports,
        error=str(state.get("Error") or ""),
        address=address,
        probe_address=address or (_routable_ip(settings, routable) if routable else ""),
        pid=int(state.get("Pid") or 0) if state.get("Running") else 0,
        image_id=kubelet_image_id(image, repo_digests(image) if repo_digests and image else ()),
        sandbox_id=joined_holder(str(host_config.get("NetworkMode") or "")),
    )


def event_from_docker(raw: dict[str, Any]) -> RuntimeEvent | None:
    """A Docker container event as the port's RuntimeEvent (None: not one the agent follows).
    Its attributes are the container's labels, plus `name`, `image` and, on a die,
    `exitCode`."""
    attributes = (raw.get("Actor") or {}).get("Attributes") or {}
    action = raw.get("Action") or raw.get("status")
    if action not in ("start", "die", "oom"):
        return None
    exit_code: int | None = None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        exit_code = int(attributes["exitCode"]) if action == "die" else None
    return RuntimeEvent(
        action,
        str(raw.get("id") or (raw.get("Actor") or {}).get("ID", "")),
        pod_of(attributes),
        attributes.get(LABEL_CONTAINER, ""),
        int(raw.get("timeNano") or 0) / 1e9,
        exit_code=exit_code,
        name=str(attributes.get("name") or ""),
    )


class DockerRuntime:
    """The Runtime port for one node on a Docker engine (docker.from_env() by default).

    `pod_network`: the name of an existing Docker network to attach pods to instead of
    publishing their ports on the host ("" publishes, the default). `reach_own_ip`:
    whether the agent can route to container IPs (default: when their network's gateway
    is an address of this machine, see is_local_address)."""

    def __init__(
        self,
        node: str,
        client_factory: Callable[[], Any] | None = None,
        pod_network: str = "",
        reach_own_ip: bool | None = None,
        disks: ClaimDisks | None = None,
        memory: MemoryVolumes | None = None,
        pod_sandbox: SandboxMode = "none",
        sandbox_image: str = SANDBOX_IMAGE,
        standby: bool = False,
    ) -> None:
        self._node = node
        # Standby holders (agent/runtime/sandbox.py, the agent's --standby-sandbox): pod ->
        # (its container with a network of its own, what it was made with, when), waiting for the
        # engine to be quiet; app starts and creates under way and when the last one ended
        # (monotonic); whether a round of standbys is being made.
        self._standby = standby
        self._standby_wanted: dict[str, tuple[str, ContainerConfig, float]] = {}
        self._app_busy = 0
        self._quiet_since = time.monotonic()
        self._making_standbys = False
        # Container id -> the standby the last listing gave it (for the log).
        self._standby_known: dict[str, str] = {}
        # Containers a standby was tried for (made or failed) while listed: one from its
        # label (sandbox.adoptable_standbys) is asked for once, not at every listing.
        self._standby_tried: set[str] = set()
        # Containers whose stop or removal was asked (_forget_standby): a listing during the
        # stop's grace period still shows them running, and one is not adopted then
        # (sandbox.adoptable_standbys). Pruned as _standby_tried; a restart in place clears it.
        self._standby_leaving: set[str] = set()
        # Pods in sandboxes (agent/runtime/sandbox.py): holder id -> its facts as last seen;
        # pods with a start under way (the sweep leaves them alone) and one lock per pod, so
        # two starts of one pod never make two holders.
        self._sandbox = pod_sandbox
        self._sandbox_image = sandbox_image
        # Whether the agent's log said the sandbox image is missing (once per agent).
        self._said_no_sandbox_image = False
        self._holders: dict[str, ContainerInfo] = {}
        # Holders this runtime made (or found by name) -> their facts and when (monotonic):
        # known before a listing shows them (sandbox.known_holders). Under _sandbox_lock,
        # as every change of _holders.
        self._made_holders: dict[str, tuple[ContainerInfo, float]] = {}
        # Standby holders whose start returned, not yet inspected (id -> what their config
        # says of them): joinable from the start's return, as a crash meanwhile would be
        # started again in place (_standby_started). Under _sandbox_lock.
        self._standbys_started: dict[str, ContainerInfo] = {}
        # Pod -> set once the standby holder being made for it now started (or failed): what
        # standby_soon waits for. Under _sandbox_lock; `standby_wait` seconds at most.
        self._standbys_making: dict[str, threading.Event] = {}
        self.standby_wait = STANDBY_WAIT
        self._busy: collections.Counter[str] = collections.Counter()
        # When each pod's last start ended (monotonic): a listing taken before that may
        # not show the container it made, so its sweep leaves the pod alone too.
        self._start_ended: dict[str, float] = {}
        self._pod_locks: dict[str, threading.Lock] = {}
        self._sandbox_lock = threading.Lock()
        # Where claim volumes of a fixed size live (None: claims are plain volumes).
        self._disks = disks
        # Where memory emptyDirs live for their pod's life (None: the engine's own tmpfs
        # volumes, emptied whenever no container of the pod runs).
        self._memory = memory
        # Whether this agent sees the engine's filesystem (None: not asked yet).
        self._sees_engine: bool | None = None
        self._pod_network = pod_network
        # The node's pod bridge (agent/hostgw/bridge.py): pods join it and still publish
        # their ports; "" is Docker's default bridge. Pods wait for `_bridge_settled`.
        self._bridge = ""
        self._bridge_wanted = ""
        self._bridge_settled: asyncio.Future[str] | None = None
        # An old bridge of the node still has pods: plan again at the next pod start.
        self._bridge_retry = False
        self._routable: Callable[[str], bool] = (
            is_local_address if reach_own_ip is None else (lambda _gateway: reach_own_ip)
        )
        self._factory = client_factory or functools.partial(
            docker.from_env, max_pool_size=_POOL_SIZE
        )
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(_POOL_SIZE, thread_name_prefix=f"docker-{node}")
        self._cache: dict[str, tuple[str, ContainerInfo]] = {}
        # Names of the containers this runtime is creating and starting, until the start's
        # inspect is cached: a list describes them from its own entry (summaries.py says why).
        self._starting_names: collections.Counter[str] = collections.Counter()
        self._starting_lock = threading.Lock()
        # Containers started again in place whose rename is under way -> the name they take
        # (this runtime describes them so meanwhile: see _restart_in_place_sync).
        self._renaming: dict[str, str] = {}
        self._image_asks: SingleFlight[tuple[str, str], str] = SingleFlight()
        # One removal of a container in flight at a time, whichever path asks for it
        # (agent/runtime/single_flight.py says why).
        self._removals: ThreadSingleFlight[str, None] = ThreadSingleFlight()
        # A container's renames and removals never meet at the engine (keyed_lock.py says
        # why): each holds the container's lock while it is sent.
        self._renames_and_removals: KeyedLock[str] = KeyedLock()
        # Starts holding an engine thread while they wait (_WAITING_STARTS_MAX); counted
        # in the event loop only.
        self._waiting_starts = 0
        # Pulls that ended well, per reference: a create made beside a pull (ImageGate)
        # checks its image again only when one ended after the create began.
        self._pulls = PullCounts()
        # Image id -> its RepoDigests: a container's image is inspected once, not at every
        # listing (forgotten after a pull, which may add a digest to an image).
        self._digests: dict[str, tuple[str, ...]] = {}
        self._after_start: Callable[[ContainerInfo], None] | None = None

    def call_after_start(self, hook: Callable[[ContainerInfo], None]) -> None:
        """`hook(info)` runs for every container this runtime starts (created or started
        again in place), in its worker thread, before the start is reported (the node
        proxy routes the new pod's namespace there). Its failure is logged and never fails
        the start."""
        self._after_start = hook

    def use_pod_subnet(self, cidr: str) -> asyncio.Future[str] | None:
        """Run this node's pods on its bridge of `cidr` (made if need be, in a worker thread):
        containers created from now on wait for it. The future gives the network's name,
        or raises RuntimeFailure saying why pods stay on Docker's default bridge; None when
        nothing changes (the same subnet asked again) or pods are on a pod network."""
        if self._pod_network or not cidr or cidr == self._bridge_wanted:
            return None
        self._bridge_wanted = cidr
        self._bridge_settled = asyncio.ensure_future(self._call(self._ensure_bridge_sync, cidr))
        return self._bridge_settled

    def _ensure_bridge_sync(self, cidr: str) -> str:
        api = self._api()
        networks = self._node_networks_sync(api)
        plan = bridge_plan(self._node, networks, cidr)
        self._bridge_retry = plan.retry
        for name in plan.remove:
            # A container may have joined it meanwhile: then it stays, and is planned again.
            with contextlib.suppress(docker.errors.APIError):
                api.remove_network(name)
        self._bridge = ""
        if plan.action == "wait":
            raise RuntimeFailure(plan.why)
        if plan.action == "create":
            try:
                self._create_bridge_sync(api, plan.name, cidr)
            except docker.errors.APIError as exc:
                # Tried again at the next pod start: what refused it (a network of an
                # overlapping subnet, a busy engine) may be gone by then. Nothing else asks
                # again while the subnet stays the same, and the node's pods stayed on the
                # default bridge until the agent restarted.
                self._bridge_retry = True
                raise RuntimeFailure(
                    f"cannot make network {plan.name} of this node's pod subnet {cidr}: "
                    f"{_explain(exc)}; pods run on Docker's default bridge (reached at the "
                    "node's address only) until a pod start finds it can be made"
                ) from None
        self._bridge = plan.name
        return plan.name

    def _create_bridge_sync(self, api: Any, name: str, cidr: str) -> None:
        """Make the bridge with BRIDGE_OPTIONS; an engine that refuses them gets it without
        (an engine that predates gateway modes stores and ignores them)."""
        arguments: dict[str, Any] = dict(
            driver="bridge",
            ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=cidr)]),
            labels={LABEL_NODE: self._node, LABEL_POD_CIDR: cidr},
            check_duplicate=True,
        )
        try:
            api.create_network(name, options=dict(BRIDGE_OPTIONS), **arguments)
        except docker.errors.APIError as exc:
            if exc.status_code != 400 or "gateway_mode" not in _explain(exc):
                raise
            log.warning("the engine refuses %s (%s): network %s made without it",
                        GATEWAY_MODE, _explain(exc), name)  # fmt: skip
            api.create_network(name, **arguments)

    def _node_networks_sync(self, api: Any) -> list[BridgeNet]:
        """This node's networks (its label, or the bridge's usual name), as bridge_plan
        reads them."""
        found = {str(n.get("Id")) for n in api.networks(filters=self._label_filter())}
        with contextlib.suppress(docker.errors.NotFound):
            found.add(str(api.inspect_network(bridge_name(self._node))["Id"]))
        networks = []
        for network_id in sorted(found):
            try:
                attrs = api.inspect_network(network_id)
            except docker.errors.NotFound:
                continue
            configs = (attrs.get("IPAM") or {}).get("Config") or []
            networks.append(
                BridgeNet(
                    name=str(attrs.get("Name", "")),
                    subnet=str(configs[0].get("Subnet") or "") if configs else "",
                    attached=len(attrs.get("Containers") or {}),
                    options=dict(attrs.get("Options") or {}),
                )
            )
        return networks

    async def _await_bridge(self) -> None:
        """Wait until the node's bridge is decided (made, or refused: the default bridge);
        plan it again first while an old bridge of the node still had pods."""
        settled = self._bridge_settled
        if self._bridge_retry and settled is not None and settled.done():
            self._bridge_retry = False
            settled = asyncio.ensure_future(self._call(self._replan_bridge_sync))
            self._bridge_settled = settled
        if settled is not None and not settled.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(settled)

    def _replan_bridge_sync(self) -> str:
        try:
            before = self._bridge
            name = self._ensure_bridge_sync(self._bridge_wanted)
        except RuntimeFailure as exc:
            log.warning("%s", exc)
            raise
        if name != before:
            log.info("pods on network %s (pod subnet %s)", name, self._bridge_wanted)
        return name

    def pod_network_ranges(self) -> list[tuple[str, str]]:
        """(subnet, gateway) of each IPAM range of the pod network ([] without one)."""
        if not self._pod_network:
            return []
        attrs = self._api().inspect_network(self._pod_network)
        return [
            (str(c.get("Subnet") or ""), str(c.get("Gateway") or ""))
            for c in ((attrs.get("IPAM") or {}).get("Config") or [])
            if c.get("Subnet")
        ]

    @property
    def node(self) -> str:
        return self._node

    def _api(self) -> Any:
        # Connecting negotiates the API version, so it is done lazily, in a thread,
        # and retried on the next call when the engine is not up yet.
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = self._factory()
                except docker.errors.DockerException as exc:
                    raise RuntimeUnavailable(f"cannot reach Docker: {_explain(exc)}") from exc
            return self._client.api

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _info(self, attrs: dict[str, Any]) -> ContainerInfo:
        return self._described(
            info_from_inspect(attrs, self._pod_network, self._routable, self._repo_digests)
        )

    def _described(self, info: ContainerInfo) -> ContainerInfo:
        """`info` with its holder's ports and addresses, and the name a rename under way
        gives it."""
        if info.sandbox_id:
            info = joined_info(info, self._holder_facts(info.sandbox_id))
        pending = self._renaming.get(info.id)
        return info if pending is None else dataclasses.replace(info, name=pending)

    def _holder_facts(self, holder_id: str) -> ContainerInfo | None:
        """A holder's facts: as last listed, else inspected (None: gone)."""
        known = self._holders.get(holder_id)
        if known is not None:
            return known
        try:
            attrs = self._api().inspect_container(holder_id)
        except docker.errors.NotFound:
            return None
        known = info_from_inspect(attrs, self._pod_network, self._routable)
        with self._sandbox_lock:
            self._holders[holder_id] = known
        return known

    def _repo_digests(self, image_id: str) -> tuple[str, ...]:
        known = self._digests.get(image_id)
        if known is None:
            try:
                attrs = self._api().inspect_image(image_id)
            except docker.errors.NotFound:
                return ()  # removed under a running container: named by its id, not kept
            known = tuple(str(d) for d in attrs.get("RepoDigests") or ())
            self._digests[image_id] = known
        return known

    def _being_started(self, summary: dict[str, Any]) -> bool:
        with self._starting_lock:
            return starting_unlisted(summary, self._starting_names)

    @contextlib.contextmanager
    def _start_under_way(self, name: str) -> Iterator[None]:
        """The container `name` is being created and started here (see _starting_names)."""
        with self._starting_lock:
            self._starting_names[name] += 1
        try:
            yield
        finally:
            with self._starting_lock:
                self._starting_names[name] -= 1
                if self._starting_names[name] <= 0:
                    del self._starting_names[name]

    def _label_filter(self) -> dict[str, Any]:
        return {"label": [f"{LABEL_NODE}={self._node}"]}

    def _list_sync(self) -> list[ContainerInfo]:
        api = self._api()
        listed_at = time.monotonic()
        summaries = api.containers(all=True, filters=self._label_filter())
        result: list[ContainerInfo] = []
        seen: set[str] = set()
        for summary in summaries:
            cid, state = summary["Id"], summary.get("State", "")
            seen.add(cid)
            cached = self._cache.get(cid)
            if (cached is None or cached[0] != state) and self._being_started(summary):
                # Not inspected: the engine would answer only once its start is done.
                result.append(self._described(info_from_summary(summary)))
                continue
            if cached is None or cached[0] != state:
                try:
                    info = self._info(api.inspect_container(cid))
                except docker.errors.NotFound:
                    continue
                self._cache[cid] = (state, info)
                cached = self._cache[cid]
            result.append(cached[1])
        for gone in set(self._cache) - seen:
            # pop: a restart in place may have dropped it meanwhile (another thread).
            self._cache.pop(gone, None)
        if self._sandbox == "none" and not self._holders and not any(i.sandbox_id for i in result):
            return result
        return self._in_sandboxes(api, result, listed_at)

    def _in_sandboxes(
        self, api: Any, listed: list[ContainerInfo], listed_at: float
    ) -> list[ContainerInfo]:
        """The listing without holders, app containers with their holder's ports and
        addresses, after removing what agent/runtime/sandbox.py's sweep says."""
        listed_holders = {i.id: i for i in listed if is_holder(i)}
        with self._sandbox_lock:
            self._holders, self._made_holders = known_holders(
                listed_holders, self._made_holders, listed_at
            )
            holders = dict(self._holders)
        plan = sweep(
            [member_of(i) for i in listed], self._busy_pods(listed_at), keep_standbys=self._standby
        )
        removed = self._remove_swept(api, plan.members, plan.holders)
        standbys = (
            pod_standbys([h for h in holders.values() if h.id not in removed])
            if self._standby
            else {}
        )
        result = [
            with_standby(joined_info(i, holders.get(i.sandbox_id)), standbys)
            for i in listed
            if not is_holder(i) and i.id not in removed
        ]
        self._say_standbys(result)
        self._standbys_after(result, listed_at)
        return result

    def _say_standbys(self, listed: list[ContainerInfo]) -> None:
        """Logs each container the first time a listing gives it its pod's standby: from
        the listing after this line on, its crash restart replaces it into the standby."""
        known = {i.id: i.standby_id for i in listed if i.standby_id}
        for cid, standby in known.items():
            if self._standby_known.get(cid) != standby:
                log.info(
                    "pod sandbox: container %s listed with its standby %s", cid[:12], standby[:12]
                )
        self._standby_known = known

    def _standbys_after(self, listed: list[ContainerInfo], listed_at: float) -> None:
        """After a listing taken at `listed_at`: forget standbys no longer wanted
        (sandbox.standby_still_wanted) and start a round making the others once the engine
        is quiet (sandbox.standby_due), on one engine thread, one at a time."""
        if not self._standby:
            return
        running = {i.id for i in listed if i.alive and not i.sandbox_id}
        with self._sandbox_lock:
            self._standby_wanted = {
                pod: (cid, config, at)
                for pod, (cid, config, at) in self._standby_wanted.items()
                if standby_still_wanted(
                    at, listed_at, cid in running, bool(self._usable_standby(config))
                )
            }
            self._standby_tried &= {i.id for i in listed}
            self._standby_leaving &= {i.id for i in listed}
            self._adopt_standbys(listed, listed_at)
            due = standby_due(time.monotonic(), self._app_busy, self._quiet_since)
            if not self._standby_wanted or self._making_standbys or not due:
                return
            self._making_standbys = True
        try:
            self._pool.submit(self._make_standbys_sync)
        except RuntimeError:  # the runtime is closing
            with self._sandbox_lock:
                self._making_standbys = False

    def _adopt_standbys(self, listed: list[ContainerInfo], listed_at: float) -> None:
        """Asks for the standbys of running containers this agent did not ask for at their
        create (made by an agent before this one, or started again in place before their
        standby was made), from the facts they carry (sandbox.standby_from_facts). Under
        `_sandbox_lock`."""
        skip = self._standby_tried | self._standby_leaving
        for info in adoptable_standbys(listed, self._standby_wanted, skip):
            config = standby_from_facts(info)
            if config is None or not wants_standby(self._standby, self._sandbox, config):
                continue
            if not self._usable_standby(config):
                self._standby_wanted[info.pod] = (info.id, config, listed_at)

    def _make_standbys_sync(self) -> None:
        try:
            while True:
                with self._sandbox_lock:
                    due = standby_due(time.monotonic(), self._app_busy, self._quiet_since)
                    if not due or not self._standby_wanted:
                        return
                    pod, (cid, config, _) = next(iter(self._standby_wanted.items()))
                    self._standby_tried.add(cid)
                    making = self._standbys_making[pod] = threading.Event()
                try:
                    with self._starting(pod):
                        self._ensure_holder_sync(config, standby=True)
                except _NoSandboxImage:
                    log.info("pod sandbox: no standby for pod %s: no %s", pod, self._sandbox_image)
                except Exception as exc:
                    log.warning("pod sandbox: no standby for pod %s: %s", pod, _explain(exc))
                finally:
                    with self._sandbox_lock:
                        if self._standbys_making.get(pod) is making:
                            del self._standbys_making[pod]
                    making.set()
                with self._sandbox_lock:
                    if self._standby_wanted.get(pod, ("", None))[0] == cid:
                        del self._standby_wanted[pod]
        finally:
            with self._sandbox_lock:
                self._making_standbys = False

    def _busy_pods(self, listed_at: float) -> set[str]:
        """Pods starting now, or whose start ended after a listing taken at `listed_at`."""
        with self._sandbox_lock:
            ended = {pod for pod, at in self._start_ended.items() if at >= listed_at}
            return ended | {pod for pod, n in self._busy.items() if n > 0}

    def _remove_swept(self, api: Any, members: Sequence[str], holders: Sequence[str]) -> set[str]:
        for cid in (*members, *holders):
            why = "holder" if cid in holders else "container (its sandbox is gone)"
            with contextlib.suppress(docker.errors.DockerException, OSError):
                self._remove_sync(cid, f"pod sandbox: removing {why} {cid[:12]}")
            with self._sandbox_lock:
                self._holders.pop(cid, None)
                self._made_holders.pop(cid, None)
            self._cache.pop(cid, None)
        return {*members, *holders}

    def _listed_members(self, api: Any) -> list[Member]:
        """This node's containers as the sweep sees them, from one list call (no inspects)."""
        members = []
        for c in api.containers(all=True, filters=self._label_filter()):
            labels = c.get("Labels") or {}
            mode = str((c.get("HostConfig") or {}).get("NetworkMode") or "")
            alive = str(c.get("State", "")) in ("running", "restarting", "paused")
            members.append(
                Member(
                    str(c["Id"]),
                    pod_of(labels),
                    alive,
                    LABEL_SANDBOX in labels,
                    joined_holder(mode),
                    LABEL_STANDBY in labels,
                )
            )
        return members

    def _sweep_sync(self, died: str = "") -> None:
        """The sweep over one listing: after a holder died (`died`), or after an app
        container of a pod in a sandbox was removed."""
        api = self._api()
        listed_at = time.monotonic()
        members = self._listed_members(api)
        plan = sweep(members, self._busy_pods(listed_at), {died} - {""}, self._standby)
        self._remove_swept(api, plan.members, plan.holders)

    @contextlib.contextmanager
    def _starting(self, pod: str) -> Iterator[None]:
        """A start of `pod` is under way: the sweep leaves the pod alone, and no other start
        of it makes a holder meanwhile."""
        with self._sandbox_lock:
            self._busy[pod] += 1
            lock = self._pod_locks.setdefault(pod, threading.Lock())
        try:
            with lock:
                yield
        finally:
            with self._sandbox_lock:
                self._busy[pod] -= 1
                if self._busy[pod] <= 0:
                    del self._busy[pod]
                now = time.monotonic()
                self._start_ended[pod] = now
                # Forget starts no listing still under way can predate (one takes seconds).
                if len(self._start_ended) > 1024:
                    self._start_ended = {
                        p: at for p, at in self._start_ended.items() if at > now - 300
                    }

    async def list_containers(self) -> list[ContainerInfo]:
        try:
            return await self._call(self._list_sync)
        except docker.errors.DockerException as exc:
            raise RuntimeUnavailable(f"cannot list containers: {_explain(exc)}") from exc
        except OSError as exc:
            raise RuntimeUnavailable(f"cannot reach Docker: {exc}") from exc

    def _ensure_image_sync(self, image: str, pull_policy: str) -> str:
        """IfNotPresent and Never (Always: _pull_always): a present image is used."""
        if self._present_sync(image):
            return ""
        if pull_policy == "Never":
            raise ImagePullError(f"image {image} is not present and imagePullPolicy is Never")
        try:
            self._pull_sync(image)
        except docker.errors.DockerException as exc:
            raise ImagePullError(f"cannot pull image {image}: {_explain(exc)}") from exc
        return ""

    async def ensure_image(self, image: str, pull_policy: str = "IfNotPresent") -> str:
        # Pods asking for the same image at the same time share one inspect/pull
        # (agent/runtime/single_flight.py says why).
        return await self._image_asks.run(
            (image, pull_policy), lambda: self._ensure_image(image, pull_policy)
        )

    async def _ensure_image(self, image: str, pull_policy: str) -> str:
        try:
            if pull_policy == "Always":
                return await self._pull_always(image)
            return await self._call(self._ensure_image_sync, image, pull_policy)
        except RuntimeFailure:
            raise
        except (docker.errors.DockerException, OSError) as exc:
            raise ImagePullError(f"cannot pull image {image}: {_explain(exc)}") from exc

    async def _pull_always(self, image: str) -> str:
        """imagePullPolicy Always: the pull is tried at once, beside the inspect that says
        whether the node has the image to fall back on when it fails, not after it. The
        inspect used to come first, and a `:latest` pod (Always, as in Kubernetes) waited
        for both on its way to the create: ~8 ms of inspect under load (issue 15, apply ->
        3 running). Either answer alone decides nothing: a pull that worked is used
        whatever the inspect said; one that failed falls back on a present image."""
        present, pulled = await asyncio.gather(
            self._call(self._present_sync, image),
            self._call(self._pull_sync, image),
            return_exceptions=True,
        )
        for outcome in (pulled, present):
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, docker.errors.DockerException | OSError
            ):
                raise outcome  # RuntimeFailure, or a bug: as the one call before
        if not isinstance(pulled, BaseException):
            return ""
        if isinstance(present, BaseException):
            raise present
        if present:
            # No registry answers (machines that build images locally): the image on the
            # node is used, and the agent says so.
            return fallback_note(image, _explain(pulled))
        raise ImagePullError(f"cannot pull image {image}: {_explain(pulled)}") from pulled

    def _present_sync(self, image: str) -> bool:
        try:
            self._api().inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def _pull_sync(self, image: str) -> None:
        api = self._api()
        repository, tag = parse_repository_tag(image)
        api.pull(repository, tag=tag or "latest")
        self._pulls.pulled(image)
        self._digests.clear()
        api.inspect_image(image)

    def _image_user_sync(self, image: str) -> str:
        return str((self._api().inspect_image(image).get("Config") or {}).get("User") or "")

    async def image_user(self, image: str) -> str:
        try:
            return await self._call(self._image_user_sync, image)
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeFailure(f"cannot inspect image {image}: {_explain(exc)}") from exc

    def _remove_stale(self, api: Any, name: str) -> None:
        """Frees `name` held by a container this node left behind (a crash between create and
        record); a container of another node keeps it and the create fails."""
        try:
            stale = api.inspect_container(name)
        except docker.errors.NotFound:
            return
        if (stale.get("Config") or {}).get("Labels", {}).get(LABEL_NODE) != self._node:
            raise ContainerCreateError(
                f"container name {name} is taken by a container of another node"
            )
        self._remove_sync(stale["Id"])

    @contextlib.contextmanager
    def _app_work(self) -> Iterator[None]:
        """An app container's create or start is under way: no standby is made meanwhile,
        nor within STANDBY_QUIET seconds of the last one (sandbox.standby_due)."""
        with self._sandbox_lock:
            self._app_busy += 1
        try:
            yield
        finally:
            with self._sandbox_lock:
                self._app_busy -= 1
                self._quiet_since = time.monotonic()

    def _create_sync(
        self,
        config: ContainerConfig,
        gate: ImageGate | None = None,
        marks: dict[str, float] | None = None,
    ) -> ContainerInfo:
        with self._app_work():
            return self._create_app_sync(config, gate, marks)

    def _create_app_sync(
        self,
        config: ContainerConfig,
        gate: ImageGate | None,
        marks: dict[str, float] | None = None,
    ) -> ContainerInfo:
        pod = pod_of(config.labels)
        if not wants_sandbox(self._sandbox, config):
            standby = self._usable_standby(config)
            if standby:
                # Its pod's standby holder runs (a crash restart's replacement): joined to
                # it, the start makes no network. The pod is in a sandbox from now on.
                with self._starting(pod):
                    info = self._create_container_sync(
                        joined_config(config), network_mode(standby), gate, marks=marks
                    )
                log.info("pod sandbox: pod %s joined its standby %s", pod, standby[:12])
                return info
            if not wants_standby(self._standby, self._sandbox, config):
                return self._create_container_sync(config, gate=gate)
            # It carries its standby's facts: an agent restarted later makes the standby
            # from them (sandbox.adoptable_standbys). Not in the config hash (made before).
            facts = {LABEL_STANDBY_FACTS: standby_facts(config)}
            made = dataclasses.replace(config, labels=config.labels | facts)
            info = self._create_container_sync(made, gate=gate)
            with self._sandbox_lock:
                self._standby_wanted[pod] = (info.id, config, time.monotonic())
            return info
        with self._starting(pod):
            # The holder is made beside the image step too (the kubelet also makes a pod's
            # sandbox before pulling its images): its image is the node's own pause image.
            try:
                holder = self._ensure_holder_sync(config)
            except _NoSandboxImage:
                return self._without_sandbox_sync(config, gate)
            except Exception:
                if gate is not None:
                    gate.wait()  # a failed image step is the news, as when it went first
                raise
            return self._create_container_sync(joined_config(config), network_mode(holder), gate)

    def _without_sandbox_sync(
        self, config: ContainerConfig, gate: ImageGate | None
    ) -> ContainerInfo:
        """`config`'s container on a network of its own, as with --no-pod-sandbox, since the
        node has no sandbox image: failing every pod for want of a 2 MB image helps no one.
        The agent's log says so once; each such pod says so in its events (`sandbox_note`)."""
        note = missing_image_note(self._sandbox_image, pod_of(config.labels))
        if not self._said_no_sandbox_image:
            self._said_no_sandbox_image = True
            log.warning("pod sandbox: %s (said once; each pod says so in its events)", note)
        info = self._create_container_sync(config, gate=gate)
        return dataclasses.replace(info, sandbox_note=note)

    def _usable_standby(self, config: ContainerConfig) -> str:
        if not self._standby:
            return ""
        # Called under _sandbox_lock too; _standbys_started is replaced, never changed.
        holders = [*self._holders.values(), *self._standbys_started.values()]
        return usable_standby(holders, config, self._node, self._sandbox_image)

    def _ensure_holder_sync(self, config: ContainerConfig, standby: bool = False) -> str:
        """The id of the running holder of `config`'s pod, made first if need be
        (agent/runtime/sandbox.py's holder_step); `standby`: made ahead, as a standby."""
        api = self._api()
        make = standby_config if standby else holder_config
        wanted = make(config, self._node, self._sandbox_image)
        # Where the node's pods go now (the holder is made there, see _create_container_sync).
        network = self._pod_network or self._bridge
        on = ""
        try:
            attrs = api.inspect_container(wanted.name)
        except docker.errors.NotFound:
            existing: ContainerInfo | None = None
        else:
            existing = self._info(attrs)
            on = str((attrs.get("HostConfig") or {}).get("NetworkMode") or "")
        if existing is not None and existing.labels.get(LABEL_NODE) != self._node:
            raise ContainerCreateError(
                f"container name {wanted.name} is taken by a container of another node"
            )
        step = holder_step(existing, wanted, on, network)
        if existing is not None and step == "use":
            self._know_holder(existing)
            return existing.id
        if existing is not None:
            # Died, or made for other ports or DNS or on another network: its containers
            # lost their network or must have the new one; the agent creates them again.
            joined = [m.id for m in self._listed_members(api) if m.joined == existing.id]
            self._remove_swept(api, joined, [existing.id])
        try:
            # No inspect of the image first: one engine call less per pod in a burst.
            info = self._create_container_sync(
                wanted, started=self._standby_started(wanted) if standby else None
            )
        except docker.errors.ImageNotFound as exc:
            raise _NoSandboxImage() from exc
        except BaseException:
            # Its inspect failed after the start, and the holder was removed: not joinable.
            with self._sandbox_lock:
                self._standbys_started = {
                    k: v for k, v in self._standbys_started.items() if v.name != wanted.name
                }
            raise
        # Known before it is logged: from this line on, a crash of the pod's container is
        # replaced into it (standby_of), whatever the last listing showed.
        self._know_holder(info)
        log.info(
            "pod sandbox: %s %s of pod %s",
            "standby holder" if standby else "holder",
            info.id[:12],
            pod_of(config.labels),
        )
        return info.id

    def _standby_started(self, wanted: ContainerConfig) -> Callable[[str], None]:
        """What a standby's start returning does: the holder is known as running from
        there, as its config describes it (its pod and labels, all that standby_of and
        _usable_standby read), before the inspect and the after-start hook that follow it,
        which took 0.1-0.2 s on a loaded engine: a crash meanwhile was started again in
        place (the recovery bench's --kill-at standby-made). Its addresses and ports are
        not known yet: a container joined to it asks for the holder's own facts
        (_holder_facts), so nothing reports the provisional ones."""

        def started(cid: str) -> None:
            info = ContainerInfo(cid, wanted.name, wanted.image, "running", dict(wanted.labels))
            with self._sandbox_lock:
                self._standbys_started = {**self._standbys_started, cid: info}
                making = self._standbys_making.get(info.pod)
            if making is not None:
                making.set()  # a crash restart waiting in standby_soon joins it now

        return started

    def _know_holder(self, info: ContainerInfo) -> None:
        """A holder running now, as this runtime started or found it: known at once, also
        to a listing begun before (sandbox.known_holders)."""
        with self._sandbox_lock:
            self._holders[info.id] = info
            self._made_holders[info.id] = (info, time.monotonic())
            if info.id in self._standbys_started:
                self._standbys_started = {
                    k: v for k, v in self._standbys_started.items() if k != info.id
                }

    def standby_of(self, container: ContainerInfo) -> str:
        """The running standby holder of `container`'s pod as this runtime knows it now, one
        it made included as soon as its start returned (the listing's `standby_id` is as
        old as the listing). "" for a container in a sandbox already, or without one."""
        if not self._standby or container.sandbox_id:
            return ""
        with self._sandbox_lock:
            holders = [*self._holders.values(), *self._standbys_started.values()]
        return pod_standbys(holders).get(container.pod, "")

    async def standby_soon(self, container: ContainerInfo) -> str:
        """standby_of, after waiting (`standby_wait` seconds at most, on a thread of the
        loop's default executor: this runtime's own may all be at the engine) for the start
        of the standby holder of `container`'s pod, when one is being made right now: its
        create sent, its start not returned, a crash then was started again in place."""
        known = self.standby_of(container)
        if known or not self._standby or container.sandbox_id:
            return known
        with self._sandbox_lock:
            making = self._standbys_making.get(container.pod)
        if making is None:
            return ""
        await asyncio.get_running_loop().run_in_executor(None, making.wait, self.standby_wait)
        return self.standby_of(container)

    def _create_container_sync(
        self,
        config: ContainerConfig,
        joined: str = "",
        gate: ImageGate | None = None,
        started: Callable[[str], None] | None = None,
        marks: dict[str, float] | None = None,
    ) -> ContainerInfo:
        """Creates and starts one container (`joined`: the network mode of one that joins a
        holder's namespace; "": the node's own network for pods). `gate`: the image step
        still under way (agent/runtime/image_gate.py): the create goes at once, the start
        waits for it. Lists meanwhile describe it without an inspect (_start_under_way).
        `started(id)` runs as soon as the start returned, before the inspect that follows.
        `marks` gets the wall times of the engine calls (SWAP_MARKS), for the restart log."""
        with self._start_under_way(config.name):
            return self._create_and_start_sync(config, joined, gate, started, marks)

    def _create_and_start_sync(
        self,
        config: ContainerConfig,
        joined: str,
        gate: ImageGate | None,
        started: Callable[[str], None] | None = None,
        marks: dict[str, float] | None = None,
    ) -> ContainerInfo:
        marks = {} if marks is None else marks
        api = self._api()
        # On a pod network the ports stay exposed (so inspect lists them) but unpublished.
        port_bindings = {
            f"{p.container_port}/{p.protocol.lower()}": (config.host_ip, p.host_port or None)
            for p in config.ports
            if not self._pod_network
        }
        mounts, binds = self._prepare_mounts(api, config.mounts)
        host_config = api.create_host_config(
            port_bindings=port_bindings,
            log_config={"Type": config.log_driver, "Config": {}} if config.log_driver else None,
            nano_cpus=config.nano_cpus or None,
            mem_limit=config.mem_limit or None,
            restart_policy={"Name": "no"},
            network_mode=joined or self._pod_network or self._bridge or None,
            mounts=mounts or None,
            binds=binds or None,
            dns=list(config.dns_servers) or None,
            dns_search=list(config.dns_search) or None,
            dns_opt=list(config.dns_options) or None,
            group_add=list(config.group_add) or None,
            read_only=config.read_only or None,
        )
        arguments: dict[str, Any] = dict(
            image=config.image,
            name=config.name,
            entrypoint=list(config.entrypoint) or None,
            command=list(config.cmd) or None,
            environment=[f"{k}={v}" for k, v in config.env],
            labels=config.labels,
            hostname=config.hostname or None,
            ports=[(p.container_port, p.protocol.lower()) for p in config.ports],
            host_config=host_config,
            stdin_open=config.stdin_open,
            tty=config.tty,
            user=config.user or None,
        )

        def create() -> Any:
            if config.stdin_once:
                # docker-py's create_container has no argument for StdinOnce: the body by hand.
                fields = {k: v for k, v in arguments.items() if k != "name"}
                body = api.create_container_config(**fields)
                body["StdinOnce"] = True
                return api.create_container_from_config(body, config.name)
            return api.create_container(**arguments)

        def create_freeing_name() -> str:
            # Create first and look for a stale holder of the name only on a conflict: one
            # engine call less per start than inspecting beforehand, in a burst where every
            # call queues behind the others.
            try:
                return str(create()["Id"])
            except docker.errors.APIError as exc:
                if exc.status_code != _CONFLICT:
                    raise
                self._remove_stale(api, config.name)
                return str(create()["Id"])

        pulls_before = self._pulls.count(config.image)
        marks["create_sent"] = time.time()
        try:
            cid = create_freeing_name()
        except docker.errors.ImageNotFound:
            if gate is None:
                raise
            gate.wait()  # the step pulls what is missing, or raises ImagePullError
            gate = None
            cid = create_freeing_name()
        except Exception:
            if gate is not None:
                gate.wait()  # a failed image step is the news, as when it went first
            raise
        try:
            if gate is not None:
                gate.wait()
                if self._pulls.count(config.image) != pulls_before:
                    cid = self._made_from_pulled(api, cid, config.image, create_freeing_name)
            marks["sent"] = time.time()
            api.start(cid)
            marks["returned"] = time.time()
            if started is not None:
                started(cid)
            info = self._info(api.inspect_container(cid))
            marks["inspected"] = time.time()
        except Exception:
            # A container that cannot start is removed, so the name is free for the retry.
            with contextlib.suppress(docker.errors.DockerException):
                self._remove_sync(cid)
            raise
        # The list that follows the pod's task uses this inspect instead of its own: in a
        # burst of starts (apply -> 30), one engine call less per container while the
        # others' creates and starts queue at the engine.
        self._cache[cid] = (info.state, info)
        return self._started(info)

    def _made_from_pulled(self, api: Any, cid: str, image: str, create: Callable[[], str]) -> str:
        """The container to start once a pull of `image` ended after `cid` was created:
        `cid` when the reference still names the image it was made from, else a new one
        made from the pulled image (`cid` removed)."""
        if api.inspect_container(cid).get("Image") == api.inspect_image(image).get("Id"):
            return cid
        self._remove_sync(cid)
        return create()

    def _started(self, info: ContainerInfo) -> ContainerInfo:
        """Every start, a new container's or one started again in place (a new network
        namespace either way), passes here: the after-start hook runs."""
        if self._after_start is not None:
            try:
                self._after_start(info)
            except Exception:
                log.exception("after starting %s", info.name)
        return info

    def _prepare_mounts(
        self, api: Any, wanted: tuple[Mount, ...]
    ) -> tuple[list[docker.types.Mount], list[str]]:
        """Docker mounts for `wanted`, creating named volumes on first use.

        A bind that may create its directory goes through `binds` (the engine makes a
        missing one, as hostPath DirectoryOrCreate asks); any other bind must exist."""
        mounts: list[docker.types.Mount] = []
        binds: list[str] = []
        for m in wanted:
            if m.type == "bind":
                source = self._host_path_source(m)
                if m.create:
                    binds.append(f"{source}:{m.target}:{'ro' if m.read_only else 'rw'}")
                else:
                    mounts.append(
                        docker.types.Mount(m.target, source, type="bind", read_only=m.read_only)
                    )
                continue
            self._ensure_volume(api, m)
            if m.sub_path:
                mounts.append(self._sub_path_mount(api, m))
                continue
            mounts.append(
                docker.types.Mount(m.target, m.source, type="volume", read_only=m.read_only)
            )
        return mounts, binds

    def _sees_engine_files(self) -> bool:
        """Whether the agent shares the engine's mount namespace, so a path the engine
        binds is the same file here (asked once: it does not change while we run)."""
        if self._sees_engine is None:
            self._sees_engine = not why_mounts_stay_here()
        return self._sees_engine

    def _host_path_source(self, m: Mount) -> str:
        """A bind's source: a hostPath checked against its type and its subPath made
        inside it, as the kubelet does, where the agent sees the node's files; the
        agent's own files (configMap, secret) as they are."""
        if m.host_path_type is None or not self._sees_engine_files():
            return posixpath.join(m.source, m.sub_path) if m.sub_path else m.source
        check = check_host_path(m.volume, m.source, m.host_path_type, path_kind(m.source))
        if check.problem:
            raise ContainerCreateError(check.problem)
        try:
            make_host_path(m.source, check.create)
        except OSError as exc:
            raise ContainerCreateError(
                f'MountVolume.SetUp failed for volume "{m.volume}" : {exc}'
            ) from exc
        if not m.sub_path:
            return m.source
        return posixpath.join(m.source, self._make_sub_path(m, m.source))

    def _sub_path_mount(self, api: Any, m: Mount) -> docker.types.Mount:
        """The mount of part of a Docker volume, in the form agent/sub_paths.py picks for
        this engine; a subPath that cannot be served fails the container, naming why."""
        directory = volume_directory(api.inspect_volume(m.source))
        seen = self._sees_engine_files() and bool(directory) and os.path.isdir(directory)
        plan = plan_sub_path(m.volume, m.sub_path, api.api_version, directory, seen)
        if isinstance(plan, SubPathRefused):
            raise ContainerCreateError(plan.reason)
        served = (
            serve_made(plan, self._make_sub_path(m, directory))
            if isinstance(plan, MakeSubDir)
            else plan
        )
        if isinstance(served, BindSubDir):
            return docker.types.Mount(m.target, served.source, type="bind", read_only=m.read_only)
        mount = docker.types.Mount(m.target, m.source, type="volume", read_only=m.read_only)
        mount["VolumeOptions"] = {"Subpath": served.sub_path}
        return mount

    def _make_sub_path(self, m: Mount, directory: str) -> str:
        try:
            return make_sub_path(directory, m.sub_path)
        except SubPathEscape as exc:
            raise ContainerCreateError(sub_path_escape(m.volume, m.sub_path)) from exc
        except OSError as exc:
            raise ContainerCreateError(
                f'volume "{m.volume}": subPath "{m.sub_path}": {exc}'
            ) from exc

    def _ensure_volume(self, api: Any, m: Mount) -> None:
        try:
            found = api.inspect_volume(m.source)
        except docker.errors.NotFound:
            options: dict[str, str] | None = None
            if m.tmpfs_bytes and self._memory is not None:
                # A bind of the agent's own tmpfs, kept while the pod lives.
                options = {"type": "none", "o": "bind", "device": self._memory_dir(m)}
            elif m.tmpfs_bytes:
                # mode=0777: an emptyDir is writable by any user, as the kubelet makes it.
                o = f"size={m.tmpfs_bytes},mode=0777"
                options = {"type": "tmpfs", "device": "tmpfs", "o": o}
            elif m.size_bytes and self._disks is not None:
                # A bind of the claim's own filesystem, of the claim's size.
                options = {"type": "none", "o": "bind", "device": self._claim_disk(m)}
            created = api.create_volume(
                m.source, driver="local", driver_opts=options, labels=m.labels
            )
            mountpoint = str((created or {}).get("Mountpoint") or "")
            if options is None and m.labels.get(LABEL_VOLUME_KIND) == "emptyDir":
                _open_to_all(mountpoint)
            if m.fs_group is not None and not m.tmpfs_bytes:
                _own(options["device"] if options else mountpoint, m.fs_group, m.fs_group_policy)
            return
        if (found.get("Labels") or {}).get(LABEL_NODE) != self._node:
            raise ContainerCreateError(
                f"volume {m.source} exists but is not one of node {self._node}'s volumes"
            )
        device = (found.get("Options") or {}).get("device")
        if (
            m.size_bytes
            and self._disks is not None
            and device == self._disks.mountpoint(m.source).as_posix()
        ):
            # Mounted again after a reboot, grown when the claim asks for more.
            self._claim_disk(m)
        if m.size_bytes and m.fs_group is not None:
            # A claim outlives its pods: the next one's fsGroup owns it from now on.
            _own(device or str(found.get("Mountpoint") or ""), m.fs_group, m.fs_group_policy)
        if (
            m.tmpfs_bytes
            and self._memory is not None
            and device == self._memory.path(m.source).as_posix()
        ):
            # A tmpfs gone with a reboot (or its directory with a stray collection).
            self._memory_dir(m)

    def _claim_disk(self, m: Mount) -> str:
        if self._disks is None:
            raise ContainerCreateError(f"volume {m.source} has no claim filesystem on this node")
        try:
            return self._disks.ensure(m.source, m.size_bytes)
        except (DiskError, OSError) as exc:
            raise ContainerCreateError(f"claim volume {m.source}: {exc}") from exc

    def _memory_dir(self, m: Mount) -> str:
        if self._memory is None:
            raise ContainerCreateError(f"volume {m.source} has no memory directory on this node")
        try:
            return self._memory.ensure(m.source, m.tmpfs_bytes, m.fs_group)
        except (MemoryVolumeError, OSError) as exc:
            raise ContainerCreateError(f"memory volume {m.source}: {exc}") from exc

    def _list_volumes_sync(self) -> list[VolumeInfo]:
        reply = self._api().volumes(filters=self._label_filter())
        return [
            VolumeInfo(v["Name"], dict(v.get("Labels") or {}))
            for v in (reply or {}).get("Volumes") or []
        ]

    async def list_volumes(self) -> list[VolumeInfo]:
        try:
            return await self._call(self._list_volumes_sync)
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeFailure(f"cannot list volumes: {_explain(exc)}") from exc

    def _volume_sizes_sync(self) -> dict[str, int]:
        api = self._api()
        # `system df` for volumes only (Engine API 1.42+; an older engine answers with
        # everything, volumes included). Size -1: the engine could not measure it.
        reply = api._result(api._get(api._url("/system/df"), params={"type": "volume"}), True)
        return {
            v["Name"]: int(v["UsageData"]["Size"])
            for v in (reply or {}).get("Volumes") or []
            if (v.get("Labels") or {}).get(LABEL_NODE) == self._node
            and int((v.get("UsageData") or {}).get("Size", -1)) >= 0
        }

    async def volume_sizes(self) -> dict[str, int]:
        try:
            return await self._call(self._volume_sizes_sync)
        except (docker.errors.DockerException, OSError, KeyError, TypeError, ValueError) as exc:
            raise RuntimeFailure(f"cannot measure volumes: {_explain(exc)}") from exc

    def _remove_volume_sync(self, name: str) -> bool:
        try:
            self._api().remove_volume(name)
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # in use by a container
                return False
            raise
        return True

    async def remove_volume(self, name: str) -> bool:
        try:
            return await self._call(self._remove_volume_sync, name)
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeFailure(f"cannot remove volume {name}: {_explain(exc)}") from exc

    async def create_and_start(
        self, config: ContainerConfig, image_ready: Awaitable[object] | None = None
    ) -> ContainerInfo:
        await self._await_bridge()
        if image_ready is not None and self._waiting_starts >= _WAITING_STARTS_MAX:
            await image_ready  # its failure is raised here, before any create
            image_ready = None
        gate = ImageGate(image_ready) if image_ready is not None else None
        self._waiting_starts += gate is not None
        try:
            return await self._call(self._create_sync, config, gate)
        except RuntimeFailure:
            raise
        except (docker.errors.DockerException, OSError) as exc:
            raise ContainerCreateError(
                f"cannot start container {config.name}: {_explain(exc)}"
            ) from exc
        finally:
            self._waiting_starts -= gate is not None

    def _stop_sync(self, container_id: str, grace_seconds: float) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._api().stop(container_id, timeout=max(0, round(grace_seconds)))

    async def stop(self, container_id: str, grace_seconds: float) -> None:
        self._forget_standby(container_id)
        info = await self.inspect(container_id)
        if info is None:
            return
        try:
            await self._call(self._stop_sync, container_id, grace_seconds)
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"cannot stop {container_id[:12]}: {_explain(exc)}") from exc

    def _remove_sync(self, container_id: str, say: str = "") -> None:
        """Every removal of a container goes through here: one in flight per container.
        `say` is logged when this call sends the removal (not when it waits for another):
        two sweeps deciding on one container together log it once."""

        def send() -> None:
            if say:
                log.info("%s", say)
            self._remove_now(container_id)

        self._removals.run(container_id, send)

    def _remove_now(self, container_id: str) -> None:
        try:
            with self._renames_and_removals.held(container_id):
                self._api().remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # Someone else is already removing it; the outcome is the same.
            if exc.status_code != 409:
                raise

    def _swap_sync(self, old_id: str, config: ContainerConfig) -> ContainerInfo:
        if not wants_sandbox(self._sandbox, config) and self._usable_standby(config):
            return self._swap_into_standby_sync(old_id, config)
        # Renaming frees the name in milliseconds; removing takes a few hundred on a busy
        # engine, and is no longer on the way to the new container running.
        began = time.monotonic()
        with contextlib.suppress(docker.errors.APIError), self._renames_and_removals.held(old_id):
            self._api().rename(old_id, f"{config.name}-replaced-{old_id[:12]}")
        renamed = time.monotonic()
        info = self._create_sync(config)
        log.info(
            "engine replace id=%s rename=%.3f create+start+inspect=%.3f",
            old_id[:12],
            renamed - began,
            time.monotonic() - renamed,
        )
        return info

    def _swap_into_standby_sync(self, old_id: str, config: ContainerConfig) -> ContainerInfo:
        """The replacement joined to its pod's standby, made under a name of its own
        (`<name>.joining-<old id>`, never a pod container's: those hold no '.') and given
        `config.name` once the old one is removed (`_take_name`). Not the rename of the old
        one first, as `_swap_sync` does: on a container that just died the engine answers
        it only after its network cleanup (it holds the dead container's lock meanwhile),
        the wait the standby is there to skip. This runtime lists it as `config.name`
        meanwhile, as a container started again in place is listed before its rename."""
        marks = {"began": time.time()}
        joining = dataclasses.replace(config, name=f"{config.name}.joining-{old_id[:12]}")
        info = self._create_sync(joining, marks=marks)
        self._renaming[info.id] = config.name
        info = dataclasses.replace(info, name=config.name)
        self._cache[info.id] = (info.state, info)
        marks["done"] = time.time()
        # The line agent/restart_timeline.py's ENGINE_SWAP names (the bench reads it).
        log.info(
            "%s id=%s old=%s %s",
            ENGINE_SWAP,
            info.id[:12],
            old_id[:12],
            " ".join(f"{k}={marks.get(k, 0.0):.6f}" for k in SWAP_MARKS),
        )
        return info

    def _take_name(self, container_id: str) -> None:
        """A replacement made under a name of its own takes its container's name, once the
        old container that held it is removed (`_swap_into_standby_sync`)."""
        name = self._renaming.get(container_id)
        if name is not None:
            self._mark_restarted(container_id, name)

    def _restart_in_place_sync(self, container_id: str, name: str) -> ContainerInfo:
        api = self._api()
        began = time.monotonic()
        # The restart's instant, taken before the start: the log before it is the previous
        # run's. The rename that records it follows the start on another thread: renaming a
        # running container takes the engine 0.04-0.4 s on a busy machine (a stopped one
        # 0.01-0.08), and neither is on the way to running nor to the agent's report of it;
        # until it is done this runtime gives the container its new name itself.
        new_name = restarted_name(name, time.time())
        with self._app_work():
            return self._start_again_sync(api, container_id, new_name, began)

    def _start_again_sync(
        self, api: Any, container_id: str, new_name: str, began: float
    ) -> ContainerInfo:
        self._renaming[container_id] = new_name
        # The listing's cached facts name the run before; the next list inspects again.
        self._cache.pop(container_id, None)
        with self._sandbox_lock:
            # Stopped (a failed liveness probe) and running again: it may be adopted again.
            self._standby_leaving.discard(container_id)
        sent = time.time()
        try:
            api.start(container_id)
        except BaseException:
            self._renaming.pop(container_id, None)
            raise
        started, returned = time.monotonic(), time.time()
        try:
            info = self._info(api.inspect_container(container_id))
            # Listed as it is now until the rename is done, so the agent's next list does not
            # wait for the rename's hold on the container (the engine locks it to inspect it).
            self._cache[container_id] = (info.state, info)
        finally:
            with contextlib.suppress(RuntimeError):  # the runtime is closing
                self._pool.submit(self._mark_restarted, container_id, new_name)
        # The line agent/restart_timeline.py's ENGINE_START names (the bench reads it).
        log.info(
            "engine restart-in-place id=%s start=%.3f inspect=%.3f sent=%.6f returned=%.6f",
            container_id[:12],
            started - began,
            time.monotonic() - started,
            sent,
            returned,
        )
        return self._started(info)

    def _mark_restarted(self, container_id: str, new_name: str) -> None:
        """Renames a container just started again (port.RESTARTED_MARK). It runs either way:
        should the rename fail, it counts one restart less once this agent's memory of it is
        gone (a restarted agent), and `logs --previous` shows both runs."""
        began = time.monotonic()
        try:
            with self._renames_and_removals.held(container_id):
                self._api().rename(container_id, new_name)
        except (docker.errors.DockerException, OSError) as exc:
            log.warning(
                "container %s runs again but could not be renamed %s: %s",
                container_id[:12],
                new_name,
                _explain(exc),
            )
        else:
            log.info("engine rename id=%s rename=%.3f", container_id[:12], time.monotonic() - began)
        finally:
            # What was listed meanwhile carries the name given above; from now on the
            # engine's own name is the one to show.
            self._renaming.pop(container_id, None)
            self._cache.pop(container_id, None)

    async def restart_in_place(self, container_id: str, name: str) -> ContainerInfo:
        try:
            return await self._call(self._restart_in_place_sync, container_id, name)
        except (docker.errors.DockerException, OSError) as exc:
            raise ContainerCreateError(
                f"cannot start container {name} again: {_explain(exc)}"
            ) from exc

    def _remove_quietly_sync(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.DockerException, OSError):
            self._remove_sync(container_id)

    async def replace(
        self,
        old_id: str,
        config: ContainerConfig,
        before_remove: BeforeRemove | None = None,
        ran: Ran | None = None,
    ) -> ContainerInfo:
        await self._await_bridge()
        made = ""
        try:
            info = await self._call(self._swap_sync, old_id, config)
            made = info.id
            if ran is not None:
                ran(info)
            return info
        except RuntimeFailure:
            raise
        except (docker.errors.DockerException, OSError) as exc:
            raise ContainerCreateError(
                f"cannot start container {config.name}: {_explain(exc)}"
            ) from exc
        finally:
            # Started only now: its engine calls (an inspect and a log read of the old one)
            # beside the create and start made them slower on a busy engine.
            work = before_remove() if before_remove is not None else None
            if work is not None:
                with contextlib.suppress(Exception):
                    await work
            await self._call(self._remove_quietly_sync, old_id)
            if made:
                with contextlib.suppress(RuntimeError):  # the runtime is closing
                    self._pool.submit(self._take_name, made)

    async def remove(self, container_id: str) -> None:
        self._forget_standby(container_id)
        info = await self.inspect(container_id)
        if info is None:
            return
        try:
            await self._call(self._remove_sync, container_id)
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"cannot remove {container_id[:12]}: {_explain(exc)}") from exc
        with self._sandbox_lock:
            holders = list(self._holders.values())
        standby = any(h.pod == info.pod and LABEL_STANDBY in h.labels for h in holders)
        if info.sandbox_id or standby:
            # The pod's last container takes its holder (or its standby) with it.
            with contextlib.suppress(docker.errors.DockerException, OSError):
                await self._call(self._sweep_sync)

    def _forget_standby(self, container_id: str) -> None:
        """A container being stopped or removed wants no standby any more, from the moment
        that is asked, not once it is done: a stop waits out the grace period and a removal
        may take a second, and a standby round meanwhile (the engine quiet of starts for
        STANDBY_QUIET) made a holder for a pod on its way out, which the next sweep removed
        again: two engine calls for nothing beside whatever the node did next (a deployment
        deleted right after it ran: issue 15's bench trials, which were not independent). A
        container stopped for a failed liveness probe and then restarted gets its standby
        after its restart, as any container whose standby was not made before a crash
        (sandbox.adoptable_standbys, or the want of its replacement's create). Nor is it
        adopted by a listing that still shows it running (the stop's grace period): the
        want was dropped here, and adopting it asked for the same standby again (seen in
        apply_to_running on a 2-core Xeon: 10 of a run's 11 standbys were made for pods
        already being stopped, each removed again by the next sweep). Forgotten by the
        container's id before the inspect that precedes the stop or removal: a busy engine
        answers it late, and a round begun meanwhile made the standby."""
        with self._sandbox_lock:
            self._standby_leaving.add(container_id)
            self._standby_wanted = {
                pod: want for pod, want in self._standby_wanted.items() if want[0] != container_id
            }

    def _inspect_sync(self, container_id: str) -> ContainerInfo | None:
        try:
            info = self._info(self._api().inspect_container(container_id))
        except docker.errors.NotFound:
            return None
        return info if info.labels.get(LABEL_NODE) == self._node else None

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            return await self._call(self._inspect_sync, container_id)
        except docker.errors.DockerException as exc:
            raise RuntimeUnavailable(f"cannot inspect {container_id[:12]}: {exc}") from exc

    def _exec_sync(self, container_id: str, command: tuple[str, ...]) -> ExecResult:
        api = self._api()
        created = api.exec_create(container_id, list(command), stdout=True, stderr=True)
        output = api.exec_start(created["Id"])
        code = api.exec_inspect(created["Id"]).get("ExitCode")
        text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
        # None: the engine lost track of it; count it as a failure, not a pass.
        return ExecResult(-1 if code is None else int(code), text[-_EXEC_OUTPUT_MAX:])

    async def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult:
        try:
            return await self._call(self._exec_sync, container_id, command)
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeFailure(f"cannot exec in {container_id[:12]}: {_explain(exc)}") from exc

    def _open_exec_sync(
        self, container_id: str, command: tuple[str, ...], stdin: bool, tty: bool
    ) -> tuple[str, Any]:
        if self._inspect_sync(container_id) is None:
            raise RuntimeFailure(f"container {container_id[:12]} is gone")
        api = self._api()
        created = api.exec_create(
            container_id, list(command), stdin=stdin, tty=tty, stdout=True, stderr=True
        )
        return created["Id"], api.exec_start(created["Id"], tty=tty, socket=True)

    async def open_exec(
        self, container_id: str, command: tuple[str, ...], stdin: bool, tty: bool
    ) -> ExecSession:
        try:
            exec_id, raw = await self._call(self._open_exec_sync, container_id, command, stdin, tty)
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeFailure(f"cannot exec in {container_id[:12]}: {_explain(exc)}") from exc
        return DockerExecSession(self._api(), exec_id, raw, tty, self._call)

    def _open_attach_sync(self, container_id: str, stdin: bool) -> tuple[bool, Any]:
        api = self._api()
        facts = api.inspect_container(container_id)
        labels = (facts.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_NODE) != self._node or not (facts.get("State") or {}).get("Running"):
            raise RuntimeFailure(f"container {container_id[:12]} is not running")
        tty = bool((facts.get("Config") or {}).get("Tty"))
        params = {"stdin": int(stdin), "stdout": 1, "stderr": 1, "stream": 1}
        return tty, api.attach_socket(container_id, params=params)

    async def open_attach(self, container_id: str, stdin: bool, tty: bool) -> ExecSession:
        try:
            own_tty, raw = await self._call(self._open_attach_sync, container_id, stdin)
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeFailure(f"cannot attach to {container_id[:12]}: {_explain(exc)}") from exc
        # The stream is framed by the container's own TTY setting, not the client's wish.
        return DockerAttachSession(self._api(), container_id, raw, own_tty, self._call)

    def _stats_sync(self, container_id: str) -> ContainerStats | None:
        try:
            raw = self._api().stats(container_id, stream=False, one_shot=True)
        except docker.errors.NotFound:
            return None
        return parse_stats(raw)

    async def stats(self, container_id: str) -> ContainerStats | None:
        try:
            return await self._call(self._stats_sync, container_id)
        except docker.errors.DockerException as exc:
            raise RuntimeUnavailable(f"cannot read stats of {container_id[:12]}: {exc}") from exc

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        filters = self._label_filter() | {"type": ["container"], "event": ["start", "die", "oom"]}
        try:
            stream = await self._call(lambda: self._api().events(decode=True, filters=filters))
        except docker.errors.DockerException as exc:
            raise RuntimeUnavailable(f"cannot watch Docker events: {_explain(exc)}") from exc
        closed = threading.Event()

        def converted() -> Iterator[RuntimeEvent]:
            for raw in stream:
                if LABEL_SANDBOX in ((raw.get("Actor") or {}).get("Attributes") or {}):
                    # A holder is no container of the agent's: its death takes its pod's
                    # containers with it (their deaths are the agent's events).
                    if (raw.get("Action") or raw.get("status")) == "die":
                        with contextlib.suppress(RuntimeError):  # the runtime is closing
                            self._pool.submit(self._sweep_quietly, str(raw.get("id") or ""))
                    continue
                event = event_from_docker(raw)
                if event is not None:
                    yield event

        def broke(exc: BaseException) -> Exception:
            return RuntimeUnavailable(f"Docker event stream failed: {_explain(exc)}")

        try:
            async for event in pumped(converted(), f"docker-events-{self._node}", closed, broke):
                yield event
        finally:
            closed.set()
            stream.close()

    async def logs(self, container_id: str, options: LogOptions) -> AsyncIterator[bytes]:
        """The engine's log stream, read on a daemon thread (a follow never returns by itself)."""
        kwargs: dict[str, Any] = {
            "stdout": True,
            "stderr": True,
            "stream": True,
            "follow": options.follow,
            "timestamps": options.timestamps,
            "tail": "all" if options.tail_lines < 0 else options.tail_lines,
        }
        try:
            info = await self.inspect(container_id)
            if info is None:
                raise RuntimeFailure(f"container {container_id[:12]} is gone")
            kwargs |= log_window(options, info.restarted_at, time.time())
            stream = await self._call(lambda: self._api().logs(container_id, **kwargs))
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeFailure(
                f"cannot read the log of {container_id[:12]}: {_explain(exc)}"
            ) from exc
        closed = threading.Event()

        def broke(exc: BaseException) -> Exception:
            return RuntimeFailure(f"the log of {container_id[:12]} broke: {_explain(exc)}")

        try:
            async for chunk in pumped(stream, f"docker-logs-{container_id[:12]}", closed, broke):
                yield chunk
        finally:
            closed.set()
            with contextlib.suppress(Exception):
                stream.close()

    def _sweep_quietly(self, died: str) -> None:
        try:
            self._sweep_sync(died)
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("pod sandbox: cannot sweep after a holder died: %s", _explain(exc))

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()


def _own(path: str, fs_group: int, policy: str) -> None:
    """The pod's fsGroup owns the volume at `path` (agent/volume_owner.py). An agent that
    cannot reach the engine's volume directory (one in a container without it) or may
    not change owners leaves it as it is."""
    if path and os.path.isdir(path):
        with contextlib.suppress(OSError):
            set_volume_ownership(path, fs_group, policy=policy)


def _open_to_all(mountpoint: str) -> None:
    """Make a new disk emptyDir writable by any user (mode 0777), as the kubelet does.

    The engine creates a volume's directory root-owned 0755, so an image that runs as
    another user could not write to its emptyDir. Where the image has files at the
    mount path the engine copies them, with that directory's owner and mode, over this
    on first mount (as before). An agent that cannot reach the engine's volume
    directory (one in a container without it) leaves the engine's mode."""
    if mountpoint and os.path.isdir(mountpoint):
        with contextlib.suppress(OSError):
            os.chmod(mountpoint, 0o777)
