"""Pod sandboxes (agent/runtime/sandbox.py): the holder's config, what is left on a joined
container, when a holder is used, made or replaced, and what the sweep removes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.containers import container_config, pod_ports
from agent.model import ContainerPort, ContainerSpec, PodAssignment, PodSpec, Probe
from agent.runtime.port import (
    LABEL_CONFIG_HASH,
    LABEL_CONTAINER,
    LABEL_NODE,
    LABEL_POD,
    LABEL_SANDBOX,
    ContainerInfo,
    PortBinding,
)
from agent.runtime.sandbox import (
    Member,
    holder_config,
    holder_step,
    joined_config,
    joined_holder,
    joined_info,
    member_of,
    missing_image_note,
    network_mode,
    sweep,
    wants_sandbox,
)

WEB = ContainerSpec("web", "pinnace/httpd:latest", ports=(ContainerPort(80),))
SIDE = ContainerSpec(
    "side",
    "pinnace/httpd:latest",
    ports=(ContainerPort(8080), ContainerPort(80)),
    liveness_probe=Probe(kind="httpGet", port="9090", path="/healthz"),
)
POD = PodAssignment("web-1", 3, PodSpec((WEB, SIDE)), owner="StatefulSet/web")


def test_the_holder_publishes_every_port_of_the_pod_once_with_its_hostname_and_dns() -> None:
    config = container_config("n1", "127.0.0.1", POD, WEB, 0)
    holder = holder_config(config, "n1", "pinnace/pause:latest")
    assert holder.name == "pinnace-n1-web-1.sandbox"
    assert holder.image == "pinnace/pause:latest"
    assert [p.key for p in holder.ports] == ["80/TCP", "8080/TCP", "9090/TCP"]
    assert holder.hostname == "web-1"
    assert holder.host_ip == "127.0.0.1"
    assert holder.labels[LABEL_NODE] == "n1"
    assert holder.labels[LABEL_POD] == "web-1"
    assert LABEL_CONTAINER not in holder.labels
    assert holder.labels[LABEL_SANDBOX]


def test_the_holder_logs_nothing_and_its_digest_does_not_move_with_that() -> None:
    config = container_config("n1", "127.0.0.1", POD, WEB, 0)
    holder = holder_config(config, "n1")
    assert holder.log_driver == "none"
    # Holders made before it had no log driver: the same digest, so none is replaced.
    assert replace(holder, log_driver="").labels[LABEL_SANDBOX] == holder.labels[LABEL_SANDBOX]
    assert "log_driver" not in repr(holder)


ALONE = PodAssignment("solo-1", 1, PodSpec((WEB,)), owner="Deployment/solo")


@pytest.mark.parametrize(
    ("mode", "pod", "wanted"),
    [
        ("multi", POD, True),
        ("multi", ALONE, False),
        ("all", ALONE, True),
        ("all", POD, True),
        ("none", POD, False),
        ("none", ALONE, False),
    ],
)
def test_by_default_only_a_pod_of_more_than_one_container_gets_a_sandbox(
    mode: str, pod: PodAssignment, wanted: bool
) -> None:
    config = container_config("n1", "127.0.0.1", pod, pod.spec.containers[0], 0)
    assert config.pod_containers == len(pod.spec.containers)
    assert wants_sandbox(mode, config) is wanted  # type: ignore[arg-type]


def test_the_container_count_does_not_move_a_containers_config_hash() -> None:
    alone = container_config("n1", "127.0.0.1", ALONE, WEB, 0)
    assert "pod_containers" not in repr(alone)


def test_the_missing_image_note_names_the_image_the_pod_and_the_fix() -> None:
    note = missing_image_note("pinnace/pause:latest", "web-1")
    assert "pinnace/pause:latest" in note
    assert "pod web-1 runs without a sandbox" in note
    assert "localhost" in note and "make images" in note


def test_every_container_of_a_pod_asks_for_the_same_holder() -> None:
    web = container_config("n1", "127.0.0.1", POD, WEB, 0)
    side = container_config("n1", "127.0.0.1", POD, SIDE, 4)
    assert holder_config(web, "n1") == holder_config(side, "n1")


def test_other_ports_or_dns_make_another_holder_digest() -> None:
    web = container_config("n1", "127.0.0.1", POD, WEB, 0)
    moved = replace(web, pod_ports=(PortBinding(81),))
    resolved = replace(web, dns_servers=("10.0.0.10",))
    digests = {holder_config(c, "n1").labels[LABEL_SANDBOX] for c in (web, moved, resolved)}
    assert len(digests) == 3


def test_a_joined_container_keeps_no_network_facts_but_its_own() -> None:
    web = container_config("n1", "127.0.0.1", POD, WEB, 0)
    joined = joined_config(replace(web, dns_servers=("10.0.0.10",), dns_search=("svc",)))
    assert (joined.ports, joined.pod_ports, joined.hostname) == ((), (), "")
    assert (joined.dns_servers, joined.dns_search, joined.dns_options) == ((), (), ())
    assert (joined.image, joined.labels, joined.env) == (web.image, web.labels, web.env)


def test_pod_ports_do_not_move_a_containers_config_hash() -> None:
    alone_pod = replace(POD, spec=PodSpec((WEB,)))
    web = container_config("n1", "127.0.0.1", POD, WEB, 0)
    alone = container_config("n1", "127.0.0.1", alone_pod, WEB, 0)
    assert web.pod_ports != alone.pod_ports == pod_ports(alone_pod)
    assert web.labels[LABEL_CONFIG_HASH] == alone.labels[LABEL_CONFIG_HASH]


def test_network_mode_round_trips_and_other_modes_join_nothing() -> None:
    assert joined_holder(network_mode("abc")) == "abc"
    assert joined_holder("bridge") == ""
    assert joined_holder("") == ""
    assert joined_holder("pinnace-n1-pods") == ""


def holder(state: str = "running", digest: str = "") -> ContainerInfo:
    wanted = holder_config(container_config("n1", "127.0.0.1", POD, WEB, 0), "n1")
    labels = dict(wanted.labels)
    if digest:
        labels[LABEL_SANDBOX] = digest
    return ContainerInfo(
        "h1",
        wanted.name,
        "pinnace/pause:latest",
        state,
        labels,
        ports={"80/TCP": 32001, "8080/TCP": 32002},
        probe_address="172.17.0.5",
    )


@pytest.mark.parametrize(
    ("existing", "step"),
    [
        (None, "create"),
        (holder(), "use"),
        (holder("exited"), "replace"),
        (holder("dead"), "replace"),
        (holder(digest="other"), "replace"),
    ],
)
def test_holder_step(existing: ContainerInfo | None, step: str) -> None:
    wanted = holder_config(container_config("n1", "127.0.0.1", POD, WEB, 0), "n1")
    assert holder_step(existing, wanted) == step


@pytest.mark.parametrize(
    ("on", "network", "step"),
    [
        ("default", "", "use"),
        ("bridge", "", "use"),
        ("pinnace-pods-n1", "pinnace-pods-n1", "use"),
        # Made before the node's pod bridge existed: Docker's default bridge.
        ("default", "pinnace-pods-n1", "replace"),
        ("bridge", "pinnace-pods-n1", "replace"),
        # Made on the bridge of the node's old pod subnet.
        ("pinnace-pods-n1", "pinnace-pods-n1-10-1-2-0-24", "replace"),
    ],
)
def test_a_holder_on_another_network_than_the_nodes_pods_is_replaced(
    on: str, network: str, step: str
) -> None:
    wanted = holder_config(container_config("n1", "127.0.0.1", POD, WEB, 0), "n1")
    assert holder_step(holder(), wanted, on, network) == step


def test_a_joined_container_reads_its_holders_ports_and_addresses() -> None:
    mine = ContainerInfo("a1", "x", "img", "running", {}, sandbox_id="h1")
    seen = joined_info(mine, holder())
    assert seen.ports == {"80/TCP": 32001, "8080/TCP": 32002}
    assert seen.probe_address == "172.17.0.5"
    gone = joined_info(mine, holder("exited"))
    assert (gone.ports, gone.address, gone.probe_address) == ({}, "", "")
    assert joined_info(mine, None).ports == {}
    own = ContainerInfo("a2", "y", "img", "running", {}, ports={"80/TCP": 1})
    assert joined_info(own, holder()) is own


def test_members_are_read_from_labels_and_network_mode() -> None:
    assert member_of(holder()) == Member("h1", "web-1", True, True, "")
    mine = ContainerInfo("a1", "x", "img", "exited", {LABEL_POD: "web-1"}, sandbox_id="h1")
    assert member_of(mine) == Member("a1", "web-1", False, False, "h1")


def test_the_sweep_keeps_a_running_holder_with_members_dead_or_alive() -> None:
    found = [
        Member("h1", "p", True, holder=True),
        Member("a1", "p", False, joined="h1"),
        Member("h2", "q", True, holder=True),
        Member("b1", "q", True, joined="h2"),
    ]
    assert sweep(found) == sweep([])


def test_a_dead_holder_takes_its_pods_containers_with_it() -> None:
    found = [
        Member("h1", "p", False, holder=True),
        Member("a1", "p", True, joined="h1"),
        Member("a2", "p", False, joined="h1"),
        Member("own", "p", True),
    ]
    plan = sweep(found)
    assert plan.members == ("a1", "a2")
    assert plan.holders == ("h1",)


def test_containers_of_a_holder_that_is_gone_go_too() -> None:
    plan = sweep([Member("a1", "p", True, joined="vanished")])
    assert plan.members == ("a1",)
    assert plan.holders == ()


def test_a_holder_without_containers_goes_unless_its_pod_is_starting() -> None:
    found = [Member("h1", "p", True, holder=True), Member("own", "p", True)]
    assert sweep(found).holders == ("h1",)
    assert sweep(found, busy_pods={"p"}).holders == ()


def test_a_starting_pod_is_left_alone_entirely() -> None:
    found = [Member("h1", "p", False, holder=True), Member("a1", "p", True, joined="h1")]
    assert sweep(found, busy_pods={"p"}) == sweep([])
    assert sweep(found, busy_pods={"q"}).members == ("a1",)


def test_a_holder_with_a_new_holder_beside_it_goes_with_its_last_member() -> None:
    found = [
        Member("h-old", "p", True, holder=True),
        Member("h-new", "p", True, holder=True),
        Member("a1", "p", True, joined="h-new"),
    ]
    plan = sweep(found)
    assert plan.members == ()
    assert plan.holders == ("h-old",)


def test_a_holder_the_engine_said_died_counts_as_dead_whatever_the_listing_shows() -> None:
    found = [Member("h1", "p", True, holder=True), Member("a1", "p", True, joined="h1")]
    assert sweep(found) == sweep([])
    plan = sweep(found, died={"h1"})
    assert (plan.members, plan.holders) == (("a1",), ("h1",))
