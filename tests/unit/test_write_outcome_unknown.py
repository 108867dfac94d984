"""A write etcd neither confirmed nor refused is not reported as "nothing was changed".

etcd may commit a transaction it did not answer in time once its quorum returns (a scale
the master refused during a quorum loss created its pod afterwards, test_ha_agent). The
quorum read before each transaction narrows that to a quorum lost between the two calls;
there the store raises OutcomeUnknown and marks itself in doubt (the leader then pauses and
reloads: test_leader_elector), the client hears that the change may or may not have been
saved (504 Timeout through the Kubernetes API, as Kubernetes answers), and a later write of
the store's own settles it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from master.api.kube.resources import by_kind
from master.api.kube.writes import app_error
from master.app.errors import AppError, commit
from master.model import ObjectMeta, Pod, PodSpec
from master.store.etcd import EtcdStore
from master.store.etcd_client import EtcdSettings
from master.store.port import NotLeaderError, OutcomeUnknown, StoreError, WritesInDoubt

TIMED_OUT = (
    "etcd at http://127.0.0.1:2379 did not answer within 5s (has its cluster lost quorum?); "
    "a write may or may not have been applied"
)


class _Header:
    revision = 7


class _Reply:
    def __init__(self, succeeded: bool = True) -> None:
        self.succeeded = succeeded
        self.header = _Header()
        self.kvs: list[Any] = []
        self.responses: list[Any] = []


class _QuorumLostMidway:
    """Answers the schema check and the quorum read, then times out on the transaction
    (the quorum lost in the moment between the two calls) until `back` is set."""

    def __init__(self) -> None:
        self.back = False
        self.puts: list[bytes] = []
        self.schema_checked = False

    def range(self, key: bytes, range_end: bytes = b"", **_: Any) -> _Reply:
        return _Reply()

    def txn(self, compare: Any, success: Any, failure: Any) -> _Reply:
        if not self.schema_checked:
            self.schema_checked = True
            return _Reply(succeeded=True)
        if not self.back:
            raise StoreError(TIMED_OUT)
        self.puts += [bytes(op.request_put.key) for op in success]
        return _Reply(succeeded=True)

    def close(self) -> None:
        pass


def _store() -> tuple[EtcdStore, _QuorumLostMidway]:
    client = _QuorumLostMidway()
    store = EtcdStore(EtcdSettings(endpoints=("http://127.0.0.1:2379",)), client)  # type: ignore[arg-type]
    return store, client


def _pod() -> Pod:
    return Pod(meta=ObjectMeta(name="web-1", uid="uid-web-1"), spec=PodSpec(containers=()))


def test_a_transaction_etcd_did_not_answer_is_an_unknown_outcome_and_the_store_in_doubt() -> None:
    store, _client = _store()

    with pytest.raises(OutcomeUnknown, match="was not confirmed") as raised:
        store.write([_pod()], [])

    assert "may or may not" in str(raised.value)
    assert store.in_doubt


def test_a_refused_quorum_read_is_no_doubt() -> None:
    store, client = _store()

    def no_quorum(key: bytes, range_end: bytes = b"", **_: Any) -> _Reply:
        raise StoreError(TIMED_OUT)

    client.range = no_quorum  # type: ignore[method-assign]

    with pytest.raises(StoreError, match="nothing was sent") as raised:
        store.write([_pod()], [])

    assert not isinstance(raised.value, OutcomeUnknown)
    assert not store.in_doubt


def test_a_settling_write_clears_the_doubt_only_once_etcd_takes_it() -> None:
    store, client = _store()
    with pytest.raises(OutcomeUnknown):
        store.write([_pod()], [])

    with pytest.raises(StoreError):
        store.settle()
    assert store.in_doubt

    client.back = True
    store.settle()

    assert not store.in_doubt
    assert client.puts == [store.meta_key("settled")]


def test_no_write_is_sent_while_in_doubt_and_the_refusal_is_retryable() -> None:
    store, client = _store()
    with pytest.raises(OutcomeUnknown):
        store.write([_pod()], [])
    client.back = True  # etcd answers again, but nothing settled the unknown write yet

    # The queue could hold an older copy of a key that write changed: sending it would
    # adopt the unknown write's value as the store's own and write over it.
    with pytest.raises(WritesInDoubt, match="nothing was sent") as raised:
        store.write([_pod()], [])

    assert isinstance(raised.value, NotLeaderError)  # the client hears "retry", not "failed"
    assert client.puts == []
    store.settle()
    store.write([_pod()], [])
    assert client.puts[-1] == store.object_key("Pod", "default/web-1")


class _StateWhoseStoreTimedOut:
    async def commit(self, plan: Any) -> Any:
        raise OutcomeUnknown(f"writing a batch (1 puts, 0 deletes) was not confirmed: {TIMED_OUT}")


def test_the_client_hears_the_change_may_or_may_not_have_been_saved() -> None:
    with pytest.raises(AppError) as raised:
        asyncio.run(commit(_StateWhoseStoreTimedOut(), lambda: None))  # type: ignore[arg-type]

    error = raised.value
    assert error.code == "outcome_unknown"
    assert error.message.startswith("the change may or may not have been saved: ")
    assert "nothing was changed" not in error.message
    assert "check with `pinnace get` before retrying" in error.message


def test_the_kubernetes_api_answers_504_timeout_as_kubernetes_does() -> None:
    error = AppError("outcome_unknown", "the change may or may not have been saved: x")

    answer = app_error(error, by_kind("Deployment"), "web")

    assert (answer.code, answer.reason) == (504, "Timeout")
