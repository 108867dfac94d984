"""The agent knows a pod by namespace and name (issue 11 point 1): StatefulSet pods `web-0`
of two namespaces on one node get their own containers, labels, volumes and reports."""

from __future__ import annotations

from agent.convert import assignment_from_proto, status_to_proto
from agent.model import PodStatusReport
from agent.mounts import empty_dir_name
from agent.runtime.port import LABEL_NAMESPACE, LABEL_POD, container_name, pod_labels, pod_of
from agent.volume_files import volume_dir
from kernel.names import flat_pod_ref, pod_ref, split_pod_ref
from protos import node_pb2 as pb


def test_pod_refs_keep_default_names_and_split_back() -> None:
    assert pod_ref("default", "web-0") == "web-0" and pod_ref("", "web-0") == "web-0"
    assert pod_ref("team-a", "web-0") == "team-a/web-0"
    assert split_pod_ref("team-a/web-0") == ("team-a", "web-0")
    assert split_pod_ref("web-0") == ("default", "web-0")
    assert flat_pod_ref("team-a/web-0") == "team-a_web-0"


def test_same_pod_name_in_two_namespaces_never_shares_a_docker_name_or_label() -> None:
    mine, theirs = "web-0", "team-a/web-0"

    assert container_name("n1", mine, "c") == "pinnace-n1-web-0-c"  # as before namespaces
    assert container_name("n1", theirs, "c") == "pinnace-n1-team-a_web-0-c"
    assert empty_dir_name("n1", mine, "v") != empty_dir_name("n1", theirs, "v")
    assert volume_dir("/r", "n1", mine, "v") != volume_dir("/r", "n1", theirs, "v")
    assert pod_labels(mine) == {LABEL_POD: "web-0"}
    assert pod_labels(theirs) == {LABEL_POD: "web-0", LABEL_NAMESPACE: "team-a"}
    assert pod_of(pod_labels(mine)) == mine and pod_of(pod_labels(theirs)) == theirs
    assert pod_of({}) == ""


def test_assignments_and_reports_carry_the_namespace_on_the_wire() -> None:
    msg = pb.PodAssignment(name="web-0", epoch=3, namespace="team-a")

    assert assignment_from_proto(msg).name == "team-a/web-0"
    assert assignment_from_proto(pb.PodAssignment(name="web-0")).name == "web-0"
    out = status_to_proto(PodStatusReport(pod_name="team-a/web-0", epoch=3))
    assert (out.pod_name, out.namespace) == ("web-0", "team-a")
    plain = status_to_proto(PodStatusReport(pod_name="web-0", epoch=3))
    assert (plain.pod_name, plain.namespace) == ("web-0", "")
