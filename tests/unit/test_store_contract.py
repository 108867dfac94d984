"""The Store contract, run against every implementation (MemoryStore and SqliteStore
here; EtcdStore on a real etcd in tests/integration/test_store_etcd.py), plus what
only the SQLite file can promise: durability across reopen and processes, and
refusing files that are not ours or are too new."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

import master.store.etcd
import master.store.memory
import master.store.sqlite
from master.model import (
    Container,
    ContainerState,
    ContainerStatus,
    Deployment,
    Event,
    Node,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    PodTemplate,
    Resources,
    Service,
    ServicePort,
    StoredObject,
)
from master.store import SCHEMA_VERSION, MemoryStore, SqliteStore, Store, StoreError
from master.store.codec import encode

REPO = Path(__file__).resolve().parents[2]

StoreFactory = Callable[[], Store]


def pod(name: str, rv: int = 1, **status: Any) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name, uid=f"uid-{name}", labels={"app": "web"}, resource_version=rv),
        spec=PodSpec(containers=(Container("web", "nginx", requests=Resources(100, 1 << 20)),)),
        owner="web",
        node_name="node-1",
        status=PodStatus(
            port_map={"80/TCP": 32000},
            container_statuses=(ContainerStatus("web", state=ContainerState.RUNNING, ready=True),),
            **status,
        ),
    )


def one_of_each() -> list[StoredObject]:
    spec = PodSpec(containers=(Container("web", "nginx"),))
    return [
        Deployment(ObjectMeta("web"), 2, {"app": "web"}, PodTemplate({"app": "web"}, spec)),
        Service(ObjectMeta("web"), {"app": "web"}, (ServicePort(80, "80"),)),
        pod("web-1"),
        Node(ObjectMeta("node-1"), "10.0.0.1", Resources(2000, 1 << 30), Resources(2000, 1 << 30)),
        Event(ObjectMeta("web-1.1"), "Pod", "web-1", "Scheduled", "assigned to node-1"),
    ]


def by_key(objects: list[StoredObject]) -> dict[tuple[str, str], StoredObject]:
    return {(o.kind, o.meta.name): o for o in objects}


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory for the store under test; for SQLite every call opens the same file."""
    opened: list[Store] = []
    memory = MemoryStore()

    def make() -> Store:
        store: Store = memory if request.param == "memory" else SqliteStore(tmp_path / "db")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


# -- the contract ------------------------------------------------------------------------


def test_a_new_store_is_empty(store: Store) -> None:
    assert store.load_all() == []
    assert store.meta_get("cluster_uid") is None


def test_puts_come_back_from_load_all(store: Store) -> None:
    objects = one_of_each()

    store.write(objects, [])

    assert by_key(store.load_all()) == by_key(objects)


def test_same_name_in_different_kinds_are_different_objects(store: Store) -> None:
    objects = one_of_each()  # Deployment/web and Service/web

    store.write(objects, [])

    assert {(o.kind, o.meta.name) for o in store.load_all()} >= {
        ("Deployment", "web"),
        ("Service", "web"),
    }


def test_same_name_in_different_namespaces_are_different_objects(store: Store) -> None:
    a, b = pod("web-1"), pod("web-1", rv=2)
    b = dataclasses.replace(b, meta=dataclasses.replace(b.meta, namespace="team-b"))

    store.write([a, b], [])
    store.write([], [("Pod", "default/web-1")])

    assert store.load_all() == [b]


def test_a_put_replaces_the_stored_object(store: Store) -> None:
    store.write([pod("web-1", rv=1), pod("web-2", rv=2)], [])

    store.write([pod("web-1", rv=3, phase=PodPhase.RUNNING, ready=True)], [])

    assert by_key(store.load_all()) == by_key(
        [pod("web-1", rv=3, phase=PodPhase.RUNNING, ready=True), pod("web-2", rv=2)]
    )


def test_the_last_put_of_a_key_in_one_batch_wins(store: Store) -> None:
    store.write([pod("web-1", rv=1), pod("web-1", rv=2)], [])

    assert store.load_all() == [pod("web-1", rv=2)]


def test_a_delete_removes_only_that_object(store: Store) -> None:
    objects = one_of_each()
    store.write(objects, [])

    store.write([], [("Pod", "default/web-1"), ("Service", "default/web")])

    remaining = by_key(objects)
    del remaining[("Pod", "web-1")], remaining[("Service", "web")]
    assert by_key(store.load_all()) == remaining


def test_deleting_a_missing_key_is_a_no_op(store: Store) -> None:
    store.write([pod("web-1")], [])

    store.write([], [("Pod", "nope"), ("Gadget", "web-1")])

    assert store.load_all() == [pod("web-1")]


