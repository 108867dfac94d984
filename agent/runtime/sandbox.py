"""Pod sandboxes: one holder container per pod owns the pod's network namespace (pure).

Why: the engine's start of a container on Docker's bridge with a published port makes a
new network namespace, a veth pair and the port's docker-proxy and NAT rules every time,
~360 ms median here against ~95 ms for a container that joins the namespace of a running
one (tests/bench/README.md, start_shapes). Kubernetes' pause container holds a pod's
network so that its containers restart without any of that; with the agent's
`--pod-sandbox` so does pinnace's. DockerRuntime creates the holder (SANDBOX_IMAGE, a
process that only waits for a signal) before the pod's first container, publishing every
port of the pod and carrying its hostname and resolv.conf; each app container joins it
(`network_mode=container:<holder id>`), so the pod's containers share localhost as in
Kubernetes, and the agent reads a container's ports and addresses from its holder.

Which pods get one (`wants_sandbox`, the agent's `--pod-sandbox [all|multi]`, default
multi): a holder costs the engine nearly a second container start per pod (its own
namespace, veth, port proxy and NAT rules, then the app's start joined to it), so apply ->
N running took ~1.5x a parallel `docker run` with one per pod against ~1.07x without
(tests/bench/README.md, holder_cost). A pod of one container shares localhost with no one,
so by default only pods of more than one container run in a sandbox; `all` buys every pod
the faster crash restart at that cost. An engine without the sandbox image runs the pod
without one and the agent says so (docker_runtime.py, `missing_image_note`).

This module decides, agent/runtime/docker_runtime.py executes:
- `holder_config`: the holder's ContainerConfig, made of an app container's network facts;
- `joined_config`: what is left for the app container (Docker refuses ports, DNS and a
  hostname on a container that joins another's namespace);
- `holder_step`: use the running holder, create one, or replace one that died, was made
  for other network facts (a pod whose ports changed gets a new sandbox) or is on another
  network than the node's pods go on now (made before the node's pod bridge existed);
- `sweep`: what to remove. A holder that is not running takes its pod's containers with
  it: they lost their network, and the agent creates them again in a new sandbox, as the
  kubelet does when a pod's sandbox dies. A holder left without containers (its pod was
  deleted, or an agent died between the two removals) goes too. A pod whose start is under
  way is left alone until the next sweep.
- `joined_info`: an app container's facts with its holder's ports and addresses.

Standby sandboxes (on by default; the agent's --no-standby-sandbox turns them off): a
one-container pod runs without a holder (its start stays one container start), and once it
runs and the engine has been quiet for STANDBY_QUIET seconds (off the apply's clock,
`standby_due`) the agent makes a holder for it (`standby_config`, labelled LABEL_STANDBY).
When the container crashes it is replaced by one joined to that holder: the engine's start
of a joined container needs no new namespace, veth or port proxy, and does not wait for the
dead one's network cleanup (engine floor, ~0.2 s less per restart here,
tests/bench/README.md). From then on the pod is in a sandbox and its later crashes restart
in place, joined. Why a running holder and not a created (never started) replacement
container: starting one created ahead is no faster than starting the dead one again (both
make the network; the same floor). Which pods (`wants_standby`): those that would run
without a sandbox and publish no fixed host port (a holder of such a pod could not bind the
port its running container holds). `sweep` keeps a running standby while its pod has any
container; a stale one (the pod's ports or DNS changed) is not joined (`usable_standby`) and
is replaced when the next one is made. A container that wants one carries the facts its
standby is made of (`standby_facts`, LABEL_STANDBY_FACTS): an agent restarted while it runs,
or whose standby was not made before a crash restarted it in place, makes the standby from
them (`adoptable_standbys`, `standby_from_facts`), the same holder the agent that created
the container would have made. The runtime knows a standby it made as soon as its start
returned (`known_holders`), not from the next listing on: the worker asks it
(Runtime.standby_of) before it decides a crash restart, so a crash in the second between
the standby's start and the next listing is replaced into it too, not started again in
place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from agent.runtime.port import (
    LABEL_NODE,
    LABEL_POD_LABEL_PREFIX,
    LABEL_SANDBOX,
    LABEL_STANDBY,
    LABEL_STANDBY_FACTS,
    ContainerConfig,
    ContainerInfo,
    PortBinding,
    pod_labels,
    pod_of,
    sandbox_name,
)

# Built by `make images` (compose/images/build.sh pause): busybox's sh waiting for a signal,
# FROM scratch, 2 MB. Never pulled (a pinnace/* name on a registry would be someone else's).
SANDBOX_IMAGE = "pinnace/pause:latest"
_JOINED_PREFIX = "container:"

# Which pods run in a sandbox: every pod, only pods of more than one container, none.
SandboxMode = Literal["all", "multi", "none"]

# Seconds without any container start or create under way before a standby is made: a burst
# of starts (an apply) goes first, and the standby's own start is not on its clock.
STANDBY_QUIET = 1.0
# How long a crash restart waits for its pod's standby holder being made right then (its
# create sent, its start not returned) before starting the dead container again in place:
# that start, on a container with a network of its own, waits for the engine's network
# cleanup (1.08 s once at load 13); the holder's start returning and the swap into it take
# a few tenths. A judgement, not a measured optimum: the window is rare (once a pod).
STANDBY_WAIT = 0.5


@dataclass(frozen=True, slots=True)
class Member:
    """One container of this node as the sweep sees it: a holder, or an app container and
    the holder it joined ("": none, it has a network namespace of its own)."""

    id: str
    pod: str
    alive: bool
    holder: bool = False
    joined: str = ""
    # A standby holder (LABEL_STANDBY): kept while its pod has any container, joined or not.
    standby: bool = False


@dataclass(frozen=True, slots=True)
class Sweep:
    """Containers to remove, app containers first (a holder goes after its members)."""

    members: tuple[str, ...] = ()
    holders: tuple[str, ...] = ()


HolderStep = Literal["use", "create", "replace"]


def network_mode(holder_id: str) -> str:
    """Docker's network mode for a container joining the holder's namespace."""
    return f"{_JOINED_PREFIX}{holder_id}"


def joined_holder(mode: str) -> str:
    """The holder id in a network mode `container:<id>` ("" for any other mode)."""
    return mode[len(_JOINED_PREFIX) :] if mode.startswith(_JOINED_PREFIX) else ""


def wants_sandbox(mode: SandboxMode, app: ContainerConfig) -> bool:
    """Whether `app`'s pod runs in a sandbox under `mode` (above: a single container's pod
    gains only a faster crash restart from one, and pays a holder at every start)."""
    return mode == "all" or (mode == "multi" and app.pod_containers > 1)


def wants_standby(enabled: bool, mode: SandboxMode, app: ContainerConfig) -> bool:
    """Whether `app`'s pod gets a standby holder once it runs (module doc): standbys are on,
    the pod runs without a sandbox under `mode` (not off altogether: --no-pod-sandbox), and
    no port of it is published on a fixed host port."""
    if not enabled or mode == "none" or wants_sandbox(mode, app):
        return False
    return not any(p.host_port for p in (*app.pod_ports, *app.ports))


def standby_due(now: float, busy: int, quiet_since: float, quiet: float = STANDBY_QUIET) -> bool:
    """Whether a standby may be made now: no start or create is under way (`busy`) and none
    ended within `quiet` seconds (`quiet_since`, monotonic)."""
    return busy == 0 and now - quiet_since >= quiet


def standby_still_wanted(asked_at: float, listed_at: float, running: bool, usable: bool) -> bool:
    """Whether a standby asked for at `asked_at` (monotonic, when its container was made) is
    still to be made after a listing taken at `listed_at`: its pod has no usable one yet,
    and its container runs with a network of its own in that listing, or was made after the
    listing began (a listing that could not show it says nothing of it)."""
    return not usable and (running or asked_at >= listed_at)


def usable_standby(
    holders: Collection[ContainerInfo], wanted: ContainerConfig, node: str, image: str
) -> str:
    """The id of a running standby holder of `wanted`'s pod made for its network facts now
    (the same digest as `holder_config` gives), which a new container of it may join; ""."""
    pod = pod_of(wanted.labels)
    digest = holder_config(wanted, node, image).labels[LABEL_SANDBOX]
    for h in holders:
        if (
            h.alive
            and LABEL_STANDBY in h.labels
            and h.pod == pod
            and h.labels.get(LABEL_SANDBOX) == digest
        ):
            return h.id
    return ""


def standby_facts(app: ContainerConfig) -> str:
    """What `app`'s standby is made of (what `holder_config` takes from it), as the value
    of its LABEL_STANDBY_FACTS: a label, because labels are what an agent restarted later
    reads of a container it did not create (port.py)."""
    facts = {
        "ports": [[p.container_port, p.protocol, p.host_port] for p in app.pod_ports or app.ports],
        "host_ip": app.host_ip,
        "hostname": app.hostname,
        "dns": [list(app.dns_servers), list(app.dns_search), list(app.dns_options)],
    }
    return json.dumps(facts, separators=(",", ":"))


def standby_from_facts(app: ContainerInfo) -> ContainerConfig | None:
    """A config of `app`'s pod that `standby_config` makes the same standby of as of the
    config `app` was created with (its LABEL_STANDBY_FACTS); None: it carries none, or
    none this agent reads."""
    raw = app.labels.get(LABEL_STANDBY_FACTS, "")
    try:
        facts = json.loads(raw)
        ports = tuple(PortBinding(int(c), str(p), int(h)) for c, p, h in facts["ports"])
        servers, search, options = (tuple(str(x) for x in d) for d in facts["dns"])
        host_ip, hostname = str(facts["host_ip"]), str(facts["hostname"])
    except (ValueError, KeyError, TypeError):
        return None
    return ContainerConfig(
        name=app.name,
        image=app.image,
        labels=dict(app.labels),
        ports=ports,
        pod_ports=ports,
        host_ip=host_ip,
        hostname=hostname,
        dns_servers=servers,
        dns_search=search,
        dns_options=options,
    )


def adoptable_standbys(
    listed: Sequence[ContainerInfo], asked: Collection[str], tried: Collection[str]
) -> list[ContainerInfo]:
    """Running containers of a listing whose standby this agent has not asked for: a network
    of their own, no standby, the facts of one (LABEL_STANDBY_FACTS), their pod not asked
    for already (`asked`) and no standby tried for them before (`tried`: container ids; a
    failed one is not tried at every listing)."""
    return [
        i
        for i in listed
        if i.alive
        and not i.sandbox_id
        and not i.standby_id
        and LABEL_STANDBY_FACTS in i.labels
        and i.pod not in asked
        and i.id not in tried
    ]


def standby_config(app: ContainerConfig, node: str, image: str = SANDBOX_IMAGE) -> ContainerConfig:
    """The standby holder of `app`'s pod: its holder, labelled as a standby."""
    holder = holder_config(app, node, image)
    return dataclasses.replace(holder, labels=holder.labels | {LABEL_STANDBY: "1"})


