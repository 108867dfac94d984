"""Which calls a follower passes to the leader (gRPC and the Kubernetes API), and which not."""

from __future__ import annotations

from master.api.forward import FORWARDED, forward_target
from master.api.kube.forward import forward_url, is_log, is_session_bound
from master.ha.elector import MasterInfo

APPLY = "/pinnace.v1.ClusterService/ApplyManifests"
GET = "/pinnace.v1.ClusterService/GetObjects"


def test_a_follower_forwards_writes_to_the_leader_it_knows() -> None:
    assert forward_target(APPLY, writable=False, leader="10.0.0.1:7400", forwarded=False) == (
        "10.0.0.1:7400"
    )


def test_reads_the_leader_itself_unknown_leaders_and_forwarded_calls_stay_here() -> None:
    assert forward_target(GET, writable=False, leader="a:1", forwarded=False) == ""
    assert forward_target(APPLY, writable=True, leader="", forwarded=False) == ""
    assert forward_target(APPLY, writable=False, leader="", forwarded=False) == ""
    # Two masters that each think the other leads: refuse rather than pass it back.
    assert forward_target(APPLY, writable=False, leader="a:1", forwarded=True) == ""


def test_every_write_and_every_session_bound_call_is_forwarded_and_no_read() -> None:
    names = {m.rsplit("/", 1)[1] for m in FORWARDED}
    assert {"ApplyManifests", "DeleteObjects", "ScaleDeployment", "CordonNode"} <= names
    assert not names & {"GetObjects", "WatchObjects"}
    assert {"StreamLogs", "Exec", "GetUsage"} <= names  # they need the leader's sessions


def test_kube_writes_go_to_the_leaders_api_with_their_path_and_query() -> None:
    url = forward_url(
        "PATCH", "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=k",
        writable=False, leader_api="https://10.0.0.1:6443/", forwarded=False, upgrade=False,
    )  # fmt: skip
    assert (
        url
        == "https://10.0.0.1:6443/apis/apps/v1/namespaces/default/deployments/web?fieldManager=k"
    )


def test_kube_reads_upgrades_and_forwarded_requests_stay_here() -> None:
    leader = "https://10.0.0.1:6443"
    assert forward_url("GET", "/api/v1/pods", False, leader, False, False) == ""
    assert forward_url("POST", "/api/v1/x/exec", False, leader, False, True) == ""
    assert forward_url("POST", "/api/v1/pods", False, leader, True, False) == ""
    assert forward_url("POST", "/api/v1/pods", True, leader, False, False) == ""
    assert forward_url("POST", "/api/v1/pods", False, "", False, False) == ""


def test_a_masters_entry_carries_its_api_url_and_older_entries_still_read() -> None:
    info = MasterInfo("m1", "10.0.0.2:7400", 5.0, "https://10.0.0.2:6443")

    assert MasterInfo.decode(info.encode()) == info
    old = b'{"name":"m0","address":"a:1","startedAt":1.0}'
    assert MasterInfo.decode(old) == MasterInfo("m0", "a:1", 1.0, "")


def test_a_pods_log_is_read_through_the_leader_which_holds_the_sessions() -> None:
    path = "/api/v1/namespaces/default/pods/web-1/log"
    leader = "https://10.0.0.1:6443"

    assert is_log(path) and not is_log("/api/v1/namespaces/default/pods/log")
    assert forward_url("GET", path + "?follow=true", False, leader, False, False, True) == (
        leader + path + "?follow=true"
    )
    assert forward_url("GET", path, True, leader, False, False, True) == ""


def test_an_exec_websocket_goes_to_the_leader_and_other_upgrades_stay() -> None:
    path = "/api/v1/namespaces/default/pods/web-1/exec?command=ls&stdout=true"
    leader = "https://10.0.0.1:6443"

    assert is_session_bound(path.split("?")[0]) and not is_session_bound("/api/v1/pods")
    assert forward_url("GET", path, False, leader, False, True, True) == leader + path
    assert forward_url("GET", "/api/v1/pods?watch=1", False, leader, False, True, False) == ""
