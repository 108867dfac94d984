"""dnsPolicy and dnsConfig (issue 17 point 3): manifest checks, and the resolv.conf made of them."""

from __future__ import annotations

from typing import Any

import pytest

from agent.containers import container_config
from agent.model import ContainerSpec, DNSOption, PodAssignment, PodDNS, PodSpec
from agent.poddns import NodeDns, ResolvConf, parse_resolv_conf, pod_resolv_conf
from master.model import Deployment, PodDNSConfig
from master.model import DNSOption as ManifestOption
from tests.unit.test_manifest_support import DEPLOYMENT, error, mutate, parse

SPEC = "spec.template.spec"
NODE = NodeDns("169.254.7.9", "cluster.local")
HOST = parse_resolv_conf("# host\nnameserver 127.0.0.53\nsearch corp.example\noptions edns0\n")


def _pod_spec(**fields: Any) -> Deployment:
    doc = DEPLOYMENT
    for key, value in fields.items():
        doc = mutate(doc, f"{SPEC}.{key}", value)
    (dep,) = parse(doc).objects
    assert isinstance(dep, Deployment)
    return dep


def test_the_manifest_keeps_policy_config_and_links() -> None:
    config = {
        "nameservers": ["1.1.1.1"],
        "searches": ["corp.example."],
        "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}],
    }
    spec = _pod_spec(dnsPolicy="None", dnsConfig=config, enableServiceLinks=False).template.spec

    assert spec.dns_policy == "None"
    assert spec.dns_config == PodDNSConfig(
        ("1.1.1.1",), ("corp.example.",), (ManifestOption("ndots", "2"), ManifestOption("rotate"))
    )
    assert spec.enable_service_links is False


def test_written_defaults_equal_unwritten_ones() -> None:
    # So `get -o yaml | apply` never changes a template's hash (no surprise rollout).
    written = _pod_spec(dnsPolicy="ClusterFirst", enableServiceLinks=True).template
    unwritten = _pod_spec().template

    assert written == unwritten


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dnsPolicy": "Cluster"}, f'{SPEC}.dnsPolicy: must be one of "ClusterFirst"'),
        ({"dnsPolicy": "None"}, f'{SPEC}.dnsConfig: is required when dnsPolicy is "None"'),
        (
            {"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}},
            f"{SPEC}.dnsConfig.nameservers: must name at least one nameserver",
        ),
        (
            {"dnsConfig": {"nameservers": ["dns.example"]}},
            f'{SPEC}.dnsConfig.nameservers[0]: must be an IP address (a nameserver), got "dns',
        ),
        (
            {"dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"]}},
            f"{SPEC}.dnsConfig.nameservers: must not have more than 3 nameservers, got 4",
        ),
        (
            {"dnsConfig": {"searches": ["Bad_Domain"]}},
            f"{SPEC}.dnsConfig.searches[0]: must be a DNS-1123 subdomain",
        ),
        (
            {"dnsConfig": {"searches": [f"s{i}.example" for i in range(33)]}},
            f"{SPEC}.dnsConfig.searches: must not have more than 32 search paths, got 33",
        ),
        (
            {"dnsConfig": {"options": [{"value": "2"}]}},
            f"{SPEC}.dnsConfig.options[0].name: must not be empty",
        ),
        ({"enableServiceLinks": "yes"}, f"{SPEC}.enableServiceLinks: must be true or false"),
    ],
)
def test_mistakes_are_one_sentence_naming_the_field(fields: dict[str, Any], message: str) -> None:
    doc = DEPLOYMENT
    for key, value in fields.items():
        doc = mutate(doc, f"{SPEC}.{key}", value)

    assert message in error(doc)


def test_cluster_first_is_the_cluster_dns_with_kubernetes_searches_and_ndots() -> None:
    conf = pod_resolv_conf(PodDNS(), "shop", NODE, HOST)

    assert conf == ResolvConf(
        ("169.254.7.9",),
        ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"),
        ("ndots:5",),
    )


def test_dns_config_is_merged_into_the_policys() -> None:
    dns = PodDNS(
        "ClusterFirst",
        ("1.1.1.1",),
        ("extra.example", "svc.cluster.local"),
        (DNSOption("ndots", "2"), DNSOption("rotate")),
    )

    conf = pod_resolv_conf(dns, "default", NODE, HOST)

    assert conf.nameservers == ("169.254.7.9", "1.1.1.1")
    assert conf.searches[-1] == "extra.example"
    assert conf.searches.count("svc.cluster.local") == 1
    assert conf.options == ("ndots:2", "rotate")


def test_default_is_the_nodes_own_and_none_is_only_the_config() -> None:
    assert pod_resolv_conf(PodDNS("Default"), "default", NODE, HOST) == ResolvConf()
    with_config = pod_resolv_conf(
        PodDNS("Default", ("1.1.1.1",)), "default", NODE, HOST
    )  # the node's loopback resolver is no use inside a container
    assert with_config.nameservers == ("1.1.1.1",)
    assert with_config.searches == ("corp.example",)
    none = pod_resolv_conf(PodDNS("None", ("9.9.9.9",)), "default", NODE, HOST)
    assert none == ResolvConf(("9.9.9.9",), (), ())


def test_a_node_without_cluster_dns_falls_back_to_default() -> None:
    assert pod_resolv_conf(PodDNS(), "default", NodeDns(""), HOST) == ResolvConf()


def test_every_pod_has_its_name_as_hostname_cut_to_a_dns_label() -> None:
    spec = ContainerSpec("web", "pinnace/httpd")
    member = PodAssignment("db-0", 1, PodSpec((spec,)), owner="StatefulSet/db")
    long = PodAssignment("d" * 70 + "-0", 1, PodSpec((spec,)), owner="StatefulSet/d")
    replica = PodAssignment("web-7d9f-abcde", 1, PodSpec((spec,)), owner="web")
    elsewhere = PodAssignment("team-a/db-1", 1, PodSpec((spec,)), owner="StatefulSet/db")

    assert container_config("n", "127.0.0.1", member, spec, 0).hostname == "db-0"
    assert container_config("n", "127.0.0.1", long, spec, 0).hostname == "d" * 63
    # A Deployment's replica too, as Kubernetes gives it (the engine's default would be
    # a container id, a sandbox holder's with pod sandboxes).
    assert container_config("n", "127.0.0.1", replica, spec, 0).hostname == "web-7d9f-abcde"
    # A pod of another namespace: its name alone (a '/' is no hostname's).
    assert container_config("n", "127.0.0.1", elsewhere, spec, 0).hostname == "db-1"
