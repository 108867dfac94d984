"""DockerRuntime.ensure_image against a fake engine: imagePullPolicy Always tries the pull
at once, beside the inspect that says whether there is an image to fall back on (issue 15:
a `:latest` pod waited for the inspect, then the pull, on its way to its create)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import docker.errors
import pytest

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import ImagePullError
from tests.support import FakeEngineClient

IMAGE = "web:latest"


class Api:
    """inspect_image answers only once a pull has been asked (or after `hold` seconds)."""

    def __init__(self, present: bool, registry: bool = False, hold: float = 5.0) -> None:
        self.present = present
        self.registry = registry
        self.hold = hold
        self.pulled = threading.Event()
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def _record(self, call: str) -> None:
        with self._lock:
            self.calls.append(call)

    def inspect_image(self, image: str) -> dict[str, Any]:
        if not self.pulled.is_set():
            self.pulled.wait(self.hold)
            self._record("inspect" if self.pulled.is_set() else "inspect before any pull")
        else:
            self._record("inspect")
        if not self.present:
            raise docker.errors.ImageNotFound(f"no such image: {image}")
        return {"Id": "sha256:1"}

    def pull(self, repository: str, tag: str) -> None:
        self._record(f"pull {repository}:{tag}")
        self.pulled.set()
        if not self.registry:
            raise docker.errors.APIError("lookup registry-1.docker.io: no such host")
        self.present = True


def _ensure(api: Api, policy: str) -> str:
    runtime = DockerRuntime("node-1", client_factory=lambda: FakeEngineClient(api))

    async def scenario() -> str:
        try:
            return await asyncio.wait_for(runtime.ensure_image(IMAGE, policy), 30)
        finally:
            await runtime.close()

    return asyncio.run(scenario())


def test_always_tries_the_pull_without_waiting_for_the_inspect() -> None:
    api = Api(present=True)

    note = _ensure(api, "Always")

    assert note.startswith(f"could not pull {IMAGE} (")
    assert note.endswith("using the image already on the node")
    assert "pull web:latest" in api.calls
    assert "inspect before any pull" not in api.calls


def test_always_without_the_image_or_a_registry_fails() -> None:
    with pytest.raises(ImagePullError, match="no such host"):
        _ensure(Api(present=False), "Always")


def test_always_uses_what_it_pulled() -> None:
    api = Api(present=False, registry=True)

    assert _ensure(api, "Always") == ""
    assert api.calls.count("pull web:latest") == 1


def test_if_not_present_pulls_only_what_is_missing() -> None:
    present = Api(present=True, hold=0)
    missing = Api(present=False, registry=True, hold=0)

    assert _ensure(present, "IfNotPresent") == ""
    assert _ensure(missing, "IfNotPresent") == ""
    assert not any(c.startswith("pull") for c in present.calls)
    assert missing.calls.count("pull web:latest") == 1
    with pytest.raises(ImagePullError, match="Never"):
        _ensure(Api(present=False, hold=0), "Never")
