"""A pod's assignment carries its containers as the pod's status at the master had them,
so a restarted agent that finds none of them counts on from there (agent/sync.py
`_from_status`), as the kubelet counts from the pod's status when its runtime has lost the
containers."""

from __future__ import annotations

from agent.convert import assignment_from_proto
from agent.model import ContainerSeen
from master.api.convert import assignment_to_proto
from master.model import ContainerStatus, ObjectMeta, Pod, PodPhase, PodSpec, PodStatus


def test_the_assignment_carries_each_containers_count_and_id_from_the_pods_status() -> None:
    status = PodStatus(
        phase=PodPhase.RUNNING,
        container_statuses=(
            ContainerStatus("web", "running", restart_count=2, container_id="c1"),
            ContainerStatus("side", "waiting", reason="ContainerCreating"),
        ),
    )
    pod = Pod(ObjectMeta("p"), PodSpec(()), node_name="n1", epoch=3, status=status)

    got = assignment_from_proto(assignment_to_proto(pod, stop=False))

    # A container never made (no id, no restart) tells the agent nothing.
    assert got.seen == {"web": ContainerSeen(restart_count=2, container_id="c1")}
    fresh = Pod(ObjectMeta("p"), PodSpec(()), node_name="n1", epoch=3)
    assert assignment_from_proto(assignment_to_proto(fresh, stop=False)).seen == {}
