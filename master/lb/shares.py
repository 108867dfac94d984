"""Each Service's pods and what each gives it, kept by each change: the core of the views
that list Services with their endpoints (the agents' service table, the load balancer).

Both used to be computed from every pod for every Service (compute_service_table,
compute_lb_services), the table up to once a second and the load balancer at every pass
(one a second at least) while pods changed: at 50,000 pods a walk of every pod per
Service. Here each Service keeps, per pod that gives it something, that pod's share (one
item per service port, or None: what the view makes of the pod); a view assembles a
Service again only when its `version` moved, from its members in name order (kept in
place as members come and go).

What moves what:
- a pod: the Services of its namespace with a selector are checked against its labels;
  its share in each is made again (O(Services of the namespace)).
- a node whose `serving` changed (told by its previous version): its pods' shares.
- a StatefulSet whose serviceName changed: its pods' shares (their DNS subdomain).
- a Service: a new selector, new target ports or publishNotReadyAddresses make its shares
  again from the pods of its namespace; any other change moves only its version.

Reads of the state go through the lookups it is given (the pods of a namespace, of a
node, of an owner, and whether a node serves), so the core stays free of the state.
The views' tests compare them with the full computations over random change sequences
(tests/unit/test_service_table_index.py, tests/unit/test_lb_shares.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Generic, TypeAlias, TypeVar

from master.model import Node, Pod, Service, StatefulSet, StoredObject, key_of, selector_matches

# A view's item for one service port (an endpoint); a pod's share is a tuple of them, one
# per service port (None: nothing there), made by the view's `share_of(service, pod,
# whether its node serves, its DNS subdomain)` (None: nothing at all).
E = TypeVar("E")

# A share as kept: the item alone for a one-port Service (most are; a tuple of one was 48
# bytes more per pod and view), else the tuple.
Kept: TypeAlias = "E | tuple[E | None, ...]"


def item(kept: Kept[E], index: int) -> E | None:
    """Port `index`'s item of a kept share."""
    return kept[index] if isinstance(kept, tuple) else kept


def _kept(share: tuple[E | None, ...] | None) -> Kept[E] | None:
    if share is not None and len(share) == 1:
        return share[0]
    return share


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


def _reads_pods(old: Service | None, new: Service) -> bool:
    """Whether a Service's change changes which pods it lists or what they give it (else
    only its own fields: its address, type, node ports, status)."""
    if old is None:
        return True
    if old.selector != new.selector or old.publish_not_ready != new.publish_not_ready:
        return True
    return [p.target_port for p in old.ports] != [p.target_port for p in new.ports]


class ServiceShares(Generic[E]):
    """The Services, their members and shares, moved by each change (module docstring)."""

    def __init__(
        self,
        services: Iterable[Service],
        statefulsets: Iterable[StatefulSet],
        lookups: Lookups,
        share_of: Callable[[Service, Pod, bool, str], tuple[E | None, ...] | None],
    ) -> None:
        self._lookups = lookups
        self._share_of = share_of
        self.services: dict[str, Service] = {}
        # Per namespace, the keys of its Services with a selector (the ones pods join).
        self._selecting: dict[str, set[str]] = {}
        # (namespace, pod owner) -> the Service that names its pods (StatefulSets).
        self._subdomains: dict[tuple[str, str], str] = {}
        # Service key -> pod name -> the pod's share there (only pods that give something;
        # a Service's pods are of its namespace, so the name is enough, and it is the pod's
        # own string, not a new key per pod).
        self._members: dict[str, dict[str, Kept[E]]] = {}
        # Service key -> its members' names in order (absent: to sort; kept in place after).
        self._order: dict[str, list[str]] = {}
        # Service key -> a number that moves whenever the Service or a share of it did.
        self._versions: dict[str, int] = {}
        self._next_version = 0
        # Moves whenever any Service's version moved or a Service came or went.
        self.changes = 0
        for sts in statefulsets:
            if sts.service_name:
                self._subdomains[(sts.meta.namespace, sts.owner)] = sts.service_name
        for svc in services:
            self._service_changed(None, svc)

    # -- reads -----------------------------------------------------------------------

    def version(self, key: str) -> int:
        return self._versions[key]

    def shares(self, key: str) -> list[Kept[E]]:
        """The Service's members' shares, in the members' name order (read with `item`)."""
        members = self._members[key]
        order = self._order.get(key)
        if order is None:
            order = self._order[key] = sorted(members)
        return [members[k] for k in order]

    # -- changes ---------------------------------------------------------------------

    def on_change(self, obj: StoredObject, deleted: bool, previous: StoredObject | None) -> bool:
        """One object stored or removed; whether a Service's version moved."""
        if isinstance(obj, Pod):
            return self._pod_changed(obj, deleted)
        if isinstance(obj, Service):
            if deleted:
                return self._service_removed(key_of(obj))
            return self._service_changed(previous if isinstance(previous, Service) else None, obj)
        if isinstance(obj, Node):
            old = previous if isinstance(previous, Node) else None
            was = old.status.serving if old is not None else False
            if was == (obj.status.serving and not deleted):
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

    def _moved(self, key: str) -> None:
        self._next_version += 1
        self._versions[key] = self._next_version
        self.changes += 1

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
        name = pod.meta.name
        serving: bool | None = None
        changed = False
        for svc_key in keys:
            svc = self.services[svc_key]
            share = None
            if not deleted and selector_matches(svc.selector, pod.meta.labels):
                if serving is None:
                    serving = self._lookups.serving(pod.node_name) if pod.node_name else False
                subdomain = self._subdomains.get((ns, pod.owner), "")
                share = self._share_of(svc, pod, serving, subdomain)
            changed = self._set_share(svc_key, name, share) or changed
        return changed

    def _set_share(self, svc_key: str, name: str, made: tuple[E | None, ...] | None) -> bool:
        share = _kept(made)
        members = self._members[svc_key]
        held = members.get(name)
        if held == share:
            return False
        order = self._order.get(svc_key)
        if share is None:
            del members[name]
            if order is not None:
                del order[bisect.bisect_left(order, name)]
        else:
            if held is None and order is not None:
                # In place (a memmove): sorting a large Service's names again at each pod
                # that came or went was most of its assembly.
                bisect.insort(order, name)
            members[name] = share
        self._moved(svc_key)
        return True

    def _service_changed(self, old: Service | None, svc: Service) -> bool:
        key = key_of(svc)
        ns = svc.meta.namespace
        self.services[key] = svc
        self._moved(key)
        if not _reads_pods(old, svc) and key in self._members:
            return True
        members: dict[str, Kept[E]] = {}
        self._members[key] = members
        self._order.pop(key, None)
        if not svc.selector:
            self._drop_selecting(ns, key)
            return True
        self._selecting.setdefault(ns, set()).add(key)
        for pod in self._lookups.pods_in(ns):
            if selector_matches(svc.selector, pod.meta.labels):
                serving = self._lookups.serving(pod.node_name) if pod.node_name else False
                subdomain = self._subdomains.get((ns, pod.owner), "")
                share = _kept(self._share_of(svc, pod, serving, subdomain))
                if share is not None:
                    members[pod.meta.name] = share
        return True

    def _service_removed(self, key: str) -> bool:
        svc = self.services.pop(key, None)
        if svc is None:
            return False
        self._drop_selecting(svc.meta.namespace, key)
        self._members.pop(key, None)
        self._order.pop(key, None)
        self._versions.pop(key, None)
        self.changes += 1
        return True

    def _drop_selecting(self, ns: str, key: str) -> None:
        keys = self._selecting.get(ns)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._selecting[ns]
