"""Lists without holding the loop (master/api/kube/listing.py): cached renderings reused by
object identity, chunks with yields between them, and a body byte for byte what json.dumps
of the whole list gives -- through KubeApi._list on a real ClusterState."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import make_mocked_request

from kernel.clock import FakeClock
from master.api.kube import listing, objects
from master.api.kube.api import KubeApi
from master.api.kube.resources import resource
from master.api.kube.tables import render_table
from master.model import ConfigMap, Node, NodeStatus, ObjectMeta, Resources
from master.state import ClusterState
from master.store import MemoryStore


class NoLifecycle:
    def delete_pod(self, name: str, reason: str, message: str, namespace: str = "") -> bool:
        return False

    def forget_node(self, name: str) -> bool:
        return False


def node(i: int) -> Node:
    return Node(
        meta=ObjectMeta(name=f"node-{i:04d}", uid=f"uid-{i}", labels={"rack": str(i % 3)}),
        address="10.0.0.1",
        capacity=Resources(8000, 16 << 30),
        allocatable=Resources(8000, 16 << 30),
        status=NodeStatus(ready=True, last_heartbeat=1.7e9, last_transition=1.7e9),
    )


def api_with(count: int) -> tuple[KubeApi, ClusterState]:
    state = ClusterState(MemoryStore(), FakeClock())
    for i in range(count):
        state.put(node(i))
    return KubeApi(state, NoLifecycle(), FakeClock(), ""), state


async def list_nodes(api: KubeApi, query: str = "") -> tuple[int, bytes]:
    request = make_mocked_request("GET", "/api/v1/nodes" + query)
    nodes = resource("", "nodes")
    assert nodes is not None
    response = await api._list(request, nodes, None)
    body = response.body
    assert isinstance(body, bytes)
    return response.status, body


def test_encode_list_is_json_dumps_of_the_whole_list() -> None:
    items: list[dict[str, Any]] = [{"a": 1, "é": ["x", None]}, {"b": {"c": 2.5}}]
    head: dict[str, Any] = {"apiVersion": "v1", "kind": "NodeList", "metadata": {"x": "1"}}
    expected = json.dumps({**head, "items": items}, separators=(",", ":")).encode()
    assert listing.encode_list(head, [listing.encode(i) for i in items]) == expected
    assert listing.encode_list({}, []) == json.dumps({"items": []}, separators=(",", ":")).encode()


def test_a_list_yields_to_the_loop_between_chunks_and_answers_as_before() -> None:
    api, state = api_with(1000)
    expected_items = objects.list_kind(state, "Node", 0.0, 0.0)

    async def scenario() -> tuple[int, int, bytes]:
        ticks = 0
        listing_done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not listing_done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        status, body = await list_nodes(api)
        listing_done.set()
        await task
        return status, ticks - before, body

    status, ticks_during, body = asyncio.run(scenario())
    assert status == 200
    # 1,000 nodes to render, CHUNK at a time: the other task ran between the chunks.
    assert ticks_during >= 1000 // listing.CHUNK - 1
    listed = json.loads(body)
    assert listed["items"] == expected_items
    assert listed["kind"] == "NodeList" and listed["metadata"]["resourceVersion"]


def test_a_second_list_reuses_the_rendered_nodes_until_one_changes() -> None:
    api, state = api_with(300)

    async def scenario() -> None:
        _, first = await list_nodes(api)
        assert len(api.rendered) == 300
        calls: list[str] = []
        original = objects.render

        def counting(obj: Any, now: float, st: ClusterState) -> dict[str, Any]:
            calls.append(obj.meta.name)
            return original(obj, now, st)

        objects.render = counting  # type: ignore[assignment]
        try:
            _, second = await list_nodes(api)
            assert calls == [] and second == first
            current = state.get("Node", "node-0007")
            assert isinstance(current, Node)
            state.put(replace(current, unschedulable=True))
            state.remove("Node", "node-0009")
            _, third = await list_nodes(api)
        finally:
            objects.render = original
        assert calls == ["node-0007"]
        items = json.loads(third)["items"]
        assert len(items) == 299 and len(api.rendered) == 299
        assert [
            i["spec"]["unschedulable"] for i in items if i["metadata"]["name"] == "node-0007"
        ] == [True]

    asyncio.run(scenario())


def test_selectors_and_pages_cut_the_cached_bytes_alike() -> None:
    api, _ = api_with(250)

    async def scenario() -> None:
        await list_nodes(api)
        _, selected = await list_nodes(api, "?labelSelector=rack%3D1&limit=20")
        page = json.loads(selected)
        assert [i["metadata"]["labels"]["rack"] for i in page["items"]] == ["1"] * 20
        assert page["metadata"]["remainingItemCount"] == 83 - 20
        token = page["metadata"]["continue"]
        _, rest = await list_nodes(api, f"?labelSelector=rack%3D1&continue={token}")
        names = [i["metadata"]["name"] for i in page["items"] + json.loads(rest)["items"]]
        assert names == [f"node-{i:04d}" for i in range(250) if i % 3 == 1]

    asyncio.run(scenario())


def test_objects_whose_rendering_reads_others_are_not_cached() -> None:
    cache = listing.RenderedCache()
    owned = ConfigMap(meta=ObjectMeta(name="c"))
    plain = ConfigMap(meta=ObjectMeta(name="d"))
    cache.put(owned, {"metadata": {"ownerReferences": [{"kind": "Deployment"}]}}, b"{}")
    cache.put(plain, {"metadata": {}}, b"{}")
    assert cache.get(owned) is None
    assert cache.get(plain) == ({"metadata": {}}, b"{}")
    # Pods and events read the time and other objects: never cached.
    assert "Pod" not in listing.SELF_CONTAINED and "Event" not in listing.SELF_CONTAINED
    # Same name and content, another object: not the cached one.
    assert cache.get(replace(plain)) is None


def test_the_table_form_is_built_in_chunks_and_equals_the_whole_table() -> None:
    api, state = api_with(250)
    items = objects.list_kind(state, "Node", 0.0, 0.0)

    async def scenario() -> tuple[bytes, int]:
        request = make_mocked_request(
            "GET",
            "/api/v1/nodes",
            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        )
        nodes = resource("", "nodes")
        assert nodes is not None
        yields = 0
        sleep = asyncio.sleep

        async def counted(delay: float) -> None:
            nonlocal yields
            yields += 1
            await sleep(delay)

        listing.asyncio.sleep = counted  # type: ignore[attr-defined]
        try:
            response = await api._list(request, nodes, None)
        finally:
            listing.asyncio.sleep = sleep  # type: ignore[attr-defined]
        assert isinstance(response.body, bytes)
        return response.body, yields

    body, yields = asyncio.run(scenario())
    table = render_table("Node", items, 0.0, str(state.resource_version))
    assert body == json.dumps(table, separators=(",", ":")).encode()
    # 250 nodes rendered in 3 chunks, then their rows in 3: two yields each.
    assert yields == 4
