"""A container being stopped wants no standby from the moment its stop is asked
(DockerRuntime._forget_standby): a standby round during the stop's grace period, or during
its removal, made a pause container for a pod on its way out, which a later sweep removed
again (issue 15: apply_to_running's next trial shared the engine with it). A fake engine:
the stop blocks until released, a standby round meanwhile is run by hand."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import docker

from agent.containers import container_config
from agent.model import ContainerPort, ContainerSpec, PodAssignment, PodSpec
from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import LABEL_NODE, LABEL_POD, LABEL_STANDBY_FACTS, ContainerConfig
from agent.runtime.sandbox import standby_facts
from tests.support import FakeEngineClient, until_async

POD = PodAssignment(
    "web-1", 3, PodSpec((ContainerSpec("web", "nginx:latest", ports=(ContainerPort(80),)),))
)
CID = "c" * 64


class Api:
    """An engine holding one running container of POD; its stops block until released,
    and every create is written down (a standby holder would be one)."""

    def __init__(self) -> None:
        self.creates: list[str] = []
        self.stopping = threading.Event()
        self.release = threading.Event()

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        if container_id != CID:
            raise docker.errors.NotFound("no such container")
        return {
            "Id": CID,
            "Name": "/pinnace-n1-web-1-web",
            "Config": {"Image": "nginx:latest", "Labels": {LABEL_NODE: "n1", LABEL_POD: "web-1"}},
            "State": {"Status": "running", "Running": True},
            "NetworkSettings": {},
        }

    def stop(self, container_id: str, timeout: int) -> None:
        self.stopping.set()
        assert self.release.wait(30), "never released"

    def create_container(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        self.creates.append(str(kwargs.get("name", "")))
        return {"Id": "h" * 64}

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return dict(kwargs)

    def start(self, container_id: str) -> None:
        pass

    def release_all(self) -> None:
        self.release.set()


def _wanting_a_standby(api: Api, **options: Any) -> tuple[DockerRuntime, ContainerConfig]:
    """A runtime whose pod wants a standby, as after its create (DockerRuntime._create_app_sync),
    with the engine quiet of starts long enough that a standby round would make it now."""
    runtime = DockerRuntime(
        "n1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False, **options
    )
    config = container_config("n1", "127.0.0.1", POD, POD.spec.containers[0], 0)
    runtime._standby_wanted["web-1"] = (CID, config, time.monotonic())
    runtime._quiet_since = time.monotonic() - 60
    return runtime, config


def _stop_with_a_round_meanwhile(
    runtime: DockerRuntime,
    api: Api,
    held_at: threading.Event,
    what: str,
    before_round: Callable[[], None] = lambda: None,
) -> None:
    """Stop CID; once the engine holds the stop at `held_at`, run `before_round` and a
    standby round, then let the engine answer. The pod must have wanted no standby."""

    async def scenario() -> None:
        try:
            stop = asyncio.create_task(runtime.stop(CID, 30))
            await until_async(held_at.is_set, what)
            before_round()
            await asyncio.to_thread(runtime._make_standbys_sync)
            api.release_all()
            await stop
        finally:
            api.release_all()
            await runtime.close()

    asyncio.run(scenario())
    assert api.creates == []
    assert "web-1" not in runtime._standby_wanted


def test_no_standby_is_made_for_a_pod_whose_container_is_being_stopped() -> None:
    api = Api()
    runtime, _ = _wanting_a_standby(api)
    # A standby round while the stop waits out its grace period.
    _stop_with_a_round_meanwhile(runtime, api, api.stopping, "the stop at the engine")


def test_a_listing_during_the_stop_does_not_ask_for_its_standby_again() -> None:
    """A listing taken during the stop's grace period shows the container still running,
    with its standby's facts and no standby: adopting it (sandbox.adoptable_standbys) asked
    for the very standby the stop had dropped, and the next round made it for a pod on its
    way out (apply_to_running: one after each trial's removal)."""
    api = Api()
    runtime, config = _wanting_a_standby(api, pod_sandbox="multi", standby=True)
    attrs = api.inspect_container(CID)
    attrs["Config"]["Labels"][LABEL_STANDBY_FACTS] = standby_facts(config)
    still_running = runtime._info(attrs)

    def listing() -> None:
        with runtime._sandbox_lock:
            runtime._adopt_standbys([still_running], time.monotonic())

    # A listing while the stop waits out its grace period, then a standby round.
    _stop_with_a_round_meanwhile(runtime, api, api.stopping, "the stop at the engine", listing)


class SlowInspectApi(Api):
    """Api whose inspects of the pod's container wait until released, as a busy engine's do."""

    def __init__(self) -> None:
        super().__init__()
        self.inspecting = threading.Event()
        self.inspect_release = threading.Event()

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        if container_id == CID:
            self.inspecting.set()
            assert self.inspect_release.wait(30), "never released"
        return super().inspect_container(container_id)

    def release_all(self) -> None:
        self.inspect_release.set()
        super().release_all()


def test_the_standby_is_forgotten_before_the_stops_inspect_is_answered() -> None:
    """The stop inspects its container first (is it this node's?); a standby round while the
    engine has not answered that inspect yet made the standby for a pod on its way out."""
    api = SlowInspectApi()
    runtime, _ = _wanting_a_standby(api)
    _stop_with_a_round_meanwhile(runtime, api, api.inspecting, "the stop's inspect at the engine")
