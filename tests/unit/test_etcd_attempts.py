"""EtcdClient's attempts against a member whose answers come slowly (no etcd, no network).

A call is tried on one member for _ATTEMPT_S, then on the next, until its timeout: a member
that lost its leader drops a proposal silently, and the next member answers. But an answer
that honestly takes longer than one attempt (a page of 1,000 objects from an etcd at load
40) was cut at 1 s on every try, and the read failed after 5 s "not answered" (a CI run at
load 40). Each round over the members now gives its attempts twice as long as the last.
The stub below takes `need` seconds of a fake clock to answer, or times out.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest

from master.store import StoreError
from master.store.etcd_client import EtcdClient, EtcdSettings, attempt_timeout


class _Deadline(grpc.RpcError):  # type: ignore[misc]
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "Deadline Exceeded"


class _SlowMember:
    """A member whose Range takes `need` seconds of the fake clock; it records each try."""

    def __init__(self, clock: list[float], need: float) -> None:
        self.clock, self.need = clock, need
        self.tries: list[float] = []

    def Range(self, request: Any, timeout: float) -> str:
        self.tries.append(timeout)
        if timeout < self.need:
            self.clock[0] += timeout
            raise _Deadline()
        self.clock[0] += self.need
        return "page"


def _client(monkeypatch: pytest.MonkeyPatch, need: float, endpoints: int = 1) -> Any:
    # The client reads time.monotonic and sleeps through time.sleep: both on a fake clock
    # for the length of one test (nothing else runs in it).
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    urls = tuple(f"http://127.0.0.1:{2379 + i}" for i in range(endpoints))
    client = EtcdClient(EtcdSettings(urls, timeout=5.0))
    member = _SlowMember(clock, need)
    monkeypatch.setattr(client, "_stub", lambda service: member)
    return client, member


def test_an_answer_slower_than_one_attempt_still_comes_within_the_calls_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, member = _client(monkeypatch, need=1.5)

    assert client.range(b"/k") == "page"  # before: 1 s per try, 5 tries, StoreError

    assert member.tries == [1.0, 2.0]


def test_a_call_no_member_answers_in_time_still_fails_at_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, member = _client(monkeypatch, need=60.0)

    with pytest.raises(StoreError, match="did not answer within 5s"):
        client.range(b"/k")

    assert member.clock[0] == pytest.approx(5.0)  # the call's timeout, not later
    assert member.tries[:2] == [1.0, 2.0]


def test_the_first_round_over_the_members_keeps_one_second_each() -> None:
    # A member that lost its leader is left after 1 s, as before: the next may answer.
    assert [attempt_timeout(t, 3, 10.0) for t in range(7)] == [1, 1, 1, 2, 2, 2, 4]
    assert attempt_timeout(4, 1, 0.3) == 0.3  # never past the call's deadline
