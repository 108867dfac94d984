"""Score: spread a Deployment's pods across nodes (Kubernetes' SelectorSpread).

Losing one machine should cost a Deployment as few replicas as possible, so a
node with fewer pods of the same owner scores higher. As in Kubernetes the
plugin works in two steps: `score` returns the raw count of the pod's peers on
the node, and `normalize` maps the counts of all candidate nodes to
100 * (max - count) / max (every node 100 when none has a peer). The
normalization needs the maximum over all candidates; doing it once per
decision keeps scoring linear in the number of nodes.

Pods without an owner treat every pod on the node as a peer, so bare pods that
request nothing still spread instead of all landing on the first node by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from master.model import Pod
from master.scheduler.nodeinfo import NodeInfo


@dataclass(frozen=True, slots=True)
class Spread:
    name: str = "SelectorSpread"
    weight: int = 2

    def score(self, pod: Pod, info: NodeInfo, all_infos: Sequence[NodeInfo]) -> float:
        if pod.owner_key:
            return float(info.pods_by_owner.get(pod.owner_key, 0))
        return float(info.pod_count)

    def normalize(self, pod: Pod, scores: list[float]) -> list[float]:
        highest = max(scores, default=0.0)
        if highest <= 0:
            return [100.0] * len(scores)
        return [100.0 * (highest - count) / highest for count in scores]
