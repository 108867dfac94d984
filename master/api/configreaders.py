"""Which nodes run a pod that reads a given ConfigMap or Secret.

When a ConfigMap or Secret changes, the nodes with a pod reading it (its environment or
its volumes) get their pods' values again. Finding them by looking at every session and
every pod on its node was O(nodes + pods) on the event loop for each ConfigMap write:
~1,000 sessions walked per write at 1,000 nodes, in the write's own answer time (the
commit publishes before it answers), and O(50,000) at the scale of issue 15. This keeps
an index instead, fed by pod changes: (kind, namespace, name) -> the pods reading it, and
each pod's node; a lookup is O(readers).

The index is built from every pod the first time it is needed (the node servicer
subscribes after the state is loaded) and kept up to date from then on. A pod's status
report keeps its spec object (dataclasses.replace), so it costs one identity check; only
a new or rebound pod has its references read.
"""

from __future__ import annotations

from collections.abc import Iterable

from master.app.podenv import references
from master.app.podvolumes import volume_references
from master.model import Pod, key_of

ConfigKey = tuple[str, str, str]  # (kind, namespace, name)


def reads_of(pod: Pod) -> frozenset[ConfigKey]:
    """The ConfigMaps and Secrets a pod's environment and volumes read."""
    ns = pod.meta.namespace
    return frozenset((kind, ns, name) for kind, name in references(pod) | volume_references(pod))


class ConfigReaders:
    """The index; see the module docstring."""

    def __init__(self) -> None:
        self.built = False
        # Pod key -> (its node, the spec the references were read from, the references).
        self._pods: dict[str, tuple[str, object, frozenset[ConfigKey]]] = {}
        self._readers: dict[ConfigKey, set[str]] = {}

    def build(self, pods: Iterable[Pod]) -> None:
        """Index every pod there is (once; later changes come through `pod_changed`)."""
        self.built = True
        for pod in pods:
            self.pod_changed(key_of(pod), pod)

    def pod_changed(self, key: str, pod: Pod | None) -> None:
        """A pod was stored (None: removed). Nothing is kept until the index is built."""
        if not self.built:
            return
        held = self._pods.get(key)
        if (
            pod is not None
            and held is not None
            and held[0] == pod.node_name
            and held[1] is pod.spec
        ):
            return  # a status change: same node, same spec object
        if held is not None:
            self._forget(key, held[2])
        if pod is None or not pod.node_name:
            return
        reads = reads_of(pod)
        self._pods[key] = (pod.node_name, pod.spec, reads)
        for config in reads:
            self._readers.setdefault(config, set()).add(key)

    def nodes_reading(self, kind: str, namespace: str, name: str) -> set[str]:
        """The nodes with a bound pod that reads kind/name in `namespace`."""
        return {self._pods[key][0] for key in self._readers.get((kind, namespace, name), ())}

    def _forget(self, key: str, reads: frozenset[ConfigKey]) -> None:
        del self._pods[key]
        for config in reads:
            readers = self._readers.get(config)
            if readers is not None:
                readers.discard(key)
                if not readers:
                    del self._readers[config]
