"""A pod status write's managedFields are remembered by its form (fieldowners.status_change_form).

Every agent report of a pod's status is the kubelet's status write; at scale thousands a
second go from Pending to Running alike, so their ledgers are computed once per writer,
second, ledger before and form. What must hold: the remembered ledger is the one the
full computation (render both statuses, compare, record) gives each write, for random
pairs of pods over every field render_pod_status reads, in any order; and the form's
knowledge of the rendered status is pinned, so a field added to the rendering fails here
before it can make a remembered ledger wrong.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from master.api import fieldowners
from master.api.fieldowners import _recorded, status_change_form, writer_fields
from master.api.render import render_pod_status
from master.model import (
    Container,
    ContainerPort,
    ContainerStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
)
from master.writers import CONTROLLER_MANAGER, KUBELET, SCHEDULER

NOW = 1_800_000_000.25
SPEC = PodSpec(containers=(Container(name="c", image="nginx:latest", ports=(ContainerPort(80),)),))

_TIMES = [0.0, NOW, NOW + 0.5, NOW + 1.0, NOW - 7.9, NOW + 0.9999995]


def _container(rng: random.Random, name: str) -> ContainerStatus:
    return ContainerStatus(
        name=name,
        state=rng.choice(["running", "waiting", "terminated"]),
        reason=rng.choice(["", "CrashLoopBackOff"]),
        message=rng.choice(["", "boom"]),
        ready=rng.random() < 0.5,
        restart_count=rng.choice([0, 1]),
        container_id=rng.choice(["", "abc", "docker://abc", "def"]),
        image=rng.choice(["nginx:latest", "nginx:1"]),
        exit_code=rng.choice([0, 1]),
        started_at=rng.choice(_TIMES),
        image_note=rng.choice(["", "fell back"]),
        image_id=rng.choice(["", "sha256:1"]),
    )


def _status(rng: random.Random) -> PodStatus:
    ports: list[dict[str, int]] = [
        {},
        {"80/TCP": 30000},
        {"80/TCP": 30001},
        {"80/TCP": 30000, "81/TCP": 30002},
        {"81/TCP": 30002, "80/TCP": 30000},  # (the same map in another order)
        {"81/TCP": 30002},
    ]
    containers = rng.choice(
        [(), ("c",), ("c",), ("c", "d"), ("d", "c"), ("d",)]
    )  # a few shapes, values random
    return PodStatus(
        phase=rng.choice([PodPhase.PENDING, PodPhase.RUNNING, PodPhase.FAILED]),
        reason=rng.choice(["", "ContainerCreating", "Fenced"]),
        message=rng.choice(["", "x"]),
        host_ip=rng.choice(["", "10.0.0.1", "10.0.0.2"]),
        port_map=dict(rng.choice(ports)),
        container_statuses=tuple(_container(rng, n) for n in containers),
        ready=rng.random() < 0.5,
        started_at=rng.choice(_TIMES),
        pod_ip=rng.choice(["", "10.0.0.1", "172.17.0.2"]),
    )


def _pod(rng: random.Random, status: PodStatus | None = None) -> Pod:
    meta = ObjectMeta(
        name="web-1", uid="u1", labels={"app": "web"}, namespace="ns",
        created_at=rng.choice([NOW, NOW - 3.2, NOW + 0.4]),
    )  # fmt: skip
    return Pod(
        meta,
        SPEC,
        owner="Deployment/web",
        template_hash="abc",
        node_name=rng.choice(["", "n1", "n2"]),
        epoch=1,
        status=status if status is not None else _status(rng),
    )


def _ledgers(rng: random.Random) -> list[Any]:
    """Ledgers a pod may carry before a status write: none, its creation's, after an
    earlier status write of the kubelet, and of another writer."""
    base = _pod(rng)
    created = _recorded(None, base, CONTROLLER_MANAGER, "", NOW)
    with_created = _with_ledger(base, created)
    reported = dataclasses.replace(with_created, status=_status(rng))
    after_kubelet = _recorded(with_created, reported, KUBELET, "status", NOW - 1)
    after_scheduler = _recorded(with_created, reported, SCHEDULER, "status", NOW - 2)
    return [(), created, after_kubelet, after_scheduler]


def _with_ledger(pod: Pod, ledger: Any) -> Pod:
    return dataclasses.replace(pod, meta=dataclasses.replace(pod.meta, managed_fields=ledger))


@pytest.mark.parametrize("seed", range(4))
def test_remembered_status_ledgers_are_the_full_computation(seed: int) -> None:
    rng = random.Random(seed)
    fieldowners._STATUS_LEDGERS.clear()
    ledgers = _ledgers(rng)
    writes = 3000
    for _ in range(writes):
        old = _pod(rng)
        if rng.random() < 0.5:
            # A report as agents send them: the same pod, a new status.
            new = dataclasses.replace(old, status=_status(rng))
        elif rng.random() < 0.5:
            # One field of the status changed.
            other = _status(rng)
            name = rng.choice([f.name for f in dataclasses.fields(PodStatus)])
            new = dataclasses.replace(
                old, status=dataclasses.replace(old.status, **{name: getattr(other, name)})
            )
        else:
            new = _pod(rng)
        ledger = rng.choice(ledgers)
        old, new = _with_ledger(old, ledger), _with_ledger(new, ledger)
        writer = rng.choice([KUBELET, SCHEDULER])
        now = rng.choice([NOW, NOW + 0.6, NOW + 1.1])
        assert writer_fields(old, new, writer, "status", now) == _recorded(
            old, new, writer, "status", now
        ), (old, new)
    # Some forms repeat (answered from memory, and still agreed).
    assert len(fieldowners._STATUS_LEDGERS) < writes * 0.95


@pytest.mark.parametrize("seed", range(3))
def test_reports_alike_but_for_their_values_are_remembered_and_agree(seed: int) -> None:
    """Agents' reports: pods of one template, each with its own times, ports, container
    ids, nodes and addresses, reported Running (some not ready, some restarted, some
    failing); the values differ, the forms mostly do not."""
    rng = random.Random(seed)
    fieldowners._STATUS_LEDGERS.clear()
    created = _recorded(None, _pod(rng), CONTROLLER_MANAGER, "", NOW)
    writes = 2000
    for i in range(writes):
        t = NOW + rng.random() * 0.7
        host = rng.choice(["10.0.0.1", "10.0.0.2"])
        meta = ObjectMeta(name=f"web-{i}", uid=f"u{i}", created_at=t - 1, managed_fields=created)
        pending = PodStatus(reason=rng.choice(["", "ContainerCreating"]))
        bound = Pod(meta, SPEC, owner="Deployment/web", node_name=f"n{i}", epoch=1, status=pending)
        ready = rng.random() < 0.8
        running = PodStatus(
            phase=rng.choice([PodPhase.RUNNING, PodPhase.RUNNING, PodPhase.FAILED]),
            host_ip=host,
            port_map={"80/TCP": 30000 + rng.randrange(1000)},
            container_statuses=(
                ContainerStatus(
                    name="c",
                    state="running",
                    ready=ready,
                    image="nginx:latest",
                    restart_count=rng.choice([0, 0, 1]),
                    container_id=f"id{i}",
                    started_at=t,
                ),
            ),
            ready=ready,
            started_at=t,
        )
        new = dataclasses.replace(bound, status=running)
        assert writer_fields(bound, new, KUBELET, "status", NOW) == _recorded(
            bound, new, KUBELET, "status", NOW
        )
    assert len(fieldowners._STATUS_LEDGERS) <= 40


def test_a_second_s_reports_of_one_form_are_rendered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fieldowners._STATUS_LEDGERS.clear()
    rendered: list[str] = []
    real = render_pod_status

    def counting(pod: Pod, network: Any = None) -> dict[str, Any]:
        rendered.append(pod.meta.name)
        return real(pod, network)

    monkeypatch.setattr(fieldowners, "render_pod_status", counting)
    created = _recorded(None, _pod(random.Random(1)), CONTROLLER_MANAGER, "", NOW)
    for i in range(100):
        meta = ObjectMeta(name=f"web-{i}", uid=f"u{i}", created_at=NOW + i / 1000,
                          managed_fields=created)  # fmt: skip
        bound = Pod(meta, SPEC, owner="Deployment/web", node_name=f"n{i % 7}", epoch=1)
        running = PodStatus(
            phase=PodPhase.RUNNING,
            host_ip="127.0.0.1",
            port_map={"80/TCP": 30000 + i},
            container_statuses=(
                ContainerStatus(
                    name="c",
                    state="running",
                    ready=True,
                    image="nginx:latest",
                    container_id=f"id{i}",
                    started_at=NOW + i / 1000,
                ),
            ),
            ready=True,
            started_at=NOW + i / 1000,
        )
        writer_fields(bound, dataclasses.replace(bound, status=running), KUBELET, "status", NOW)
    assert len(rendered) == 2  # the old status and the new, once


def test_the_form_knows_every_field_of_the_rendered_status() -> None:
    """status_change_form reads the model as render_pod_status renders it: a field added
    there must be added to the form (and to this list) before ledgers can be remembered."""
    rng = random.Random(7)
    for _ in range(50):
        pod = _pod(rng)
        status = render_pod_status(pod)
        assert sorted(status) == sorted([
            "phase", "reason", "message", "hostIP", "hostIPs", "podIP", "podIPs", "startTime",
            "conditions", "containerStatuses", "portMap", "endpoints",
        ])  # fmt: skip
        assert [c["type"] for c in status["conditions"]] == [
            "PodScheduled", "ContainersReady", "Ready",
        ]  # fmt: skip
        for c in status["conditions"]:
            assert set(c) <= {"type", "status", "lastProbeTime", "lastTransitionTime", "reason"}
    assert status_change_form(pod, pod) == status_change_form(pod, dataclasses.replace(pod))


def test_a_first_report_s_form_names_what_came() -> None:
    """A pod's first report (no ports, containers or start before): every port came, and
    the containers, endpoints and times changed (the form's short cuts for it give what
    its general comparison gives)."""
    rng = random.Random(3)
    pending = _pod(rng, PodStatus())
    pending = dataclasses.replace(pending, node_name="n1")
    running = dataclasses.replace(
        pending,
        status=PodStatus(
            phase=PodPhase.RUNNING,
            host_ip="10.0.0.1",
            port_map={"81/TCP": 30002, "80/TCP": 30000},
            container_statuses=(_container(rng, "c"),),
            ready=True,
            started_at=NOW + 5,
        ),
    )

    form = status_change_form(pending, running)

    (host_same, started_same, containers_same, endpoints_same, ports, sched_same) = form[3:9]
    assert ports == (("80/TCP", False, True), ("81/TCP", False, True))
    assert not (host_same or started_same or containers_same or endpoints_same or sched_same)
    again = status_change_form(running, dataclasses.replace(running))
    assert again[3:9] == (True, True, True, True, (), True)
