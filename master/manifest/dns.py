"""A pod's dnsPolicy, dnsConfig and enableServiceLinks, checked as Kubernetes checks them.

dnsPolicy is ClusterFirst (the default: the node's cluster DNS, then the node's
resolvers for other names), ClusterFirstWithHostNet (the same for pods without
hostNetwork, which pinnace pods never have), Default (the node's resolv.conf) or
None (only what dnsConfig says, so dnsConfig must name a nameserver). dnsConfig's
nameservers (IP addresses, at most 3), searches (DNS names, at most 32 and 2048
characters together) and options (a name, maybe a value) are merged into what
the policy gives by the agent (agent/poddns.py), as the kubelet does.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from master.manifest.errors import Where, describe
from master.manifest.fields import as_list, as_map, as_str, check_fields, one_of
from master.manifest.names import check_dns1123_subdomain
from master.model import DNSOption, PodDNSConfig

DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
# Kubernetes' limits (validation.MaxDNSNameservers, MaxDNSSearchPaths, MaxDNSSearchListChars).
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048


def parse_enable_service_links(data: dict[str, Any], where: Where) -> bool | None:
    value = data.get("enableServiceLinks")
    if value is None:
        return None
    if not isinstance(value, bool):
        raise where.key("enableServiceLinks").error(f"must be true or false, got {describe(value)}")
    # The default is kept as "not said", so writing it out changes no template's hash.
    return None if value else False


def _nameservers(value: Any, where: Where) -> tuple[str, ...]:
    items = as_list(value, where)
    if len(items) > MAX_NAMESERVERS:
        raise where.error(
            f"must not have more than {MAX_NAMESERVERS} nameservers, got {len(items)}"
        )
    found = []
    for i, item in enumerate(items):
        text = as_str(item, where.index(i))
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise where.index(i).error(
                f"must be an IP address (a nameserver), got {describe(text)}"
            ) from None
        found.append(text)
    return tuple(found)


def _searches(value: Any, where: Where) -> tuple[str, ...]:
    items = as_list(value, where)
    if len(items) > MAX_SEARCHES:
        raise where.error(f"must not have more than {MAX_SEARCHES} search paths, got {len(items)}")
    found = tuple(as_str(item, where.index(i)) for i, item in enumerate(items))
    if len(" ".join(found)) > MAX_SEARCH_CHARS:
        raise where.error(
            f"must not have more than {MAX_SEARCH_CHARS} characters (spaces included) in the "
            "search list"
        )
    for i, search in enumerate(found):
        # A trailing dot is fine (an absolute name).
        check_dns1123_subdomain(search.removesuffix("."), where.index(i))
    return found


def _options(value: Any, where: Where) -> tuple[DNSOption, ...]:
    found = []
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        data = as_map(item, at)
        check_fields(data, at, ("name", "value"))
        name = as_str(data.get("name") or "", at.key("name"))
        if not name:
            raise at.key("name").error("must not be empty")
        option = None if data.get("value") is None else as_str(data["value"], at.key("value"))
        found.append(DNSOption(name, option))
    return tuple(found)


def parse_dns(data: dict[str, Any], where: Where) -> tuple[str | None, PodDNSConfig | None]:
    """(dnsPolicy, dnsConfig) of a pod spec; None where the manifest says nothing (or says
    the default, ClusterFirst: so writing it out changes no template's hash)."""
    policy = None
    if data.get("dnsPolicy") is not None:
        policy = one_of(data["dnsPolicy"], where.key("dnsPolicy"), DNS_POLICIES)
    config = None
    if data.get("dnsConfig") is not None:
        at = where.key("dnsConfig")
        raw = as_map(data["dnsConfig"], at)
        check_fields(raw, at, ("nameservers", "searches", "options"))
        config = PodDNSConfig(
            nameservers=_nameservers(raw.get("nameservers"), at.key("nameservers")),
            searches=_searches(raw.get("searches"), at.key("searches")),
            options=_options(raw.get("options"), at.key("options")),
        )
    if policy == "None":
        if config is None:
            raise where.key("dnsConfig").error(
                'is required when dnsPolicy is "None" (it is all the pod\'s DNS settings)'
            )
        if not config.nameservers:
            raise (
                where.key("dnsConfig")
                .key("nameservers")
                .error('must name at least one nameserver when dnsPolicy is "None"')
            )
    return (None if policy == "ClusterFirst" else policy), config
