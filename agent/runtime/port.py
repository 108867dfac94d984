"""The Runtime port: what the agent needs from a container engine, for THIS node only.

Two agents may share one engine (tests, hollow nodes), so a runtime is bound to a
node name and sees and touches only containers labelled `pinnace.node=<node>`.
Everything the agent must remember about a container rides on its labels (pod,
container, epoch, spec hash, restart count, grace period), so a restarted agent
rebuilds its picture from a single list call and adopts what it finds.
DockerRuntime is the real implementation; FakeRuntime keeps state in memory for
unit tests and hollow nodes. Both pass tests/integration/test_agent_runtime_contract.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from kernel.names import DEFAULT_NAMESPACE, flat_pod_ref, pod_ref, split_pod_ref

LABEL_NODE = "pinnace.node"
LABEL_POD = "pinnace.pod"
# Absent on containers of "default" (and on those made before namespaces existed).
LABEL_NAMESPACE = "pinnace.namespace"
LABEL_CONTAINER = "pinnace.container"
LABEL_EPOCH = "pinnace.epoch"
LABEL_SPEC_HASH = "pinnace.spec-hash"
LABEL_RESTART_COUNT = "pinnace.restart-count"
LABEL_GRACE = "pinnace.grace-seconds"
# A digest of everything the container was created with but its name and restart count
# (agent/containers.py): a dead container whose digest matches what the agent would create
# now may be started again as it is (agent/restart_path.py).
LABEL_CONFIG_HASH = "pinnace.config-hash"
LABEL_POD_LABEL_PREFIX = "pinnace.label."
# On Docker volumes: what the volume is for. emptyDir volumes die with their pod (the
# agent's volume collector removes them); claim volumes hold data until told otherwise.
LABEL_VOLUME_KIND = "pinnace.volume-kind"
# On a pod's sandbox (agent/runtime/sandbox.py): the holder container that owns the pod's
# network namespace, which its app containers join. It carries the node and pod labels but
# no container label, so nothing that lists a pod's containers takes it for one of them.
LABEL_SANDBOX = "pinnace.sandbox"
# On a holder made ahead for a one-container pod whose container has a network of its own
# (agent/runtime/sandbox.py; on unless the agent's --no-standby-sandbox): its crash restart
# replaces the container by one joined to this holder, which needs no new network setup.
LABEL_STANDBY = "pinnace.sandbox-standby"
# On an app container whose pod wants a standby: the network facts its standby is made of
# (agent/runtime/sandbox.py standby_facts), so that an agent restarted while it runs, which
# never created it, can make its standby too.
LABEL_STANDBY_FACTS = "pinnace.standby-facts"
LABEL_CLAIM = "pinnace.claim"

# A container started again in place (agent/restart_path.py) is renamed to
# `<name>.restarted-<microseconds>` once started, the instant taken just before the start:
# labels cannot change, so the name is what says, to any agent that lists it later, that its
# restart count is one above its label and when its current run began (its log before that
# instant is the previous run's). The rename comes after the start so that it is not on the
# way to running; an agent that dies between the two forgets that one restart.
RESTARTED_MARK = ".restarted-"
_RESTARTED_NAME = re.compile(re.escape(RESTARTED_MARK) + r"([0-9]{1,20})$")


def restarted_name(name: str, at: float) -> str:
    """The name a container takes when it is started again in place at wall time `at`."""
    return f"{name}{RESTARTED_MARK}{round(at * 1_000_000)}"


def restarted_at(name: str) -> float:
    """When a container of that name was started again in place (0.0: never)."""
    found = _RESTARTED_NAME.search(name)
    return int(found.group(1)) / 1_000_000 if found else 0.0


# Docker's container states, grouped the way the agent cares about them.
ALIVE_STATES = frozenset({"running", "restarting", "paused"})
DEAD_STATES = frozenset({"exited", "dead"})


class RuntimeFailure(Exception):
    """The engine refused or failed an operation; the message says why, in one sentence."""


class ImagePullError(RuntimeFailure):
    """The image is not present and could not be pulled."""


def fallback_note(image: str, why: str) -> str:
    """The agent's note when policy Always could not pull but the image is present."""
    return f"could not pull {image} ({why[:300]}); using the image already on the node"


