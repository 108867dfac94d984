"""DockerRuntime.create_and_start with the pod's image step still under way, against a fake
engine: the create goes at once, the start only once the step (the pull) has decided, and
from the image it left (issue 15: the `:latest` pull, which fails where no registry
answers, used to stand before the create on the way to a running pod)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import replace
from typing import Any

import docker.errors
import pytest

from agent.runtime.docker_runtime import _WAITING_STARTS_MAX, DockerRuntime
from agent.runtime.port import LABEL_NODE, ContainerConfig, ImagePullError
from tests.support import FakeEngineClient

IMAGE = "web:latest"
HOLD = 5.0


class Api:
    """An engine whose pull ends only once a create was asked (or after HOLD seconds)."""

    def __init__(self, present: str = "", registry: str = "") -> None:
        # The image id the node has for IMAGE ("": none), and the one a registry serves.
        self.present = present
        self.registry = registry
        self.created = threading.Event()
        self.calls: list[str] = []
        self.images: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _record(self, call: str) -> None:
        with self._lock:
            self.calls.append(call)

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        if not self.present:
            self._record("create: no such image")
            self.created.set()
            raise docker.errors.ImageNotFound(f"No such image: {kwargs['image']}")
        cid = f"c{next(self._ids)}"
        self.images[cid] = self.present
        self._record(f"create {cid} from {self.present}")
        self.created.set()
        return {"Id": cid}

    def start(self, container_id: str) -> None:
        self._record(f"start {container_id}")

    def remove_container(self, container_id: str, force: bool = False) -> None:
        self._record(f"remove {container_id}")

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return {
            "Id": container_id,
            "Name": "/pinnace-node-1-p-web",
            "Image": self.images[container_id],
            "Config": {"Image": IMAGE, "Labels": {LABEL_NODE: "node-1"}},
            "State": {"Status": "running", "Running": True},
            "NetworkSettings": {},
        }

    def inspect_image(self, image: str) -> dict[str, Any]:
        if not self.present:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return {"Id": self.present}

    def pull(self, repository: str, tag: str) -> None:
        if not self.created.wait(HOLD):
            self._record("pull ended before any create")
        if not self.registry:
            self._record("pull failed")
            raise docker.errors.APIError("lookup registry-1.docker.io: no such host")
        self.present = self.registry
        self._record(f"pulled {self.registry}")


CONFIG = ContainerConfig(name="pinnace-node-1-p-web", image=IMAGE, labels={LABEL_NODE: "node-1"})


def _start(api: Api, policy: str) -> str:
    """Starts CONFIG beside ensure_image(IMAGE, policy); the started container's id."""
    runtime = DockerRuntime(
        "node-1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False
    )

    async def scenario() -> str:
        try:
            step = asyncio.ensure_future(runtime.ensure_image(IMAGE, policy))
            info = await asyncio.wait_for(runtime.create_and_start(CONFIG, step), 30)
            return info.id
        finally:
            await runtime.close()

    return asyncio.run(scenario())


def test_no_registry_the_create_goes_beside_the_pull_and_the_start_after_it() -> None:
    api = Api(present="sha256:local")

    started = _start(api, "Always")

    assert started == "c1"
    assert api.calls == ["create c1 from sha256:local", "pull failed", "start c1"]


def test_a_pull_that_brings_another_image_makes_the_container_again_from_it() -> None:
    api = Api(present="sha256:old", registry="sha256:new")

    started = _start(api, "Always")

    assert started == "c2"
    assert api.calls == [
        "create c1 from sha256:old",
        "pulled sha256:new",
        "remove c1",
        "create c2 from sha256:new",
        "start c2",
    ]


def test_a_pull_that_brings_the_same_image_starts_the_container_made_beside_it() -> None:
    api = Api(present="sha256:same", registry="sha256:same")

    assert _start(api, "Always") == "c1"
    assert api.calls == ["create c1 from sha256:same", "pulled sha256:same", "start c1"]


def test_an_absent_image_is_created_once_the_pull_brought_it() -> None:
    api = Api(registry="sha256:new")

    assert _start(api, "IfNotPresent") == "c1"
    assert api.calls == [
        "create: no such image",
        "pulled sha256:new",
        "create c1 from sha256:new",
        "start c1",
    ]


def test_an_absent_image_no_registry_has_fails_the_start_as_a_pull_and_makes_nothing() -> None:
    api = Api()

    with pytest.raises(ImagePullError, match="no such host"):
        _start(api, "IfNotPresent")
    assert api.calls == ["create: no such image", "pull failed"]


def test_starts_beyond_the_bound_wait_for_their_pull_before_taking_an_engine_thread() -> None:
    # Each start waiting beside its pull holds one of the runtime's engine threads, which
    # the pull itself needs: unbounded, 64 pods assigned at once would hold them all.
    api = Api(present="sha256:local")
    api.created.set()  # no pull here: the steps are the test's own futures
    runtime = DockerRuntime(
        "node-1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False
    )
    pods = 40

    async def scenario() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        steps: list[asyncio.Future[str]] = [loop.create_future() for _ in range(pods)]
        configs = [replace(CONFIG, name=f"pinnace-node-1-p{i}-web") for i in range(pods)]
        starts = [
            asyncio.ensure_future(runtime.create_and_start(c, s))
            for c, s in zip(configs, steps, strict=True)
        ]
        try:
            # The first starts go beside their pulls, up to the bound; once their pulls
            # ended and they ran, the others have still made nothing: they wait for theirs.
            for step in steps[:_WAITING_STARTS_MAX]:
                step.set_result("")
            await asyncio.wait_for(asyncio.gather(*starts[:_WAITING_STARTS_MAX]), 30)
            made_before = sum(c.startswith("create") for c in api.calls)
            for step in steps[_WAITING_STARTS_MAX:]:
                step.set_result("")
            started = await asyncio.wait_for(asyncio.gather(*starts), 30)
            return made_before, len({info.id for info in started})
        finally:
            await asyncio.gather(*starts, return_exceptions=True)
            await runtime.close()

    assert asyncio.run(scenario()) == (_WAITING_STARTS_MAX, pods)
