"""UDP Services' kernel rules: which targets, which nft text, which conntrack deletions (pure),
and the shell applying them through a fake `nft`/`conntrack` runner."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent.nodeproxy.table import Backend, ServicePort, ServiceTable, TableService
from agent.nodeproxy.udpkernel import RULES_FILE, TABLE_FILE, UdpRules, remove_udp_rules
from agent.nodeproxy.udprules import (
    StaleFlows,
    UdpPort,
    UdpTarget,
    render_rules,
    stale_flows,
    table_name,
    target_of,
    udp_ports,
)

LOCAL = frozenset({"127.0.0.1", "192.168.1.10"})
HERE = Backend("127.0.0.1", 32001, "dns-a", "n1", pod_ip="172.17.0.5", target_port=5353)
THERE = Backend("192.168.1.11", 32002, "dns-b", "n2", pod_ip="172.17.0.9", target_port=5353)


def _table(*backends: Backend, node_port: int = 0, protocol: str = "UDP") -> ServiceTable:
    ports = (ServicePort("dns", 53, protocol, "", tuple(backends), node_port),)
    dns = TableService("dns", "kube-system", "NodePort", "10.96.0.10", False, ports)
    headless = TableService("pods", "", "ClusterIP", "", True, ports)
    return ServiceTable(3, (dns, headless), "10.96.0.0/12")


def test_a_pod_on_this_machine_is_reached_at_its_container_address_others_at_their_node() -> None:
    assert target_of(HERE, LOCAL) == UdpTarget("172.17.0.5", 5353)
    assert target_of(THERE, LOCAL) == UdpTarget("192.168.1.11", 32002)


def test_a_loopback_endpoint_without_a_container_address_cannot_be_reached() -> None:
    bare = Backend("127.0.0.1", 32001)
    on_node = Backend("192.168.1.10", 32001)

    assert target_of(bare, LOCAL) is None
    # A node address of this machine is routable from pods: Docker's port forward answers.
    assert target_of(on_node, LOCAL) == UdpTarget("192.168.1.10", 32001)


def test_only_udp_ports_of_services_with_a_cluster_ip_are_programmed() -> None:
    assert udp_ports(_table(HERE, protocol="TCP"), LOCAL) == ()
    assert udp_ports(_table(HERE, THERE, node_port=30053), LOCAL) == (
        UdpPort(
            "kube-system",
            "dns",
            "10.96.0.10",
            53,
            30053,
            (UdpTarget("172.17.0.5", 5353), UdpTarget("192.168.1.11", 32002)),
        ),
    )


def test_the_rules_spread_new_flows_at_random_and_masquerade_them() -> None:
    ports = udp_ports(_table(HERE, THERE, node_port=30053), LOCAL)

    text = render_rules("pinnace_udp_n1", ports)

    # Created if missing, deleted and written anew: one transaction (and an earlier
    # agent's IPv4-only table of the same name goes in it too).
    assert text.splitlines()[1:6] == [
        "table ip pinnace_udp_n1",
        "delete table ip pinnace_udp_n1",
        "table inet pinnace_udp_n1",
        "delete table inet pinnace_udp_n1",
        "table inet pinnace_udp_n1 {",
    ]
    assert "    ip daddr 10.96.0.10 udp dport 53 goto svc0" in text
    assert "    ip daddr != 127.0.0.0/8 fib daddr type local udp dport 30053 goto svc0" in text
    assert "    ip6 daddr != ::1 fib daddr type local udp dport 30053 goto svc0" in text
    assert (
        "    meta nfproto ipv4 numgen random mod 2 vmap { 0 : goto svc0_ep0, 1 : goto svc0_ep1 }"
    ) in text
    assert "nfproto ipv6" not in text  # no IPv6 endpoint: an IPv6 client is refused
    assert "meta l4proto udp dnat ip to 172.17.0.5:5353" in text
    assert "meta l4proto udp dnat ip to 192.168.1.11:32002" in text
    assert "    meta mark & 0x4000 == 0x4000 masquerade" in text
    assert text.count("type nat hook") == 3  # prerouting (pods), output (the node), postrouting


V6_HERE = Backend("fd00::10", 32003, "dns-c", "n1", pod_ip="fd00:17::5", target_port=5353)
V6_THERE = Backend("fd00::11", 32004, "dns-d", "n2")


def test_ipv6_endpoints_take_ipv6_packets_and_ipv4_ones_ipv4() -> None:
    local = LOCAL | {"fd00::10"}
    ports = udp_ports(_table(HERE, V6_HERE, V6_THERE, node_port=30053), local)

    text = render_rules("t", ports)

    # Each family picks among its own endpoints; the kernel does not translate between them.
    assert "    meta nfproto ipv4 numgen random mod 1 vmap { 0 : goto svc0_ep0 }" in text
    assert (
        "    meta nfproto ipv6 numgen random mod 2 vmap { 0 : goto svc0_ep1, 1 : goto svc0_ep2 }"
    ) in text
    assert "meta l4proto udp dnat ip6 to [fd00:17::5]:5353" in text  # its container address
    assert "meta l4proto udp dnat ip6 to [fd00::11]:32004" in text  # its node's address


def test_a_service_with_an_ipv6_cluster_ip_is_matched_with_ip6() -> None:
    ports = (UdpPort("default", "dns", "fd00:96::a", 53, 0, (UdpTarget("fd00::11", 32004),)),)

    text = render_rules("t", ports)

    assert "    ip6 daddr fd00:96::a udp dport 53 goto svc0" in text


def test_gone_ipv6_flows_are_deleted_with_conntrack_told_the_family() -> None:
    v6 = UdpTarget("fd00::11", 32004)

    flows = stale_flows([_port(A, v6, node_port=30053)], [_port(A, node_port=30053)])

    assert flows == (StaleFlows("", 30053, "fd00::11", 32004, 6),)
    assert flows[0].conntrack_args()[:6] == ["conntrack", "-D", "-p", "udp", "-f", "ipv6"]


def test_nodeport_addresses_narrow_the_udp_node_port_to_their_ranges() -> None:
    ports = udp_ports(_table(HERE, node_port=30053), LOCAL)

    text = render_rules("t", ports, ("192.168.1.0/24", "10.0.0.0/8"))

    assert (
        "    ip daddr { 192.168.1.0/24, 10.0.0.0/8 } ip daddr != 127.0.0.0/8 fib daddr type local "
        "udp dport 30053 goto svc0"
    ) in text
    assert "ip6 daddr" not in text  # no IPv6 range: no IPv6 node port
    v6 = render_rules("t", ports, ("fd00::/64",))
    assert "    ip6 daddr { fd00::/64 } ip6 daddr != ::1 fib daddr type local udp" in v6
    assert "    ip daddr" not in v6.split("chain services")[1].split("dport 53")[1]


def test_a_port_without_endpoints_gets_no_rule() -> None:
    text = render_rules("t", udp_ports(_table(), LOCAL))

    assert "goto svc" not in text and "dnat" not in text


def test_table_names_are_per_node_and_safe_for_nft() -> None:
    assert table_name("it-ab12-node.a") == "pinnace_udp_it_ab12_node_a"


def _port(*targets: UdpTarget, node_port: int = 0) -> UdpPort:
    return UdpPort("default", "dns", "10.96.0.10", 53, node_port, targets)


A, B = UdpTarget("172.17.0.5", 5353), UdpTarget("172.17.0.6", 5353)


def test_flows_of_a_gone_endpoint_are_deleted_on_the_cluster_ip_and_the_node_port() -> None:
    flows = stale_flows([_port(A, B, node_port=30053)], [_port(B, node_port=30053)])

    assert flows == (
        StaleFlows("", 30053, "172.17.0.5", 5353),
        StaleFlows("10.96.0.10", 53, "172.17.0.5", 5353),
    )
    assert flows[1].conntrack_args() == [
        *("conntrack", "-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53"),
        *("--reply-src", "172.17.0.5", "--reply-port-src", "5353"),
    ]


def test_a_replaced_pod_deletes_the_old_flows_and_a_first_endpoint_the_untranslated_ones() -> None:
    assert stale_flows([_port(A)], [_port(B)]) == (
        StaleFlows("10.96.0.10", 53, "172.17.0.5", 5353),
    )
    # Before: no endpoint, so a client's flow went untranslated (refused) and would stick.
    assert stale_flows([_port()], [_port(A)]) == (StaleFlows("10.96.0.10", 53),)
    assert StaleFlows("10.96.0.10", 53).conntrack_args()[-2:] == ["--orig-port-dst", "53"]
    assert stale_flows([_port(A)], [_port(A)]) == ()
    assert stale_flows([_port(A)], []) == (StaleFlows("10.96.0.10", 53, "172.17.0.5", 5353),)


class FakeKernel:
    """Records `nft` and `conntrack` calls; `nft` fails while `fail` is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str]] = []
        self.fail = ""

    def __call__(self, command: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
        self.calls.append((command, stdin))
        if command[0] == "nft" and self.fail:
            return subprocess.CompletedProcess(command, 1, "", self.fail)
        if command[0] == "conntrack":
            return subprocess.CompletedProcess(command, 1, "", "0 flow entries deleted")
        return subprocess.CompletedProcess(command, 0, "", "")


def test_the_shell_applies_the_whole_table_once_flushes_gone_flows_and_deletes_it_at_the_end(
    tmp_path: Path,
) -> None:
    kernel = FakeKernel()
    rules = UdpRules(tmp_path, "n1", run=kernel, local=lambda a: a in LOCAL)

    rules.apply(_table(HERE, THERE))
    rules.apply(_table(HERE, THERE))  # the same text: nothing run
    assert [c[0] for c in kernel.calls] == [["nft", "-f", "-"]]
    assert (tmp_path / TABLE_FILE).read_text() == "pinnace_udp_n1\n"

    kernel.calls.clear()
    rules.apply(_table(THERE))
    commands = [c[0] for c in kernel.calls]
    assert commands[0] == ["nft", "-f", "-"]
    assert commands[1][:2] == ["conntrack", "-D"] and "172.17.0.5" in commands[1]

    kernel.calls.clear()
    rules.apply(_table(protocol="TCP"))  # the last UDP Service went: the table goes
    assert kernel.calls[0] == (
        ["nft", "-f", "-"],
        "table ip pinnace_udp_n1\ndelete table ip pinnace_udp_n1\n"
        "table inet pinnace_udp_n1\ndelete table inet pinnace_udp_n1\n",
    )
    assert not (tmp_path / TABLE_FILE).exists() and not (tmp_path / RULES_FILE).exists()


def test_a_failing_nft_is_one_sentence_and_a_stopped_proxy_removes_its_table(
    tmp_path: Path,
) -> None:
    kernel = FakeKernel()
    kernel.fail = "Operation not permitted"
    rules = UdpRules(tmp_path, "n1", run=kernel, local=lambda a: a in LOCAL)
    try:
        rules.apply(_table(HERE))
    except RuntimeError as e:
        assert "Operation not permitted" in str(e) and "run the agent as root" in str(e)
    else:
        raise AssertionError("nft failed but apply did not say so")

    kernel.fail = ""
    rules.apply(_table(HERE))
    kernel.calls.clear()
    assert remove_udp_rules(tmp_path, kernel) == "pinnace_udp_n1"
    assert [c[0][0] for c in kernel.calls] == ["nft"]
    assert remove_udp_rules(tmp_path, kernel) == ""  # nothing left to remove


def test_the_table_is_named_on_disk_before_the_kernel_holds_it(tmp_path: Path) -> None:
    """An agent killed while nft ran leaves a table its stop still finds (a CI teardown
    found pinnace_udp_<node> left behind with no marker naming it)."""
    kernel = FakeKernel()
    named_when_made: list[bool] = []

    def run(command: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
        named_when_made.append((tmp_path / TABLE_FILE).exists())
        return kernel(command, stdin)

    UdpRules(tmp_path, "n1", run=run, local=lambda a: a in LOCAL).apply(_table(HERE))
    assert named_when_made == [True]
