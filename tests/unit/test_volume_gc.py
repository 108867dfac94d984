"""collectable: an emptyDir volume goes once its pod has had no container for the grace."""

from __future__ import annotations

from agent.runtime.port import ContainerInfo, VolumeInfo
from agent.volume_gc import collectable


def _vol(name: str, pod: str, kind: str = "emptyDir") -> VolumeInfo:
    return VolumeInfo(name, {"pinnace.pod": pod, "pinnace.volume-kind": kind})


def _container(pod: str) -> ContainerInfo:
    return ContainerInfo("c1", "n", "img", "exited", labels={"pinnace.pod": pod})


def test_a_volume_whose_pod_still_has_a_container_stays() -> None:
    remove, orphans = collectable([_vol("v", "p1")], [_container("p1")], {}, now=100.0)

    assert (remove, orphans) == ([], {})


def test_an_orphan_goes_only_after_the_grace_counted_from_when_it_was_first_seen() -> None:
    vols = [_vol("v", "gone")]

    remove, orphans = collectable(vols, [], {}, now=100.0, grace=30.0)
    assert (remove, orphans) == ([], {"v": 100.0})
    remove, orphans = collectable(vols, [], orphans, now=129.0, grace=30.0)
    assert remove == []
    remove, orphans = collectable(vols, [], orphans, now=130.0, grace=30.0)
    assert (remove, orphans) == (["v"], {})


def test_a_pod_that_comes_back_resets_the_clock_and_claims_are_never_collected() -> None:
    _, orphans = collectable([_vol("v", "p1")], [], {}, now=100.0)

    remove, orphans = collectable([_vol("v", "p1")], [_container("p1")], orphans, now=200.0)
    claim, _ = collectable([_vol("pvc", "", kind="claim")], [], {}, now=1e9, grace=0.0)

    assert (remove, orphans, claim) == ([], {}, [])
