"""configMap/secret volumes: the master's resolution (pure) and the agent's files on disk."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

from agent.model import PodAssignment, PodSpec, Volume, VolumeFile
from agent.volume_files import VolumeFiles
from master.app.podvolumes import resolve_volume_files
from master.model import ConfigMap, KeyToPath, ObjectMeta, Secret, StoredObject
from master.model import Volume as MasterVolume

OBJECTS: dict[tuple[str, str], StoredObject] = {
    ("ConfigMap", "cfg"): ConfigMap(
        ObjectMeta("cfg"), {"a.conf": "A", "b": "B"}, {"bin": base64.b64encode(b"\0\1").decode()}
    ),
    ("Secret", "sec"): Secret(
        ObjectMeta("sec"), data={"pw": base64.b64encode(b"hunter2").decode()}
    ),
}


def _lookup(kind: str, name: str) -> StoredObject | None:
    return OBJECTS.get((kind, name))


def test_every_key_becomes_a_file_with_the_default_mode() -> None:
    vol = MasterVolume("v", "configMap", object_name="cfg")

    files = resolve_volume_files(vol, _lookup).files

    assert [(f.path, f.content, f.mode) for f in files] == [
        ("a.conf", b"A", 0o644),
        ("b", b"B", 0o644),
        ("bin", b"\0\1", 0o644),
    ]


def test_items_pick_keys_paths_and_modes_and_a_missing_key_holds_the_pod() -> None:
    items = (KeyToPath("a.conf", "etc/a", 0o400), KeyToPath("b", "b"))
    vol = MasterVolume("v", "configMap", object_name="cfg", items=items, default_mode=0o600)
    missing = MasterVolume("v", "configMap", object_name="cfg", items=(KeyToPath("x", "x"),))

    files = resolve_volume_files(vol, _lookup).files

    assert [(f.path, f.mode) for f in files] == [("etc/a", 0o400), ("b", 0o600)]
    assert "has no key x" in resolve_volume_files(missing, _lookup).error


def test_secret_values_are_decoded_and_a_missing_object_is_an_error_unless_optional() -> None:
    secret = MasterVolume("v", "secret", object_name="sec")
    gone = MasterVolume("v", "secret", object_name="nope")

    assert resolve_volume_files(secret, _lookup).files[0].content == b"hunter2"
    assert resolve_volume_files(gone, _lookup).error == 'secret "nope" not found'
    assert (
        resolve_volume_files(
            MasterVolume("v", "secret", object_name="nope", optional=True), _lookup
        ).error
        == ""
    )


def _assignment(pod: str, files: tuple[VolumeFile, ...]) -> PodAssignment:
    return PodAssignment(pod, 1, PodSpec((), volumes=(Volume("cfg", "configMap", files=files),)))


def test_the_agent_writes_updates_and_removes_the_files(tmp_path: Path) -> None:
    files = VolumeFiles(str(tmp_path), "n1")

    files.sync([_assignment("p1", (VolumeFile("a/b.conf", b"one", 0o400),))])
    target = tmp_path / "n1" / "p1" / "cfg" / "a" / "b.conf"
    assert target.read_bytes() == b"one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o400
    assert stat.S_IMODE((tmp_path / "n1").stat().st_mode) == 0o700

    files.sync([_assignment("p1", (VolumeFile("c", b"two", 0o644),))])
    assert not target.exists()
    assert (tmp_path / "n1" / "p1" / "cfg" / "c").read_bytes() == b"two"

    files.sync([])
    assert list((tmp_path / "n1").iterdir()) == []


def test_a_node_without_file_volumes_touches_no_disk(tmp_path: Path) -> None:
    VolumeFiles(str(tmp_path / "root"), "n1").sync([PodAssignment("p", 1, PodSpec(()))])

    assert not (tmp_path / "root").exists()