class ContainerCreateError(RuntimeFailure):
    """The container could not be created or started (port taken, bad command, ...)."""


class ContainerConfigError(RuntimeFailure):
    """The container may not be created as configured (runAsNonRoot and a root image):
    Kubernetes' CreateContainerConfigError, the message in the kubelet's words."""


class RuntimeUnavailable(RuntimeFailure):
    """The engine cannot be reached at all."""


def container_name(node: str, pod: str, container: str) -> str:
    """Docker names are engine-global, so the node is part of the name; `pod` is a
    pod_ref, flattened for Docker ("<ns>_<name>" outside "default")."""
    return f"pinnace-{node}-{flat_pod_ref(pod)}-{container}"


def sandbox_name(node: str, pod: str) -> str:
    """The name of a pod's sandbox holder: a container name holds no '.', so no app
    container of any pod can take it."""
    return f"pinnace-{node}-{flat_pod_ref(pod)}.sandbox"


def pod_labels(pod: str) -> dict[str, str]:
    """The labels naming a pod (`pod` a pod_ref): its name, and its namespace when not
    "default" (containers from before namespaces carry no namespace label)."""
    namespace, name = split_pod_ref(pod)
    labels = {LABEL_POD: name}
    if namespace != DEFAULT_NAMESPACE:
        labels[LABEL_NAMESPACE] = namespace
    return labels


def pod_of(labels: Mapping[str, str]) -> str:
    """The pod_ref a container or volume belongs to, from `pod_labels`."""
    name = labels.get(LABEL_POD, "")
    return pod_ref(labels.get(LABEL_NAMESPACE, DEFAULT_NAMESPACE), name) if name else ""


