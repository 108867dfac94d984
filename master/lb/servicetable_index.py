"""The service table kept up to date by each change: what a change of one pod costs is that
pod's share, not a walk of every pod.

`compute_service_table` (master/lb/servicetable.py) reads every pod for every Service; the
feed that sends the table to the agents (master/api/servicetable.py) ran it up to once a
second while pods changed, and at 10,000 pods with ten Services one run took ~60 ms of
the event loop (5 x that at 50,000). Here each Service keeps, per pod that gives it an
endpoint, that pod's endpoints (one per service port, or None); the table entry of a
Service is assembled again only when one of those changed, from its members in name
order (the order kept until a member comes or goes).

What moves what:
- a pod: the Services of its namespace with a selector are checked against its labels;
  its endpoints in each are computed again (O(Services of the namespace)).
- a node whose `serving` changed (told by its previous version): the endpoints of its
  pods (the state's index of pods by node).
- a StatefulSet whose serviceName changed: the endpoints of its pods (their subdomain).
- a Service: its own entry; a new selector, new ports or publishNotReadyAddresses read
  the pods of its namespace again.

`table()` equals `compute_service_table` over the same state at any moment
(tests/unit/test_service_table_index.py checks it over random sequences of changes).
Reads of the state go through the lookups it is given: the pods of a namespace, of a
node, of an owner, and whether a node serves (so the core stays free of the state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from master.lb.endpoints import container_port, lb_mode, pod_endpoint
from master.lb.servicetable import TableEndpoint, TablePort, TableService
from master.model import Node, Pod, Service, StatefulSet, StoredObject, key_of, selector_matches

# A pod's endpoints in one Service: one per service port (None: none there).
Share = tuple[TableEndpoint | None, ...]


class Lookups:
    """What the index reads of the cluster besides the changes it is told."""

    def __init__(
        self,
        pods_in: Callable[[str], Iterable[Pod]],
        pods_on_node: Callable[[str], Iterable[Pod]],
        pods_of_owner: Callable[[str, str], Iterable[Pod]],
        serving: Callable[[str], bool],
    ) -> None:
        self.pods_in = pods_in
        self.pods_on_node = pods_on_node
        self.pods_of_owner = pods_of_owner
        self.serving = serving


def _share(svc: Service, pod: Pod, serving: bool, subdomain: str) -> Share | None:
    """The pod's endpoints in `svc`, one per service port; None when it gives none (as
    compute_service_table's `_endpoints` decides)."""
    found: list[TableEndpoint | None] = []
    for sp in svc.ports:
        ep = pod_endpoint(pod, sp.target_port, serving)
        if ep is None or ep.draining or not (ep.ready or svc.publish_not_ready):
            found.append(None)
            continue
        found.append(
            TableEndpoint(
                address=ep.address,
                port=ep.port,
                pod=pod.meta.name,
                node=pod.node_name,
                hostname=pod.meta.name if subdomain else "",
                subdomain=subdomain,
                pod_ip=pod.status.pod_ip,
                target_port=container_port(pod, sp.target_port) if pod.status.pod_ip else 0,
            )
        )
    return tuple(found) if any(e is not None for e in found) else None


def _reads_pods(old: Service | None, new: Service) -> bool:
    """Whether a Service's change changes which pods it lists or how (else only its own
    fields: its address, type, node ports, status)."""
    if old is None:
        return True
    if old.selector != new.selector or old.publish_not_ready != new.publish_not_ready:
        return True
    return [p.target_port for p in old.ports] != [p.target_port for p in new.ports]