def missing_image_note(image: str, pod: str) -> str:
    """What the agent says when `pod` runs without the sandbox it wanted: its containers
    each get a network of their own, so they do not share localhost."""
    return (
        f"the pod sandbox image {image} is not present on this node: pod {pod} runs without "
        "a sandbox, each container with a network of its own (they do not share localhost); "
        "`make images` builds it"
    )


def holder_config(app: ContainerConfig, node: str, image: str = SANDBOX_IMAGE) -> ContainerConfig:
    """The holder of `app`'s pod: every port of the pod published on the same address, the
    pod's hostname and resolv.conf; labelled with the node, the pod (and its labels, for
    `docker ps` views) and a digest of those facts, which says when it no longer fits."""
    pod = pod_of(app.labels)
    shaped = ContainerConfig(
        name=sandbox_name(node, pod),
        image=image,
        labels={},
        ports=app.pod_ports or app.ports,
        host_ip=app.host_ip,
        hostname=app.hostname,
        dns_servers=app.dns_servers,
        dns_search=app.dns_search,
        dns_options=app.dns_options,
    )
    digest = hashlib.sha256(repr(shaped).encode()).hexdigest()[:16]
    labels = {k: v for k, v in app.labels.items() if k.startswith(LABEL_POD_LABEL_PREFIX)}
    labels |= {LABEL_NODE: node, **pod_labels(pod), LABEL_SANDBOX: digest}
    # It writes nothing: no log file or copier for the engine to set up (holder_cost).
    return dataclasses.replace(shaped, labels=labels, log_driver="none")