@dataclass(frozen=True, slots=True)
class PortBinding:
    container_port: int
    protocol: str = "TCP"
    # 0: the engine picks an ephemeral port.
    host_port: int = 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.protocol.upper()}"


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount of a container: a Docker volume (created on first use, with `labels` and,
    for a tmpfs-backed one, `tmpfs_bytes`), a bind of a node path, or nothing else."""

    type: Literal["volume", "bind"]
    target: str
    source: str
    read_only: bool = False
    sub_path: str = ""
    # bind: create a missing directory (hostPath "" and DirectoryOrCreate), else it must exist.
    create: bool = False
    # The pod's own name for the volume, for the messages that refuse a mount.
    volume: str = ""
    # A hostPath's type ("" included; None: not a hostPath), checked where the agent sees
    # the engine's filesystem (agent/sub_paths.py).
    host_path_type: str | None = None
    tmpfs_bytes: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    # A claim volume: the bytes its filesystem must hold (0: a plain Docker volume).
    size_bytes: int = 0
    # The pod's fsGroup: the group owning an emptyDir or claim (agent/volume_owner.py).
    fs_group: int | None = None
    # Its fsGroupChangePolicy: Always walks the volume at every mount, OnRootMismatch only
    # when the root does not show the group yet.
    fs_group_policy: str = "Always"


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """Everything needed to create one container; built by agent/containers.py."""

    name: str
    image: str
    labels: dict[str, str]
    # Kubernetes' command (replaces the image's ENTRYPOINT) and args (its CMD).
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[PortBinding, ...] = ()
    host_ip: str = "127.0.0.1"
    # 0: no limit.
    nano_cpus: int = 0
    mem_limit: int = 0
    mounts: tuple[Mount, ...] = ()
    # "": the engine's default (the container's short id).
    hostname: str = ""
    # The container's resolv.conf; all empty: the engine's default (the node's own).
    dns_servers: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    # The main process's stdin kept open for attaches (closed after the first: stdin_once),
    # and a terminal.
    stdin_open: bool = False
    stdin_once: bool = False
    tty: bool = False
    # securityContext: the engine's "uid[:gid]" ("": the image's user), supplementary
    # groups, and the image's filesystem mounted read-only.
    user: str = ""
    group_add: tuple[str, ...] = ()
    read_only: bool = False
    # Every port of the pod (all its containers', probe ports included): what the pod's
    # sandbox publishes when the runtime runs pods in one (agent/runtime/sandbox.py).
    # Outside the repr, so config hashes (agent/containers.py) do not move with it.
    pod_ports: tuple[PortBinding, ...] = field(default=(), repr=False)
    # How many containers the pod runs: the agent's default puts only a pod of more than one
    # in a sandbox (agent/runtime/sandbox.py wants_sandbox). Outside the repr, as pod_ports.
    pod_containers: int = field(default=1, repr=False)
    # The engine's log driver ("": its default): a sandbox's holder logs nothing. Outside
    # the repr, so a holder's digest (agent/runtime/sandbox.py) does not move with it.
    log_driver: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container of this node as the engine last described it."""

    id: str
    name: str
    image: str
    state: str
    labels: dict[str, str] = field(default_factory=dict)
    exit_code: int = 0
    oom_killed: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0
    # "80/TCP" -> the host port the engine actually published it on (on a pod network:
    # the container port itself, reached at `address`).
    ports: dict[str, int] = field(default_factory=dict)
    error: str = ""
    # The container's own IP on the node's pod network; "" when pods are reached through
    # ports published on the node's advertise address.
    address: str = ""
    # Where the agent reaches the container itself, on its container ports: its IP on the
    # pod network, or on the default bridge when the agent runs on that host. Probes go
    # there ("": through the published host port, which a userland proxy may answer
    # for a container that does not listen).
    probe_address: str = ""
    # The container's main process as the engine's host numbers it (0: not running, or
    # no such thing): the node proxy enters its network namespace through /proc.
    pid: int = 0
    # The image as the kubelet names it (agent/runtime/image_ids.py); "" when unknown.
    image_id: str = ""
    # The pod sandbox holder whose network namespace this container joined ("": none, the
    # container has its own); its ports and addresses above are the holder's.
    sandbox_id: str = ""
    # Set on a container just made without the sandbox its pod wanted (the node has no
    # sandbox image): why, for the pod's events. Only on what a create returns.
    sandbox_note: str = ""
    # A running standby holder of this container's pod, made ahead for its crash ("": none;
    # only on a container with a network of its own): agent/restart_path.py replaces the
    # container by one joined to it instead of starting it again in place.
    standby_id: str = ""

    @property
    def pod(self) -> str:
        """The pod's `kernel.names.pod_ref`, from its name and namespace labels."""
        return pod_of(self.labels)

    @property
    def container(self) -> str:
        return self.labels.get(LABEL_CONTAINER, "")

    @property
    def epoch(self) -> int:
        return _int_label(self.labels, LABEL_EPOCH)

    @property
    def spec_hash(self) -> str:
        return self.labels.get(LABEL_SPEC_HASH, "")

    @property
    def restarted_at(self) -> float:
        """When this container was started again in place (0.0: it runs its first run)."""
        return restarted_at(self.name)

    @property
    def restart_count(self) -> int:
        """The count on its label, plus the one restart in place it may have had."""
        return _int_label(self.labels, LABEL_RESTART_COUNT) + (1 if self.restarted_at else 0)

    @property
    def run_key(self) -> str:
        """One run of this container: its id and when that run started. A container started
        again in place keeps its id, so what happened to a run (its exit handled, its
        liveness failure) is keyed by this, not by the id."""
        return f"{self.id}@{self.started_at!r}"

    @property
    def grace_seconds(self) -> int:
        return _int_label(self.labels, LABEL_GRACE, default=30)

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES

    @property
    def dead(self) -> bool:
        return self.state in DEAD_STATES


