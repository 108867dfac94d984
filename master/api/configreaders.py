"""Which nodes run a pod that reads a given ConfigMap or Secret.

When a ConfigMap or Secret changes, the nodes with a pod reading it (its environment or
its volumes) get their pods' values again. Finding them by looking at every session and
every pod on its node was O(nodes + pods) on the event loop for each ConfigMap write:
~1,000 sessions walked per write at 1,000 nodes, in the write's own answer time (the
commit publishes before it answers), and O(50,000) at the scale of issue 15. This keeps
an index instead, fed by pod changes: (kind, namespace, name) -> the pods reading it, and
each pod's node; a lookup is O(readers).

The index is built from every pod the first time it is needed (the node servicer
subscribes after the state is loaded) and kept up to date from then on, by each change's
old and new version (the state tells both). A pod's status report keeps its spec object
(dataclasses.replace), so it costs one identity check; only a new, rebound or removed pod
has its references read. Only pods that read something are held (by key, with their
node): a copy of every bound pod's node, spec and references, kept to know what a
change replaced, was three objects a pod at 50,000 pods.
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
        # (kind, namespace, name) -> the bound pods reading it: pod key -> its node.
        self._readers: dict[ConfigKey, dict[str, str]] = {}

    def build(self, pods: Iterable[Pod]) -> None:
        """Index every pod there is (once; later changes come through `pod_changed`)."""
        self.built = True
        for pod in pods:
            self.pod_changed(key_of(pod), None, pod)

    def pod_changed(self, key: str, previous: Pod | None, pod: Pod | None) -> None:
        """A pod was stored (None: removed) in place of `previous` (None: it is new).
        Nothing is kept until the index is built."""
        if not self.built:
            return
        if (
            pod is not None
            and previous is not None
            and previous.node_name == pod.node_name
            and previous.spec is pod.spec
        ):
            return  # a status change: same node, same spec object
        if previous is not None and previous.node_name:
            for config in reads_of(previous):
                readers = self._readers.get(config)
                if readers is not None:
                    readers.pop(key, None)
                    if not readers:
                        del self._readers[config]
        if pod is None or not pod.node_name:
            return
        for config in reads_of(pod):
            self._readers.setdefault(config, {})[key] = pod.node_name

    def nodes_reading(self, kind: str, namespace: str, name: str) -> set[str]:
        """The nodes with a bound pod that reads kind/name in `namespace`."""
        return set(self._readers.get((kind, namespace, name), {}).values())