def joined_config(app: ContainerConfig) -> ContainerConfig:
    """`app` without what its holder carries (the engine refuses them on a joined one)."""
    return dataclasses.replace(
        app,
        ports=(),
        pod_ports=(),
        hostname="",
        dns_servers=(),
        dns_search=(),
        dns_options=(),
    )


def holder_step(
    existing: ContainerInfo | None, wanted: ContainerConfig, on: str = "", network: str = ""
) -> HolderStep:
    """What to do with the pod's holder of that name before one of its containers starts.
    `on`: the network the existing holder is on (its NetworkMode), `network`: the one the
    node's pods go on now ("": Docker's default bridge). A holder made before the node's
    pod bridge existed (or of the node's old pod subnet) is replaced: its pod's address is
    not in the node's subnet, which no other node routes to, and the pod would keep it for
    as long as it lives, however many of its containers are made again."""
    if existing is None:
        return "create"
    if not existing.alive or existing.labels.get(LABEL_SANDBOX) != wanted.labels[LABEL_SANDBOX]:
        return "replace"
    if _network(on) != _network(network):
        return "replace"
    return "use"


def _network(mode: str) -> str:
    """A NetworkMode as the network it names: Docker's default bridge is "" here, whichever
    of its names ("default", "bridge") the engine gave it."""
    return "" if mode in ("", "default", "bridge") else mode