def _int_label(labels: dict[str, str], key: str, default: int = 0) -> int:
    try:
        return int(labels.get(key, default))
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How a command run inside a container ended (exec probes)."""

    exit_code: int
    # The command's stdout and stderr, interleaved, cut to a few KiB.
    output: str = ""


@dataclass(frozen=True, slots=True)
class ContainerStats:
    """One reading of a container's use (Docker stats): CPU time so far, memory now."""

    cpu_ns: int  # cumulative CPU time, nanoseconds
    memory_bytes: int  # in use, without reclaimable page cache (as `docker stats` shows)


@dataclass(frozen=True, slots=True)
class RuntimeEvent:
    """A start, die or oom of one of this node's containers, as the engine announced it.

    A die carries what the engine says of the exit (Docker's event attributes: the exit
    code, the container's name at the time), so the agent can decide a restart without
    inspecting the container first (agent/death_events.py); an oom comes before the die of
    a container the kernel killed for its memory limit."""

    action: Literal["start", "die", "oom"]
    container_id: str
    pod: str = ""
    container: str = ""
    # When the engine says it happened (wall seconds; 0.0 when it does not say).
    at: float = 0.0
    # A die's exit code (None: the event does not say).
    exit_code: int | None = None
    # The container's name when it happened ("": the event does not say).
    name: str = ""


@dataclass(frozen=True, slots=True)
class LogOptions:
    """Which part of a container's log to read (kubectl logs' options)."""

    follow: bool = False
    # -1: every line.
    tail_lines: int = -1
    timestamps: bool = False
    # 0: from the start.
    since_seconds: int = 0
    # A wall time (0.0: none): only what was logged before it. Reads the whole log of a
    # container started again in place up to then (its previous run's log, kept for
    # --previous); without it a log starts at the container's current run.
    until: float = 0.0


STDOUT = 1
STDERR = 2


class ExecSession(Protocol):
    """An interactive command running in a container (`kubectl exec`, `pinnace exec`).

    `output()` yields (STDOUT or STDERR, bytes) until the command's output ends (with a
    TTY everything is STDOUT); then `exit_code()` says how it ended. `close()` drops the
    connection: a command still reading stdin sees its end (with a TTY, a hang-up)."""

    def output(self) -> AsyncIterator[tuple[int, bytes]]: ...

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, width: int, height: int) -> None: ...

    async def exit_code(self) -> int: ...

    async def close(self) -> None: ...


# What Runtime.replace calls once the new container runs, and what it starts once the
# start is over (work that still reads the old container), before removing the old one.
Ran = Callable[[ContainerInfo], None]
BeforeRemove = Callable[[], Awaitable[None] | None]


