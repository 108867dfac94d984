"""`pinnace describe ingress`: kubectl's layout for an Ingress (its describeIngressV1).

Name, labels, namespace, the address served, the class and the default backend, then
the TLS secrets and the hosts they terminate, the rules (host, path, backend with the
endpoints of the Service behind it, as `get endpoints` shows them) and the events, among
them the Warnings that say what of the Ingress is not served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from master.cli.describe_render import (
    Related,
    Writer,
    _annotations,
    _endpoint_addresses,
    _events,
    _labels,
)

Obj = dict[str, Any]


def _backend(backend: Obj | None, endpoints: Mapping[str, Obj]) -> str:
    service = (backend or {}).get("service") or {}
    name = service.get("name", "")
    port = service.get("port") or {}
    shown = port.get("name") or port.get("number", "")
    if name not in endpoints:
        return f'{name}:{shown} (<error: services "{name}" not found>)'
    return f"{name}:{shown} ({_endpoint_addresses(endpoints[name])})"


def describe_ingress(ing: Obj, related: Related, now: float) -> str:
    w = Writer()
    spec, meta = ing.get("spec") or {}, ing.get("metadata") or {}
    endpoints: Mapping[str, Obj] = related.extra.get("endpoints") or {}
    w(0, f"Name:\t{meta.get('name', '')}")
    _labels(w, 0, ing)
    w(0, f"Namespace:\t{meta.get('namespace', 'default')}")
    ingress = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    w(0, f"Address:\t{','.join(str(i.get('ip') or i.get('hostname', '')) for i in ingress)}")
    w(0, f"Ingress Class:\t{spec.get('ingressClassName') or '<none>'}")
    default = spec.get("defaultBackend")
    w(0, f"Default backend:\t{_backend(default, endpoints) if default else '<default>'}")
    if spec.get("tls"):
        w(0, "TLS:")
        for tls in spec["tls"]:
            hosts = ",".join(tls.get("hosts") or [])
            if tls.get("secretName"):
                w(1, f"{tls['secretName']} terminates {hosts}")
            else:
                w(1, f"SNI routes {hosts}")
    w(0, "Rules:")
    w(1, "Host\tPath\tBackends")
    w(1, "----\t----\t--------")
    shown = 0
    for rule in spec.get("rules") or []:
        paths = (rule.get("http") or {}).get("paths")
        if not paths:
            continue
        shown += 1
        w(1, f"{rule.get('host') or '*'}\t")
        for path in paths:
            w(2, f"\t{path.get('path', '')} \t{_backend(path.get('backend'), endpoints)}")
    if not shown:
        w(1, f"*\t*\t{_backend(default, endpoints) if default else '<default>'}")
    _annotations(w, 0, ing)
    _events(w, related.events, now)
    return w.text()
