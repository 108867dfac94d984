"""The load balancer's endpoints and stopping pods kept up to date by each change.

The load balancer controller (master/lb/controller.py) passes at least once a second and
after changes; each pass took every pod (`state.pods()`), matched it against every
Service (compute_lb_services) and every Ingress backend (plan_ingress), and walked them
all again for the pods being stopped (`_release`): at 50,000 pods, several walks of
every pod per pass. Here the Services' members and each pod's endpoints are kept by
master/lb/shares.py (a pod's share: its Endpoint per service port, as pod_endpoint
makes it); a port's endpoints are listed again only when its Service's version moved,
and the pods asked to stop are kept by key.

`endpoints(svc, i)` equals what compute_lb_services lists for port i of `svc`, and
`backend(svc, i)` the endpoints of an Ingress backend on it; `stopping()` the pods with
a deletion requested (tests/unit/test_lb_shares.py checks all three against the full
computations over random change sequences).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from master.lb.endpoints import listed_endpoints, pod_endpoint
from master.lb.model import Endpoint
from master.lb.shares import Lookups, ServiceShares, item
from master.model import Pod, Service, StoredObject, key_of


def _share(
    svc: Service, pod: Pod, serving: bool, subdomain: str, pod_ips: bool = False
) -> tuple[Endpoint | None, ...] | None:
    found = tuple(pod_endpoint(pod, sp.target_port, serving, pod_ips) for sp in svc.ports)
    return found if any(e is not None for e in found) else None


class LbEndpoints:
    """See the module docstring."""

    def __init__(
        self,
        services: Iterable[Service],
        pods: Iterable[Pod],
        lookups: Lookups,
        pod_ips: bool = False,
    ) -> None:
        """`pod_ips`: endpoints where the master's HAProxy reaches them
        (master/lb/endpoints.py `lb_address`), for the load balancer controller."""
        self._shares = ServiceShares(
            services, (), lookups, functools.partial(_share, pod_ips=pod_ips)
        )
        # (Service key, port index, listed or raw) -> (the Service's version, endpoints then).
        self._made: dict[tuple[str, int, bool], tuple[int, tuple[Endpoint, ...]]] = {}
        self._stopping: dict[str, Pod] = {key_of(p): p for p in pods if p.deletion_requested_at}

    def on_change(self, obj: StoredObject, deleted: bool, previous: StoredObject | None) -> bool:
        """One object stored or removed; whether an endpoint or a stopping pod changed."""
        stopping = False
        if isinstance(obj, Pod):
            key = key_of(obj)
            if not deleted and obj.deletion_requested_at:
                self._stopping[key] = obj
                stopping = True
            elif self._stopping.pop(key, None) is not None:
                stopping = True
        return self._shares.on_change(obj, deleted, previous) or stopping

    def stopping(self) -> list[Pod]:
        """The pods asked to stop and not gone yet."""
        return list(self._stopping.values())

    def endpoints(self, svc: Service, index: int) -> tuple[Endpoint, ...]:
        """Port `index` of `svc` as the load balancer lists it (compute_lb_services)."""
        return self._made_for(svc, index, True)

    def backend(self, svc: Service, index: int) -> tuple[Endpoint, ...]:
        """Port `index` of `svc` as an Ingress backend (every endpoint, as it is)."""
        return self._made_for(svc, index, False)

    def _made_for(self, svc: Service, index: int, listed: bool) -> tuple[Endpoint, ...]:
        key = key_of(svc)
        svc = self._shares.services.get(key, svc)
        if key not in self._shares.services:
            return ()
        version = self._shares.version(key)
        made = self._made.get((key, index, listed))
        if made is not None and made[0] == version:
            return made[1]
        found = (item(s, index) for s in self._shares.shares(key))
        endpoints = (
            listed_endpoints(svc, found) if listed else tuple(e for e in found if e is not None)
        )
        self._made[(key, index, listed)] = (version, endpoints)
        if len(self._made) > 4 * len(self._shares.services) + 64:
            alive = self._shares.services
            self._made = {k: v for k, v in self._made.items() if k[0] in alive}
        return endpoints