class Runtime(Protocol):
    """A container engine seen through one node's labels."""

    @property
    def node(self) -> str: ...

    async def list_containers(self) -> list[ContainerInfo]:
        """Every container (running or not) labelled for this node."""
        ...

    async def ensure_image(self, image: str, pull_policy: str = "IfNotPresent") -> str:
        """Make the image present as the policy says; raises ImagePullError.

        IfNotPresent: pull only when absent. Never: never pull. Always: pull, and when
        no registry answers but the image is present, use it and return why (a note
        the agent reports and the master shows as an event); otherwise return "".
        """
        ...

    async def image_user(self, image: str) -> str:
        """The user a present image runs as (its Config.User: "", "uid[:gid]" or a name).
        Raises RuntimeFailure when the image is not there."""
        ...

    async def create_and_start(
        self, config: ContainerConfig, image_ready: Awaitable[object] | None = None
    ) -> ContainerInfo:
        """Creates and starts; removes a stale container of this node with the same name
        first. Raises ContainerCreateError (the half-made container is removed).

        `image_ready`: the pod's image step (ensure_image) still under way. The container
        may be created meanwhile, from the image the node has, but is started only once
        that step succeeded, and from the image it left (a pull that brought another one
        makes the container again); when it fails its error is raised, before any create
        error, and nothing is left created. The pull is then no longer before the create
        on the way to a running pod (issue 15)."""
        ...

    async def stop(self, container_id: str, grace_seconds: float) -> None:
        """SIGTERM, wait up to the grace period, then SIGKILL. A gone container is fine."""
        ...

    async def remove(self, container_id: str) -> None:
        """Removes (forcibly). A gone container is fine."""
        ...

    async def replace(
        self,
        old_id: str,
        config: ContainerConfig,
        before_remove: BeforeRemove | None = None,
        ran: Ran | None = None,
    ) -> ContainerInfo:
        """Creates and starts a container for `config` in place of the dead `old_id`, which
        is moved out of the way first and removed only once the new one runs (a crashed
        container runs again sooner). `ran(info)` is called as soon as the new one runs,
        before anything else (the worker reports it running from there: the old one's log
        and removal are not on the way to the master). Raises ContainerCreateError as
        create_and_start; the old container is removed either way, after the work
        `before_remove()` starts once the start is over (work that still reads the old
        container, such as keeping its log: not beside the start, where its engine calls
        would compete with the create and start on a busy engine)."""
        ...

    async def restart_in_place(self, container_id: str, new_name: str) -> ContainerInfo:
        """Starts the dead container again as it is (no create, its writable layer kept),
        then renames it (port.restarted_name with the instant before the start; `new_name`
        is its name without that mark). Raises ContainerCreateError when it cannot be
        started (its name unchanged); the caller then replaces it (`replace`)."""
        ...

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        """The container's current facts, or None when it is gone or not this node's."""
        ...

    def standby_of(self, container: ContainerInfo) -> str:
        """The id of the running standby holder of `container`'s pod as the runtime knows it
        now ("": none), from its own memory, no engine call: one it made is known as soon
        as its start returned, before any listing shows it (ContainerInfo.standby_id is as
        old as the listing)."""
        ...

    async def standby_soon(self, container: ContainerInfo) -> str:
        """standby_of, except while the standby holder of `container`'s pod is being made
        right then (its create sent, its start not returned): then what standby_of says once
        that start returned, or sandbox.STANDBY_WAIT seconds went by. The worker asks it
        before deciding a crash restart: a crash in that window was started again in place."""
        ...

    async def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult:
        """Runs `command` inside the running container and waits for it to end.
        Raises RuntimeFailure when it cannot be run (container gone or stopped,
        no such executable); the caller bounds the wait."""
        ...

    async def open_exec(
        self, container_id: str, command: tuple[str, ...], stdin: bool, tty: bool
    ) -> ExecSession:
        """Starts `command` in the running container with its streams attached.
        Raises RuntimeFailure when the container is gone, stopped or not this node's."""
        ...

    async def open_attach(self, container_id: str, stdin: bool, tty: bool) -> ExecSession:
        """Attaches to the running container's main process (its output from now on; stdin
        when asked and the container keeps it open). Its `exit_code()` is the container's.
        Raises RuntimeFailure when the container is gone, stopped or not this node's."""
        ...

    async def list_volumes(self) -> list[VolumeInfo]:
        """The Docker volumes this node's pods use (labelled with this node)."""
        ...

    async def remove_volume(self, name: str) -> bool:
        """Remove a volume; False when a container still uses it (nothing is removed)."""
        ...

    async def volume_sizes(self) -> dict[str, int]:
        """Bytes each of this node's volumes holds, as the engine measures it (Docker's
        `system df`, which walks every volume: ask rarely). RuntimeFailure: cannot ask."""
        ...

    async def stats(self, container_id: str) -> ContainerStats | None:
        """One reading of the container's CPU and memory; None when it is gone or stopped."""
        ...

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Start, die and oom events of this node's containers (a die with its exit code and
        the container's name where the engine gives them), until the consumer stops
        iterating."""
        ...

    def logs(self, container_id: str, options: LogOptions) -> AsyncIterator[bytes]:
        """The container's output (stdout and stderr, interleaved as written), in chunks;
        with `follow`, until the container stops or the consumer stops iterating.
        Raises RuntimeFailure when the container is gone or not this node's."""
        ...

    async def close(self) -> None: ...
