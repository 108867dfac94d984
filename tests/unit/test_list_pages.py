"""Lists of large objects: paged replies for the CLI, a clear refusal for an unpaged one.

400 pods of a 200 KB template are a legal cluster, and 80 MB is more than one
gRPC reply may carry. The pure paging rules are checked with plain numbers; the
servicer's GetObjects over a real ClusterState (limits scaled down so the test
stays small) shows both paths end to end.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import grpc
import pytest

from kernel.clock import FakeClock
from master.api import cluster_servicer
from master.api.cluster_servicer import ClusterServicer
from master.app import paging
from master.app.errors import AppError
from master.app.paging import check_reply_size, next_page
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Container, EnvVar, ObjectMeta, Pod, PodSpec
from master.state import ClusterState
from master.store import MemoryStore
from protos import cluster_pb2

KIB = 1024


def _sizes(*sizes: int) -> Any:
    return lambda i: sizes[i]


def test_pages_stay_within_the_budget_and_resume_after_the_last_name() -> None:
    names = ["a", "b", "c", "d", "e"]
    size = _sizes(40, 40, 40, 40, 40)

    first = next_page(names, size, "", budget=100)
    second = next_page(names, size, first[2], budget=100)
    last = next_page(names, size, second[2], budget=100)

    assert first == (0, 2, "n:b") and second == (2, 4, "n:d") and last == (4, 5, "")
    # an object bigger than a page still comes, alone
    assert next_page(["big", "small"], _sizes(500, 1), "", budget=100) == (0, 1, "n:big")


def test_a_name_token_survives_objects_deleted_meanwhile_and_events_resume_by_index() -> None:
    assert next_page(["a", "c", "e"], _sizes(1, 1, 1), "n:b", budget=100) == (1, 3, "")
    events = ["web.2", "web.1", "db.3"]  # time order, not name order
    assert next_page(events, _sizes(60, 60, 60), "", budget=100) == (0, 1, "i:1")
    assert next_page(events, _sizes(60, 60, 60), "i:1", budget=100) == (1, 2, "i:2")
    with pytest.raises(AppError, match="is not valid; list from the start"):
        next_page(events, _sizes(1, 1, 1), "x:junk")


def test_an_unpaged_reply_too_big_to_send_is_refused_with_what_to_do() -> None:
    check_reply_size(64 * 2**20, 64 * 2**20, "pods")
    with pytest.raises(AppError) as err:
        check_reply_size(80 * 2**20, 64 * 2**20, "pods")
    assert err.value.code == "resource_exhausted"
    assert err.value.message == (
        "the list of pods is 80.0 MiB, more than the 64 MiB one reply may carry; list it in "
        "pages (pinnace get does), or narrow it with a name or a label selector (-l)"
    )


class _Aborted(Exception):
    pass


class _Context:
    code: grpc.StatusCode | None = None
    details = ""

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.code, self.details = code, details
        raise _Aborted(details)


def test_get_pods_of_a_large_cluster_pages_and_an_unpaged_get_says_why_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 40 pods of a 20 KB template against a 256 KiB reply limit and 64 KiB pages: the
    # shape of 400 pods of 200 KB against 64 MiB, a hundred times smaller.
    monkeypatch.setattr(cluster_servicer, "REPLY_LIMIT", 256 * KIB)
    monkeypatch.setattr(paging, "PAGE_BYTES", 64 * KIB)
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    big = Container(name="web", image="nginx:1", env=(EnvVar("BLOB", "x" * 20 * KIB),))
    for i in range(40):
        state.put(Pod(meta=ObjectMeta(name=f"web-{i:02}"), spec=PodSpec(containers=(big,))))
    leases = LeaseTable()
    servicer = ClusterServicer(state, ControllerManager(state, clock, leases), clock)

    async def get(request: cluster_pb2.GetObjectsRequest) -> Any:
        context: Any = _Context()
        try:
            return await servicer.GetObjects(request, context)
        except _Aborted:
            return context

    refused = asyncio.run(get(cluster_pb2.GetObjectsRequest(kind="Pod")))
    names: list[str] = []
    sizes: list[int] = []
    request = cluster_pb2.GetObjectsRequest(kind="Pod", paged=True)
    while True:
        reply = asyncio.run(get(request))
        names += [o.name for o in reply.objects]
        sizes.append(reply.ByteSize())
        if not reply.continue_token:
            break
        request.continue_token = reply.continue_token

    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "the list of pods is " in refused.details and "list it in pages" in refused.details
    assert names == [f"web-{i:02}" for i in range(40)]
    assert len(sizes) > 4 and max(sizes) <= 64 * KIB + 1024