def test_puts_and_deletes_in_one_batch(store: Store) -> None:
    store.write([pod("web-1"), pod("web-2")], [])

    # Deletes apply before puts: a key in both (deleted, then recreated) stays.
    store.write(
        [pod("web-3"), pod("web-2", rv=5)], [("Pod", "default/web-1"), ("Pod", "default/web-2")]
    )

    assert by_key(store.load_all()) == by_key([pod("web-2", rv=5), pod("web-3")])


def test_a_batch_that_fails_to_encode_stores_nothing(store: Store) -> None:
    store.write([pod("web-1"), pod("web-2")], [])
    store.meta_set("resource_version", "2")
    unencodable = dataclasses.replace(
        pod("web-4"),
        meta=ObjectMeta("web-4", labels={"app": 1}),  # type: ignore[dict-item]
    )

    with pytest.raises(StoreError, match=r"Pod/'web-4'.*meta\.labels\['app'\]"):
        store.write(
            [pod("web-1", rv=9), pod("web-3"), unencodable, pod("web-5")],
            [("Pod", "default/web-2")],
            meta={"resource_version": "9"},
        )

    assert by_key(store.load_all()) == by_key([pod("web-1"), pod("web-2")])
    assert store.meta_get("resource_version") == "2"


def test_a_failure_midway_through_a_batch_rolls_all_of_it_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write([pod("web-1")], [])
    calls = 0

    def encode_then_fail(obj: StoredObject) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("disk on fire")
        return encode(obj)

    monkeypatch.setattr(master.store.sqlite, "encode", encode_then_fail)
    monkeypatch.setattr(master.store.memory, "encode", encode_then_fail)
    monkeypatch.setattr(master.store.etcd, "encode", encode_then_fail)

    with pytest.raises(StoreError, match="disk on fire"):
        store.write([pod(f"new-{i}") for i in range(5)], [("Pod", "default/web-1")])

    assert calls == 3  # it really did fail midway, after two puts were encoded
    assert store.load_all() == [pod("web-1")]


def test_a_store_works_after_a_failed_batch(store: Store) -> None:
    with pytest.raises(StoreError):
        store.write([pod("web-1"), "not a model object"], [])  # type: ignore[list-item]

    store.write([pod("web-2")], [])

    assert store.load_all() == [pod("web-2")]


def test_meta_values_are_set_got_and_replaced(store: Store) -> None:
    store.meta_set("cluster_uid", "c-1")
    store.meta_set("resource_version", "10")
    store.meta_set("resource_version", "11")

    assert store.meta_get("cluster_uid") == "c-1"
    assert store.meta_get("resource_version") == "11"
    assert store.meta_get("missing") is None


def test_meta_in_a_batch_is_written_with_it(store: Store) -> None:
    store.write([pod("web-1", rv=7)], [], meta={"resource_version": "7"})

    assert store.meta_get("resource_version") == "7"
    assert store.load_all() == [pod("web-1", rv=7)]


def test_stored_objects_are_not_aliased(store: Store) -> None:
    original = pod("web-1")
    store.write([original], [])

    # Labels are read-only by type; a caller that casts that away must still not reach the store.
    cast(dict[str, str], original.meta.labels)["app"] = "mutated after write"
    loaded = store.load_all()[0]
    cast(dict[str, str], loaded.meta.labels)["app"] = "mutated after load"

    assert store.load_all()[0].meta.labels == {"app": "web"}


def test_a_large_batch_round_trips(store: Store) -> None:
    pods = [pod(f"web-{i}", rv=i) for i in range(1000)]

    store.write(pods, [])

    assert by_key(store.load_all()) == by_key(list(pods))


def test_a_large_batch_of_deletes_of_several_kinds_removes_only_those(store: Store) -> None:
    pods = [pod(f"web-{i}", rv=i) for i in range(500)]
    events = [Event(ObjectMeta(f"web-{i}.1"), "Pod", f"web-{i}", "Started", "") for i in range(300)]
    store.write([*pods, *events], [])

    store.write(
        [],
        [("Pod", f"default/web-{i}") for i in range(0, 500, 2)]
        + [("Event", f"default/web-{i}.1") for i in range(250)],
    )

    assert by_key(store.load_all()) == by_key([*pods[1::2], *events[250:]])


def test_the_last_put_of_a_key_wins_in_a_large_batch_too(store: Store) -> None:
    # The same key first and last of a batch of 450: far apart in it.
    pods = [pod("web-0", rv=1)] + [pod(f"web-{i}", rv=i) for i in range(1, 449)]

    store.write([*pods, pod("web-0", rv=999)], [])

    assert by_key(store.load_all())[("Pod", "web-0")] == pod("web-0", rv=999)
    assert len(store.load_all()) == 449


