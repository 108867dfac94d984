"""Parts of a pod that master and agent hold alike: probes, volume mounts, container status.

The master parses them from manifests and sends them on the wire; the agent reads them back
and acts on them. One definition keeps the two sides from drifting (defaults, field names).
`Probe.kind` is text, not the enum, on purpose: an agent must carry a kind a newer master
sends and report it as unknown, rather than fail to read the whole assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ContainerState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


class ProbeKind(StrEnum):
    HTTP_GET = "httpGet"
    TCP_SOCKET = "tcpSocket"
    EXEC = "exec"


@dataclass(frozen=True, slots=True)
class HTTPHeader:
    name: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class Probe:
    """A readiness or liveness check the agent runs against a container (Kubernetes' Probe).

    Exactly one handler, named by `kind` (a ProbeKind's value); the timing fields carry
    Kubernetes' defaults.
    """

    kind: str
    # httpGet and tcpSocket: a port number as text, or the name of a container port.
    port: str = ""
    # httpGet only; scheme is always HTTP (HTTPS is refused at parse time).
    path: str = "/"
    scheme: str = "HTTP"
    http_headers: tuple[HTTPHeader, ...] = ()
    # exec only: run in the container; exit status 0 passes.
    command: tuple[str, ...] = ()
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True, slots=True)
class VolumeMount:
    """Where a container sees one of its pod's volumes (Kubernetes' volumeMounts[])."""

    name: str
    mount_path: str
    # A path inside the volume to mount instead of its root.
    sub_path: str = ""
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    """What the agent reports, and the master keeps, for one container of a pod."""

    name: str
    # A ContainerState's value (text, so an agent's report of a newer state still reads).
    state: str = ContainerState.WAITING
    # Why it is in that state: ContainerCreating, ErrImagePull, ImagePullBackOff,
    # CrashLoopBackOff, Completed, Error, OOMKilled ...
    reason: str = ""
    message: str = ""
    ready: bool = False
    restart_count: int = 0
    container_id: str = ""
    image: str = ""
    exit_code: int = 0
    started_at: float = 0.0
    # imagePullPolicy Always could not pull; the image on the node runs (and why).
    image_note: str = ""
    # Kubernetes' containerStatuses[].imageID: docker-pullable://REPO@DIGEST or
    # docker://sha256:ID (agent/runtime/image_ids.py).
    image_id: str = ""