class ServiceTableIndex:
    """The table, moved by each change; see the module docstring."""

    def __init__(
        self,
        services: Iterable[Service],
        statefulsets: Iterable[StatefulSet],
        lookups: Lookups,
    ) -> None:
        self._lookups = lookups
        self._services: dict[str, Service] = {}
        # Per namespace, the keys of its Services with a selector (the ones pods join).
        self._selecting: dict[str, set[str]] = {}
        # (namespace, pod owner) -> the Service that names its pods (StatefulSets).
        self._subdomains: dict[tuple[str, str], str] = {}
        # Service key -> pod key -> the pod's endpoints there (only pods that give some).
        self._members: dict[str, dict[str, Share]] = {}
        # Service key -> its members' keys in name order (absent: to sort again).
        self._order: dict[str, list[str]] = {}
        # Service key -> its table entry (absent: to assemble again).
        self._entries: dict[str, TableService] = {}
        self._table: tuple[TableService, ...] | None = None
        for sts in statefulsets:
            if sts.service_name:
                self._subdomains[(sts.meta.namespace, sts.owner)] = sts.service_name
        for svc in services:
            self._service_changed(None, svc)

    # -- changes ---------------------------------------------------------------------

    def on_change(self, obj: StoredObject, deleted: bool, previous: StoredObject | None) -> bool:
        """One object stored or removed; whether the table may have changed."""
        if isinstance(obj, Pod):
            return self._pod_changed(obj, deleted)
        if isinstance(obj, Service):
            old = previous if isinstance(previous, Service) else None
            if deleted:
                return self._service_removed(key_of(obj))
            return self._service_changed(old, obj)
        if isinstance(obj, Node):
            old_node = previous if isinstance(previous, Node) else None
            was = old_node.status.serving if old_node is not None else False
            now = obj.status.serving and not deleted
            if was == now:
                return False
            return self._pods_changed(self._lookups.pods_on_node(obj.meta.name))
        if isinstance(obj, StatefulSet):
            group = (obj.meta.namespace, obj.owner)
            name = "" if deleted else obj.service_name
            if self._subdomains.get(group, "") == name:
                return False
            if name:
                self._subdomains[group] = name
            else:
                self._subdomains.pop(group, None)
            return self._pods_changed(self._lookups.pods_of_owner(obj.owner, obj.meta.namespace))
        return False

    def _pods_changed(self, pods: Iterable[Pod]) -> bool:
        changed = False
        for pod in list(pods):
            changed = self._pod_changed(pod, False) or changed
        return changed

    def _pod_changed(self, pod: Pod, deleted: bool) -> bool:
        ns = pod.meta.namespace
        keys = self._selecting.get(ns)
        if not keys:
            return False
        pod_key = key_of(pod)
        serving: bool | None = None
        changed = False
        for svc_key in keys:
            svc = self._services[svc_key]
            share = None
            if not deleted and selector_matches(svc.selector, pod.meta.labels):
                if serving is None:
                    serving = self._lookups.serving(pod.node_name) if pod.node_name else False
                share = _share(svc, pod, serving, self._subdomains.get((ns, pod.owner), ""))
            changed = self._set_share(svc_key, pod_key, share) or changed
        return changed

    def _set_share(self, svc_key: str, pod_key: str, share: Share | None) -> bool:
        members = self._members[svc_key]
        held = members.get(pod_key)
        if held == share:
            return False
        if share is None:
            del members[pod_key]
            self._order.pop(svc_key, None)
        else:
            if held is None:
                self._order.pop(svc_key, None)
            members[pod_key] = share
        self._entries.pop(svc_key, None)
        self._table = None
        return True

    def _service_changed(self, old: Service | None, svc: Service) -> bool:
        key = key_of(svc)
        ns = svc.meta.namespace
        self._services[key] = svc
        self._entries.pop(key, None)
        self._table = None
        if not _reads_pods(old, svc) and key in self._members:
            return True
        self._members[key] = {}
        self._order.pop(key, None)
        if not svc.selector:
            self._drop_selecting(ns, key)
            return True
        self._selecting.setdefault(ns, set()).add(key)
        subdomains = self._subdomains
        for pod in self._lookups.pods_in(ns):
            if selector_matches(svc.selector, pod.meta.labels):
                serving = self._lookups.serving(pod.node_name) if pod.node_name else False
                share = _share(svc, pod, serving, subdomains.get((ns, pod.owner), ""))
                if share is not None:
                    self._members[key][key_of(pod)] = share
        return True

    def _service_removed(self, key: str) -> bool:
        svc = self._services.pop(key, None)
        if svc is None:
            return False
        self._drop_selecting(svc.meta.namespace, key)
        self._members.pop(key, None)
        self._order.pop(key, None)
        self._entries.pop(key, None)
        self._table = None
        return True

    def _drop_selecting(self, ns: str, key: str) -> None:
        keys = self._selecting.get(ns)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._selecting[ns]

    # -- the table -------------------------------------------------------------------

    def table(self) -> tuple[TableService, ...]:
        """Every Service's entry, sorted by (namespace, name): compute_service_table's."""
        if self._table is None:
            by_name = sorted(self._services.values(), key=lambda s: (s.meta.namespace, s.meta.name))
            self._table = tuple(self._entry(key_of(s)) for s in by_name)
        return self._table

    def _entry(self, key: str) -> TableService:
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        svc = self._services[key]
        members = self._members[key]
        order = self._order.get(key)
        if order is None:
            # One namespace: the key order is the name order.
            order = self._order[key] = sorted(members)
        shares = [members[k] for k in order]
        ports = tuple(
            TablePort(
                name=sp.name,
                port=sp.port,
                protocol=sp.protocol,
                app_protocol=sp.app_protocol or lb_mode(sp),
                endpoints=tuple(e for s in shares if (e := s[i]) is not None),
                node_port=sp.node_port,
            )
            for i, sp in enumerate(svc.ports)
        )
        entry = self._entries[key] = TableService(
            name=svc.meta.name,
            namespace=svc.meta.namespace,
            type=str(svc.type),
            cluster_ip="" if svc.headless else svc.cluster_ip,
            headless=svc.headless,
            ports=ports,
        )
        return entry
