"""Standby sandboxes (agent/runtime/sandbox.py, the agent's --standby-sandbox): which pods get
a standby holder, when one is made, which a new container may join, what the sweep keeps,
and that a crash restart of a container whose pod has one replaces it (agent/restart_path.py).
All new behaviour: every test here fails on the code before standbys (no such names)."""

from __future__ import annotations

from dataclasses import replace

from agent.containers import container_config
from agent.model import ContainerPort, ContainerSpec, PodAssignment, PodSpec
from agent.poddns import ResolvConf
from agent.restart_path import restart_path
from agent.runtime.port import (
    LABEL_SANDBOX,
    LABEL_STANDBY,
    LABEL_STANDBY_FACTS,
    ContainerConfig,
    ContainerInfo,
)
from agent.runtime.sandbox import (
    STANDBY_QUIET,
    Member,
    adoptable_standbys,
    holder_config,
    known_holders,
    member_of,
    pod_standbys,
    standby_config,
    standby_due,
    standby_facts,
    standby_from_facts,
    standby_still_wanted,
    sweep,
    usable_standby,
    wants_standby,
    with_standby,
)
from kernel.clock import FakeClock
from kernel.podspec import Probe

IMAGE = "pinnace/pause:latest"
WEB = ContainerSpec("web", "pinnace/httpd:latest", ports=(ContainerPort(80),))
SIDE = ContainerSpec("side", "pinnace/httpd:latest", ports=(ContainerPort(8080),))
ONE = PodAssignment("web-1", 3, PodSpec((WEB,)))
TWO = PodAssignment("web-2", 3, PodSpec((WEB, SIDE)))
FIXED = PodAssignment(
    "web-3", 3, PodSpec((ContainerSpec("web", "i", ports=(ContainerPort(80, host_port=8080),)),))
)


def app(pod: PodAssignment = ONE, spec: ContainerSpec = WEB):  # type: ignore[no-untyped-def]
    return container_config("n1", "127.0.0.1", pod, spec, 0)


def holder_info(hid: str = "h1", pod: PodAssignment = ONE, alive: bool = True) -> ContainerInfo:
    made = standby_config(app(pod, pod.spec.containers[0]), "n1", IMAGE)
    return ContainerInfo(hid, made.name, IMAGE, "running" if alive else "exited", made.labels)


def test_a_one_container_pod_without_a_fixed_host_port_gets_a_standby_when_they_are_on() -> None:
    assert wants_standby(True, "multi", app())
    assert not wants_standby(False, "multi", app())  # the flag is off
    assert not wants_standby(True, "none", app())  # --no-pod-sandbox: no holders at all
    assert not wants_standby(True, "all", app())  # it runs in a sandbox from the start
    assert not wants_standby(True, "multi", app(TWO))  # likewise
    # Its holder could not bind the host port its running container holds.
    assert not wants_standby(True, "multi", app(FIXED, FIXED.spec.containers[0]))


def test_a_standby_waits_for_a_quiet_engine() -> None:
    assert not standby_due(100.0, busy=1, quiet_since=0.0)
    assert not standby_due(100.0, busy=0, quiet_since=100.0 - STANDBY_QUIET / 2)
    assert standby_due(100.0, busy=0, quiet_since=100.0 - STANDBY_QUIET)


def test_a_listing_that_began_before_the_container_was_made_does_not_drop_its_standby() -> None:
    # Found by the recovery bench: one pod in 12 never got its standby, as a listing taken
    # while its container was being made (which it could not show) dropped the ask.
    assert standby_still_wanted(asked_at=10.5, listed_at=10.0, running=False, usable=False)
    assert standby_still_wanted(asked_at=9.0, listed_at=10.0, running=True, usable=False)
    # Listed after it was made and not running (crashed, removed, joined a holder): dropped.
    assert not standby_still_wanted(asked_at=9.0, listed_at=10.0, running=False, usable=False)
    # Its pod has a standby it can join already.
    assert not standby_still_wanted(asked_at=9.0, listed_at=10.0, running=True, usable=True)