def is_holder(info: ContainerInfo) -> bool:
    return LABEL_SANDBOX in info.labels


def member_of(info: ContainerInfo) -> Member:
    holder = is_holder(info)
    standby = holder and LABEL_STANDBY in info.labels
    return Member(info.id, info.pod, info.alive, holder, info.sandbox_id, standby)


def sweep(
    containers: Sequence[Member],
    busy_pods: Collection[str] = (),
    died: Collection[str] = (),
    keep_standbys: bool = True,
) -> Sweep:
    """Which app containers lost their holder and which holders are not needed (above).
    `died`: containers the engine said died, whatever a listing taken as it said so shows
    (Docker may list a container as running for a moment after its die event). A running
    standby holder nobody joined yet is kept while its pod has a container, unless
    standbys are off (`keep_standbys`: an agent started without them removes its old ones)."""
    calm = [
        replace(c, alive=False) if c.id in died else c for c in containers if c.pod not in busy_pods
    ]
    holders = {c.id: c for c in calm if c.holder}
    running = {h for h, c in holders.items() if c.alive}
    members = tuple(c.id for c in calm if not c.holder and c.joined and c.joined not in running)
    kept = {c.joined for c in calm if not c.holder and c.id not in members}
    pods = {c.pod for c in calm if not c.holder and c.id not in members}
    standing = {h for h, c in holders.items() if keep_standbys and c.standby and c.pod in pods}
    gone = tuple(h for h in holders if h not in running or h not in kept | standing)
    return Sweep(members, gone)


def known_holders(
    listed: Mapping[str, ContainerInfo],
    made: Mapping[str, tuple[ContainerInfo, float]],
    listed_at: float,
) -> tuple[dict[str, ContainerInfo], dict[str, tuple[ContainerInfo, float]]]:
    """The holders this runtime knows after a listing taken at `listed_at` (monotonic), and
    what it still remembers of those it made itself (`made`: id -> its facts as its start
    left them, when that returned). A holder made after the listing began is known as made,
    listed or not: the listing may have missed it, or seen it before its start (created, not
    yet running), and a standby must be joinable as soon as its start returned, not from
    the next listing on (a crash meanwhile would be started again in place). One made
    before the listing began is known as listed: the listing saw it if it still exists, so
    an absent one is gone, and it is forgotten from `made` either way."""
    later = {cid: (info, at) for cid, (info, at) in made.items() if at > listed_at}
    return dict(listed) | {cid: info for cid, (info, _) in later.items()}, later


def pod_standbys(holders: Collection[ContainerInfo]) -> dict[str, str]:
    """Pod -> the id of its running standby holder, among `holders`."""
    return {h.pod: h.id for h in holders if h.alive and LABEL_STANDBY in h.labels}


def with_standby(app: ContainerInfo, standbys: dict[str, str]) -> ContainerInfo:
    """`app` with the running standby holder of its pod (`standbys`: pod -> holder id), when
    it has a network of its own (a joined container's pod already has its sandbox)."""
    holder = "" if app.sandbox_id else standbys.get(app.pod, "")
    return dataclasses.replace(app, standby_id=holder) if holder != app.standby_id else app


def joined_info(app: ContainerInfo, holder: ContainerInfo | None) -> ContainerInfo:
    """`app` as the agent reads it: the ports and addresses of the namespace it is in, which
    are its holder's (none while the holder does not run)."""
    if not app.sandbox_id:
        return app
    if holder is None or not holder.alive:
        return dataclasses.replace(app, ports={}, address="", probe_address="")
    return dataclasses.replace(
        app, ports=dict(holder.ports), address=holder.address, probe_address=holder.probe_address
    )
