"""What a user's read shows is in the store first: pods held until bound are written before
the answer (ClusterState.durable_for_readers), through the CLI's GetObjects and WatchObjects
and the Kubernetes API's gets, lists and watches.

A new pod waits out of the store until the scheduler binds it (master/write_hold.py): a master
killed -9 after a user listed such a pod forgot it, and its replacement's controllers made the
pod again under another name. A read now writes what is held first; with nothing held it
writes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import make_mocked_request

from kernel.clock import FakeClock
from master.api.cluster_servicer import ClusterServicer
from master.api.kube.api import KubeApi
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Container, ObjectMeta, Pod, PodSpec
from master.state import ClusterState
from master.store import MemoryStore
from protos import cluster_pb2


class CountingStore(MemoryStore):
    """A MemoryStore counting its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, puts: Any, deletes: Any, meta: Any = None) -> None:
        self.writes += 1
        super().write(puts, deletes, meta)


class NoLifecycle:
    def delete_pod(self, name: str, reason: str, message: str, namespace: str = "") -> bool:
        return False

    def forget_node(self, name: str) -> bool:
        return False


def _pod(name: str) -> Pod:
    container = Container(name="c", image="nginx:latest")
    return Pod(meta=ObjectMeta(name=name), spec=PodSpec(containers=(container,)))


def _stored_pods(store: MemoryStore) -> set[str]:
    return {o.meta.name for o in store.load_all() if isinstance(o, Pod)}


def _state() -> tuple[ClusterState, CountingStore]:
    store = CountingStore()
    state = ClusterState(store, FakeClock())
    state.put(_pod("web-1"))  # new and unbound: held (write_hold.py)
    return state, store


async def _cli_get() -> tuple[set[str], set[str]]:
    state, store = _state()
    before = _stored_pods(store)
    servicer = ClusterServicer(
        state, ControllerManager(state, FakeClock(), LeaseTable()), FakeClock()
    )
    reply = await servicer.GetObjects(cluster_pb2.GetObjectsRequest(kind="Pod"), None)
    assert [o.name for o in reply.objects] == ["web-1"]
    return before, _stored_pods(store)


def test_a_pod_the_cli_lists_is_in_the_store_when_the_answer_goes() -> None:
    before, after = asyncio.run(_cli_get())

    assert before == set()  # held until bound
    assert after == {"web-1"}


async def _cli_watch() -> tuple[list[str], set[str]]:
    state, store = _state()
    servicer = ClusterServicer(
        state, ControllerManager(state, FakeClock(), LeaseTable()), FakeClock()
    )
    stream = servicer.WatchObjects(cluster_pb2.WatchObjectsRequest(kind="Pod"), None)
    first = await anext(stream)
    seen = [first.type]
    stored_first = _stored_pods(store)
    state.put(_pod("web-2"))  # created while the watch runs: held
    second = await anext(stream)
    seen.append(second.type)
    stored = _stored_pods(store)
    await stream.aclose()  # type: ignore[attr-defined]
    assert stored_first == {"web-1"}
    return seen, stored


def test_a_pod_a_cli_watch_shows_is_in_the_store_first() -> None:
    seen, stored = asyncio.run(_cli_watch())

    assert seen == ["ADDED", "ADDED"]
    assert stored == {"web-1", "web-2"}


async def _kube_list() -> tuple[int, set[str]]:
    state, store = _state()
    api = KubeApi(state, NoLifecycle(), FakeClock(), "")
    response = await api._dispatch(make_mocked_request("GET", "/api/v1/pods"), "", "pods")
    return response.status, _stored_pods(store)


def test_a_pod_the_kubernetes_api_lists_is_in_the_store_first() -> None:
    status, stored = asyncio.run(_kube_list())

    assert status == 200
    assert stored == {"web-1"}


async def _nothing_held() -> int:
    store = CountingStore()
    state = ClusterState(store, FakeClock())
    state.put(_pod("web-1"))
    await state.flush()
    writes = store.writes
    await state.durable_for_readers()
    return store.writes - writes


def test_a_read_with_no_pod_held_writes_nothing() -> None:
    assert asyncio.run(_nothing_held()) == 0