def test_a_standby_is_its_pods_holder_labelled_with_the_same_digest() -> None:
    holder = holder_config(app(), "n1", IMAGE)
    standby = standby_config(app(), "n1", IMAGE)
    assert standby.labels == holder.labels | {LABEL_STANDBY: "1"}
    assert replace(standby, labels={}) == replace(holder, labels={})


def test_a_new_container_joins_only_a_running_standby_of_its_pod_made_for_its_network() -> None:
    assert usable_standby([holder_info()], app(), "n1", IMAGE) == "h1"
    assert usable_standby([holder_info(alive=False)], app(), "n1", IMAGE) == ""
    assert usable_standby([holder_info(pod=FIXED)], app(), "n1", IMAGE) == ""
    # Its ports changed since the standby was made: stale, not joined.
    moved = ContainerSpec("web", "pinnace/httpd:latest", ports=(ContainerPort(81),))
    changed = PodAssignment("web-1", 4, PodSpec((moved,)))
    assert usable_standby([holder_info()], app(changed, moved), "n1", IMAGE) == ""
    # A pod's ordinary holder is not a standby.
    plain = holder_info()
    plain = replace(plain, labels={k: v for k, v in plain.labels.items() if k != LABEL_STANDBY})
    assert usable_standby([plain], app(), "n1", IMAGE) == ""


def test_the_sweep_keeps_a_running_standby_while_its_pod_has_a_container() -> None:
    standby = member_of(holder_info())
    assert standby.standby and standby.holder
    own = Member("c1", "web-1", alive=True)
    dead = Member("c1", "web-1", alive=False)
    assert sweep([standby, own]).holders == ()
    # Its container crashed: the standby is what it restarts in.
    assert sweep([standby, dead]).holders == ()
    # Joined by the replacement: kept as any holder is.
    assert sweep([standby, Member("c2", "web-1", True, joined="h1")]).holders == ()
    # The pod was deleted: no container left, the standby goes.
    assert sweep([standby]).holders == ("h1",)
    assert sweep([standby, Member("c9", "other", True)]).holders == ("h1",)
    # Not running: gone, as any holder.
    assert sweep([replace(standby, alive=False), own]).holders == ("h1",)
    # An agent without standbys removes those an earlier run made.
    assert sweep([standby, own], keep_standbys=False).holders == ("h1",)


def test_only_a_container_with_a_network_of_its_own_is_listed_with_its_pods_standby() -> None:
    own = ContainerInfo("c1", "web", "i", "running", dict(app().labels))
    assert with_standby(own, {"web-1": "h1"}).standby_id == "h1"
    assert with_standby(own, {}).standby_id == ""
    assert with_standby(replace(own, sandbox_id="h0"), {"web-1": "h1"}).standby_id == ""


def test_a_crashed_container_whose_pod_has_a_standby_is_replaced_into_it() -> None:
    config = app()
    dead = ContainerInfo("c1", config.name, "i", "exited", dict(config.labels), exit_code=1)
    assert restart_path(dead, config, immediate=True).in_place
    path = restart_path(replace(dead, standby_id="h1"), config, immediate=True)
    assert (path.in_place, path.why_not) == (False, "its pod's standby sandbox runs")
    # Already joined (a later crash): in place in its sandbox, as with --pod-sandbox.
    joined = replace(dead, standby_id="h1", sandbox_id="h1")
    assert restart_path(joined, config, immediate=True).in_place


def test_holder_digest_label_is_what_usable_standby_compares() -> None:
    assert (
        holder_info().labels[LABEL_SANDBOX]
        == holder_config(app(), "n1", IMAGE).labels[LABEL_SANDBOX]
    )


def _created(config: ContainerConfig, cid: str = "c1", state: str = "running") -> ContainerInfo:
    """The container the runtime creates for `config`: labelled with its standby's facts."""
    labels = config.labels | {LABEL_STANDBY_FACTS: standby_facts(config)}
    return ContainerInfo(cid, config.name, config.image, state, labels)


