"""Which way a crashed container runs again (agent/restart_path.py) and the facts it uses."""

from __future__ import annotations

import dataclasses

from agent.containers import config_hash, container_config
from agent.model import ContainerSpec, EnvVar, PodAssignment, PodSpec
from agent.restart_path import restart_path
from agent.runtime.docker_runtime import log_window
from agent.runtime.port import (
    LABEL_CONFIG_HASH,
    ContainerInfo,
    LogOptions,
    restarted_at,
    restarted_name,
)
from agent.sync import BACKOFF_RESET_AFTER, RestartContainer, sync

NOW = 1_700_000_000.0


def assignment(service_env: tuple[EnvVar, ...] = (), epoch: int = 1) -> PodAssignment:
    # Service variables are not in the spec hash, but a new container would get them.
    spec = PodSpec((ContainerSpec("web", "img"),), service_env=service_env)
    return PodAssignment("p", epoch, spec)


def config(a: PodAssignment | None = None, restart_count: int = 0):  # type: ignore[no-untyped-def]
    a = a or assignment()
    return container_config("n1", "127.0.0.1", a, a.spec.containers[0], restart_count)


def dead(name: str = "pinnace-n1-p-web", state: str = "exited", **labels: str) -> ContainerInfo:
    made = dict(config().labels) | labels
    return ContainerInfo("c1", name, "img", state, made, exit_code=1, started_at=NOW - 5)


def test_an_immediate_restart_of_an_unchanged_exited_container_goes_in_place() -> None:
    # The count differs (it always does: the new one is one higher); the rest is equal.
    assert restart_path(dead(), config(restart_count=1), immediate=True).in_place


def test_every_other_case_is_replaced_and_says_why() -> None:
    cases = {
        "the restart waited out a back-off": (dead(), config(), False),
        "the container is dead, not exited": (dead(state="dead"), config(), True),
        "the container is created, not exited": (dead(state="created"), config(), True),
        "the container was already started again in place once": (
            dead(name=restarted_name("pinnace-n1-p-web", NOW)),
            config(),
            True,
        ),
        "what the container runs with has changed": (
            dead(),
            config(assignment(service_env=(EnvVar("DB_SERVICE_HOST", "10.0.0.9"),))),
            True,
        ),
    }
    for why, (container, wanted, immediate) in cases.items():
        path = restart_path(container, wanted, immediate)
        assert (path.in_place, path.why_not) == (False, why)
    # A container from before the label: replaced.
    old = dead()
    old = dataclasses.replace(
        old, labels={k: v for k, v in old.labels.items() if k != LABEL_CONFIG_HASH}
    )
    assert not restart_path(old, config(), True).in_place


def test_the_config_hash_covers_all_but_name_and_restart_count() -> None:
    base = config()
    assert config_hash(base) == config(restart_count=7).labels[LABEL_CONFIG_HASH]
    assert config_hash(base) == config_hash(dataclasses.replace(base, name="other"))
    assert config_hash(base) != config_hash(config(assignment(epoch=2)))
    assert config_hash(base) != config_hash(dataclasses.replace(base, dns_servers=("10.0.0.10",)))


def test_a_restarted_name_carries_the_restart_and_its_instant() -> None:
    name = restarted_name("pinnace-n1-p-web", NOW + 0.25)
    assert restarted_at(name) == NOW + 0.25 and restarted_at("pinnace-n1-p-web") == 0.0
    info = dataclasses.replace(dead(name=name), labels={"pinnace.restart-count": "3"})
    assert (info.restart_count, info.restarted_at) == (4, NOW + 0.25)
    # Two runs of one container are told apart by their start.
    assert info.run_key != dataclasses.replace(info, started_at=NOW).run_key


def test_the_log_of_a_container_started_again_shows_its_current_run_or_the_one_before() -> None:
    assert log_window(LogOptions(), 0.0, NOW) == {}
    assert log_window(LogOptions(), NOW - 3, NOW) == {"since": NOW - 3}
    assert log_window(LogOptions(until=NOW - 3), NOW - 3, NOW) == {"until": NOW - 3}
    # sinceSeconds: the later of the two starts.
    assert log_window(LogOptions(since_seconds=10), NOW - 3, NOW) == {"since": NOW - 3}
    assert log_window(LogOptions(since_seconds=1), NOW - 3, NOW) == {"since": NOW - 1}


def test_sync_says_when_a_restart_is_immediate() -> None:
    a = assignment()
    exited = dataclasses.replace(
        dead(), started_at=NOW - 5, finished_at=NOW - 1, labels=dict(config(a).labels)
    )
    first = sync({"p": a}, [exited], NOW, {})
    (restart,) = first.actions
    assert isinstance(restart, RestartContainer) and restart.immediate and restart.dead == exited
    # The same container again, a second run that died: it backs off, then restarts late.
    again = dataclasses.replace(exited, started_at=NOW + 0.1, finished_at=NOW + 0.2)
    waiting = sync({"p": a}, [again], NOW + 0.3, first.backoff)
    assert waiting.actions == ()
    assert waiting.backoff[("p", "web")].waiting_reason == "CrashLoopBackOff"
    (late,) = sync({"p": a}, [again], NOW + 1.3, waiting.backoff).actions
    assert isinstance(late, RestartContainer) and not late.immediate
    assert late.restart_count == 2
    # Ten minutes of running resets the back-off: immediate again.
    long = dataclasses.replace(again, started_at=NOW, finished_at=NOW + BACKOFF_RESET_AFTER + 1)
    (reset,) = sync({"p": a}, [long], NOW + BACKOFF_RESET_AFTER + 2, waiting.backoff).actions
    assert isinstance(reset, RestartContainer) and reset.immediate
