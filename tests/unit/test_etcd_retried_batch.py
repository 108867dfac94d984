"""A batch whose own earlier attempt was applied is written, not "kept changing under it".

EtcdClient retries a transaction on a slow answer (master/store/etcd_client.py), and the
first attempt may have been applied: the retry's compares then fail on the store's own
write. EtcdStore adopted such keys and sent the transaction again, up to three times; a
2,500-object batch at load 38 was retried so every time and the write failed with "etcd
kept changing under it" (test_store_etcd in a loaded run). When every key already holds the
batch, the batch is in etcd: the write succeeds.
"""

from __future__ import annotations

from typing import Any

from aetcd.rpc import kv_pb2, rpc_pb2

from master.model import ObjectMeta, Pod, PodSpec
from master.store.codec import encode
from master.store.etcd import EtcdStore
from master.store.etcd_client import EtcdSettings


class _EarlierAttemptApplied:
    """etcd where each transaction of the store was already applied by an attempt the
    client retried: the compares fail, and the reads show the batch's own values."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.transactions = 0
        self.revision = 1

    def range(self, key: bytes, range_end: bytes = b"", **_: Any) -> Any:
        return rpc_pb2.RangeResponse()

    def txn(self, compare: Any, success: Any, failure: Any) -> Any:
        self.transactions += 1
        if self.transactions == 1:  # the schema check
            return rpc_pb2.TxnResponse(succeeded=True)
        self.revision += 1
        for op in success:
            self.data[bytes(op.request_put.key)] = bytes(op.request_put.value)
        reads = [
            rpc_pb2.ResponseOp(
                response_range=rpc_pb2.RangeResponse(
                    kvs=[
                        kv_pb2.KeyValue(
                            key=op.request_range.key,
                            value=self.data[bytes(op.request_range.key)],
                            mod_revision=self.revision,
                        )
                    ]
                )
            )
            for op in failure
        ]
        return rpc_pb2.TxnResponse(succeeded=False, responses=reads)

    def close(self) -> None:
        pass


def test_a_batch_its_own_retried_attempt_applied_is_written() -> None:
    etcd = _EarlierAttemptApplied()
    store = EtcdStore(EtcdSettings(endpoints=("http://127.0.0.1:2379",)), etcd)  # type: ignore[arg-type]
    pods = [
        Pod(meta=ObjectMeta(name=f"web-{i}", uid=f"uid-{i}"), spec=PodSpec(containers=()))
        for i in range(3)
    ]

    store.write(pods, [], meta={"resource_version": "3"})

    assert etcd.transactions == 2  # accepted as written, not sent again
    assert etcd.data[store.object_key("Pod", "default/web-1")] == encode(pods[1])