def test_the_facts_a_container_carries_make_the_standby_its_creator_would_have_made() -> None:
    dns = ResolvConf(("10.0.0.10",), ("default.svc.cluster.local",), ("ndots:5",))
    probed = ContainerSpec(
        "web",
        "pinnace/httpd:latest",
        ports=(ContainerPort(8080), ContainerPort(53, protocol="UDP")),
        readiness_probe=Probe(kind="httpGet", port="9090", path="/healthz"),
    )
    for made in (
        app(),
        container_config("n1", "10.1.2.3", ONE, WEB, 0, resolv=dns),
        container_config("n1", "127.0.0.1", PodAssignment("p", 1, PodSpec((probed,))), probed, 2),
    ):
        rebuilt = standby_from_facts(_created(made))
        assert rebuilt is not None
        assert standby_config(rebuilt, "n1", IMAGE) == standby_config(made, "n1", IMAGE)
        # So a new container of the pod (its config from the agent) joins it.
        standby = ContainerInfo(
            "h", "", IMAGE, "running", standby_config(rebuilt, "n1", IMAGE).labels
        )
        assert usable_standby([standby], made, "n1", IMAGE) == "h"


def test_no_standby_from_missing_or_unreadable_facts() -> None:
    plain = ContainerInfo("c1", "n", "i", "running", dict(app().labels))
    assert standby_from_facts(plain) is None
    for bad in ("", "{", "[]", '{"ports": [[80]]}', '{"ports": [], "dns": [[], []]}'):
        info = replace(plain, labels=plain.labels | {LABEL_STANDBY_FACTS: bad})
        assert standby_from_facts(info) is None


def test_a_running_container_with_facts_and_no_standby_is_adoptable_once() -> None:
    mine = _created(app())
    assert adoptable_standbys([mine], asked=(), tried=()) == [mine]
    assert adoptable_standbys([mine], asked=(mine.pod,), tried=()) == []  # asked already
    assert adoptable_standbys([mine], asked=(), tried=(mine.id,)) == []  # tried already
    assert adoptable_standbys([replace(mine, state="exited")], (), ()) == []
    assert adoptable_standbys([replace(mine, standby_id="h")], (), ()) == []  # has one
    assert adoptable_standbys([replace(mine, sandbox_id="h")], (), ()) == []  # in a sandbox
    # Made by an agent before the facts label: nothing to make its standby of.
    older = ContainerInfo("c2", "n", "i", "running", dict(app().labels))
    assert adoptable_standbys([older], (), ()) == []


def test_a_standby_made_after_a_listing_began_is_known_though_that_listing_missed_it() -> None:
    """A standby made while a listing was under way (its start returned after the listing
    began) is known from its start on: the listing may not show it, or show it created,
    not yet running. A listing begun after it settles it: shown, or gone (removed)."""
    clock = FakeClock()
    began = clock.monotonic()  # a listing begins
    clock.advance(0.2)
    standby = holder_info("s1")
    made = {"s1": (standby, clock.monotonic())}  # its start returned meanwhile
    clock.advance(0.1)  # the listing returns, without it

    holders, remembered = known_holders({}, made, began)
    assert holders == {"s1": standby} and remembered == made
    assert pod_standbys(list(holders.values())) == {"web-1": "s1"}

    # The listing saw it before its start: as made (running), not as listed (created).
    created = replace(standby, state="created")
    holders, _ = known_holders({"s1": created}, made, began)
    assert holders == {"s1": standby}

    # A listing begun after its start shows it if it exists: as listed, and forgotten.
    later = clock.monotonic()
    died = replace(standby, state="exited")
    assert known_holders({"s1": died}, made, later) == ({"s1": died}, {})
    assert pod_standbys([died]) == {}
    assert known_holders({}, made, later) == ({}, {})  # removed meanwhile


def test_a_pods_standby_is_its_running_holder_labelled_standby() -> None:
    sandbox = replace(holder_info("h2", TWO), labels=holder_config(app(TWO), "n1").labels)
    holders = [holder_info("s1"), sandbox, holder_info("s3", FIXED, alive=False)]
    assert pod_standbys(holders) == {"web-1": "s1"}
