"""The index of which nodes run a pod reading a ConfigMap or Secret
(master/api/configreaders.py): a ConfigMap write marks only those nodes' sessions, without
walking every session and every pod."""

from __future__ import annotations

from dataclasses import replace

from master.api.configreaders import ConfigReaders
from master.model import (
    Container,
    EnvFromSource,
    EnvVar,
    EnvVarSource,
    ObjectMeta,
    Pod,
    PodSpec,
    Volume,
)


def _pod(name: str, node: str, *, env_from: str = "", key_ref: str = "", volume: str = "",
         namespace: str = "default") -> Pod:  # fmt: skip
    container = Container(
        name="c",
        image="busybox",
        env_from=(EnvFromSource("configMapRef", env_from),) if env_from else (),
        env=(EnvVar("K", value_from=EnvVarSource("secretKeyRef", key_ref, "k")),)
        if key_ref
        else (),
    )
    volumes = (Volume(name="v", source="configMap", object_name=volume),) if volume else ()
    return Pod(
        meta=ObjectMeta(name=name, namespace=namespace),
        spec=PodSpec(containers=(container,), volumes=volumes),
        node_name=node,
    )


def test_only_the_nodes_of_pods_reading_it_are_found() -> None:
    readers = ConfigReaders()
    readers.build(
        [
            _pod("a", "n1", env_from="settings"),
            _pod("b", "n2", volume="settings"),
            _pod("c", "n3", key_ref="settings"),  # a Secret of the same name
            _pod("d", "n4"),
            _pod("e", "n5", env_from="settings", namespace="other"),
        ]
    )

    assert readers.nodes_reading("ConfigMap", "default", "settings") == {"n1", "n2"}
    assert readers.nodes_reading("Secret", "default", "settings") == {"n3"}
    assert readers.nodes_reading("ConfigMap", "other", "settings") == {"n5"}
    assert readers.nodes_reading("ConfigMap", "default", "nothing") == set()


def test_pods_bound_moved_and_removed_keep_it_current() -> None:
    readers = ConfigReaders()
    readers.build([])
    pending = _pod("a", "", env_from="settings")
    readers.pod_changed("default/a", None, pending)
    assert readers.nodes_reading("ConfigMap", "default", "settings") == set()  # not bound yet

    on_n1 = replace(pending, node_name="n1")
    readers.pod_changed("default/a", pending, on_n1)
    assert readers.nodes_reading("ConfigMap", "default", "settings") == {"n1"}

    on_n2 = replace(pending, node_name="n2")
    readers.pod_changed("default/a", on_n1, on_n2)
    assert readers.nodes_reading("ConfigMap", "default", "settings") == {"n2"}

    readers.pod_changed("default/a", on_n2, None)
    assert readers.nodes_reading("ConfigMap", "default", "settings") == set()


def test_a_new_spec_is_read_again_and_a_status_change_is_not() -> None:
    readers = ConfigReaders()
    pod = _pod("a", "n1", env_from="old")
    readers.build([pod])

    status_only = replace(pod, epoch=3)  # same spec object
    readers.pod_changed("default/a", pod, status_only)
    assert readers.nodes_reading("ConfigMap", "default", "old") == {"n1"}

    new_spec = replace(pod, spec=_pod("a", "n1", env_from="new").spec)
    readers.pod_changed("default/a", status_only, new_spec)
    assert readers.nodes_reading("ConfigMap", "default", "old") == set()
    assert readers.nodes_reading("ConfigMap", "default", "new") == {"n1"}


def test_nothing_is_kept_before_the_index_is_built() -> None:
    """The servicer subscribes after the state is loaded: the build reads every pod, so
    changes seen before it are not needed (and not kept twice)."""
    readers = ConfigReaders()
    readers.pod_changed("default/a", None, _pod("a", "n1", env_from="settings"))
    assert readers.nodes_reading("ConfigMap", "default", "settings") == set()

    readers.build([_pod("a", "n1", env_from="settings")])
    assert readers.nodes_reading("ConfigMap", "default", "settings") == {"n1"}