def test_writes_from_several_threads_all_land(store: Store) -> None:
    def writer(t: int) -> None:
        for i in range(20):
            store.write([pod(f"t{t}-{i}")], [], meta={f"writer-{t}": str(i)})

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)

    assert len(store.load_all()) == 80
    assert [store.meta_get(f"writer-{t}") for t in range(4)] == ["19"] * 4


def test_a_closed_store_refuses_calls(store: Store) -> None:
    store.close()
    store.close()  # idempotent

    with pytest.raises(StoreError, match="closed"):
        store.load_all()
    with pytest.raises(StoreError, match="closed"):
        store.write([pod("web-1")], [])
    with pytest.raises(StoreError, match="closed"):
        store.write([], [])
    with pytest.raises(StoreError, match="closed"):
        store.meta_get("x")
    with pytest.raises(StoreError, match="closed"):
        store.meta_set("x", "y")


# -- SQLite only ---------------------------------------------------------------------------


def test_sqlite_keeps_everything_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "pinnace.db"
    objects = one_of_each()
    first = SqliteStore(path)
    first.write(objects, [("Pod", "gone")], meta={"resource_version": "5"})
    first.meta_set("cluster_uid", "c-1")
    first.close()

    second = SqliteStore(path)
    try:
        assert by_key(second.load_all()) == by_key(objects)
        assert second.meta_get("resource_version") == "5"
        assert second.meta_get("cluster_uid") == "c-1"
    finally:
        second.close()


def test_sqlite_creates_the_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"

    store = SqliteStore.in_data_dir(data_dir)
    store.close()

    assert (data_dir / "pinnace.db").is_file()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    try:
        store.write([pod("web-1")], [])

        assert (tmp_path / "db-wal").exists()
    finally:
        store.close()


def test_sqlite_a_second_connection_sees_committed_data(tmp_path: Path) -> None:
    writer = SqliteStore(tmp_path / "db")
    reader = SqliteStore(tmp_path / "db")
    try:
        writer.write([pod("web-1")], [], meta={"resource_version": "1"})

        assert reader.load_all() == [pod("web-1")]
        assert reader.meta_get("resource_version") == "1"
    finally:
        writer.close()
        reader.close()


def test_sqlite_a_second_process_sees_committed_data(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    try:
        store.write([pod("web-1"), pod("web-2")], [], meta={"resource_version": "2"})
        script = (
            "import sys; from pathlib import Path; from master.store import SqliteStore\n"
            "s = SqliteStore(Path(sys.argv[1]))\n"
            "print(sorted(o.meta.name for o in s.load_all()), s.meta_get('resource_version'))\n"
        )

        result = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "db")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "['web-1', 'web-2'] 2"
    finally:
        store.close()


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.write_bytes(b"these are my holiday photos, not a database" * 100)

    with pytest.raises(StoreError, match="is not a pinnace database"):
        SqliteStore(path)

    assert path.read_bytes().startswith(b"these are my holiday photos")


def test_sqlite_refuses_another_programs_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()

    with pytest.raises(StoreError, match="is not a pinnace database"):
        SqliteStore(path)

    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert tables == ["photos"]


def test_sqlite_refuses_a_foreign_application_id(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 12345")
    conn.close()

    with pytest.raises(StoreError, match="is not a pinnace database"):
        SqliteStore(path)


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(StoreError, match="newer pinnace"):
        SqliteStore(path)


def test_sqlite_refuses_a_directory_as_the_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        SqliteStore(tmp_path)


def test_sqlite_explains_an_unusable_data_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")

    with pytest.raises(StoreError, match="cannot create the data directory"):
        SqliteStore.in_data_dir(blocker / "data")


def test_sqlite_names_an_unreadable_row(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = SqliteStore(path)
    store.write([pod("web-1")], [])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE objects SET data = ? WHERE name = 'default/web-1'", (b'{"meta": 3}',))
    conn.commit()
    conn.close()

    try:
        with pytest.raises(StoreError, match=r"Pod/default/web-1 is unreadable: meta"):
            store.load_all()
    finally:
        store.close()


def test_sqlite_skips_kinds_it_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = SqliteStore(path)
    store.write([pod("web-1")], [])
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO objects (kind, name, resource_version, data) "
        "VALUES ('CronJob', 'nightly', 1, x'7b7d')"
    )
    conn.commit()
    conn.close()

    try:
        assert store.load_all() == [pod("web-1")]
    finally:
        store.close()
