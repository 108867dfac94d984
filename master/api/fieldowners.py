"""The FieldTracker every API edge hands the application layer (master/app/apply.py).

master/app decides what is stored; which manager changed which fields is
bookkeeping about the wire shape, so it is done here, on the objects as
master/api/render.py renders them for both APIs: the tracker renders the stored
and the planned object and lets master/api/managedfields.py update the ledger.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from master.api.fieldsets import FieldSetError
from master.api.managedfields import (
    MEMO_LIMIT,
    Manager,
    entries_from_request,
    record,
    with_entries,
)
from master.api.render import (
    render_container_statuses,
    render_object,
    render_pod_status,
    rfc3339,
)
from master.app.apply import FieldTracker
from master.app.errors import AppError
from master.model import Event, ManagedFieldsEntry, Pod, StoredObject, evolve

log = logging.getLogger(__name__)

# The manager of writes made with the pinnace CLI (gRPC API).
CLI_MANAGER = "pinnace"


def field_tracker(
    manager: Manager,
    now: float,
    config: dict[str, Any] | None = None,
    force: bool = False,
    sent: dict[str, Any] | None = None,
) -> FieldTracker:
    """Records `manager`'s write (an Apply of `config`, `force`d or not, or an Update);
    a manager without an API version writes in each object's own. `sent` is the object
    as the request has it: managedFields it carries replace the stored ones."""

    def track(existing: StoredObject | None, planned: StoredObject) -> StoredObject:
        old = render_object(existing, now) if existing is not None else None
        new = render_object(planned, now)
        given = entries_from_request(sent) if sent is not None else None
        entries = existing.meta.managed_fields if existing is not None else ()
        who = manager if manager.api_version else replace(manager, api_version=new["apiVersion"])
        try:
            ledger = record(
                entries if given is None else given, old, new, planned.kind, who, now, config,
                force,
            )  # fmt: skip
        except FieldSetError as e:
            if manager.operation == "Apply":
                raise AppError("invalid", f"the applied configuration does not fit: {e}") from None
            # An object the validators accepted always fits; should one not, the write
            # matters more than its bookkeeping: the stored ledger stays as it was.
            log.warning(
                "managedFields of %s %s not updated: %s", planned.kind, planned.meta.name, e
            )
            return with_entries(planned, entries)
        return with_entries(planned, ledger)

    return track


def cli_update(now: float, subresource: str = "") -> FieldTracker:
    """An Update by the pinnace CLI (apply, scale, edit over gRPC)."""
    return field_tracker(Manager(CLI_MANAGER, "Update", "", subresource), now)


def writer_fields(
    existing: StoredObject | None,
    planned: StoredObject,
    writer: str,
    subresource: str,
    now: float,
) -> tuple[ManagedFieldsEntry, ...]:
    """The ledger after the master's own write of `planned` (master/writers.py names the
    writers): an Update by `writer`, through `subresource` or of the object itself, which
    then owns the fields it set or changed (status fields only, through "status"). It is
    made from `planned`'s own ledger (made from `existing`'s), so writes recorded one after
    the other before a put all count. `with_entries(planned, ledger)` is the object."""
    if existing is None and not planned.meta.managed_fields and not subresource:
        # A creation (every pod a deployment makes, every event): its ledger is the same
        # as that of the creations before it of the same writer, second and form.
        form = creation_form(planned)
        if form is not None:
            key = (writer, int(now), form)
            found = _CREATED_LEDGERS.get(key)
            if found is None:
                found = (planned, _recorded(None, planned, writer, subresource, now))
                if len(_CREATED_LEDGERS) >= MEMO_LIMIT:
                    _CREATED_LEDGERS.clear()
                _CREATED_LEDGERS[key] = found
            return found[1]
    if subresource == "status" and isinstance(planned, Pod) and isinstance(existing, Pod):
        # A pod's status write (every agent report): its ledger is that of every status
        # write of the same writer and second, from the same ledger, with the same form.
        form = status_change_form(existing, planned)
        skey = (writer, int(now), planned.meta.managed_fields, form)
        ledger = _STATUS_LEDGERS.get(skey)
        if ledger is None:
            ledger = _recorded(existing, planned, writer, subresource, now)
            if len(_STATUS_LEDGERS) >= MEMO_LIMIT:
                _STATUS_LEDGERS.clear()
            _STATUS_LEDGERS[skey] = ledger
        return ledger
    return _recorded(existing, planned, writer, subresource, now)


# Ledgers of pod status writes by (writer, second, ledger before, status_change_form).
_STATUS_LEDGERS: dict[
    tuple[str, int, tuple[ManagedFieldsEntry, ...], tuple[object, ...]],
    tuple[ManagedFieldsEntry, ...],
] = {}

_MISSING = object()


def status_change_form(old: Pod, new: Pod) -> tuple[object, ...]:
    """What the ledger of a status write turning `old` into `new` depends on besides the
    ledger before it, the writer and the second: which fields of the rendered status
    (render_pod_status without a pod network, what `_recorded` compares) changed, and
    where a changed field has children (portMap's ports, the conditions' fields) which
    of them came, went or changed. Values are left out (a leaf's value is no field of
    the ledger; only whether it changed is), so the reports of thousands of pods that
    go from Pending to Running in one second have one form, and the render and compare
    of each are done once per form and second instead of once per report. It reads the
    model as render_pod_status renders it, leaf by leaf; the tests hold it to the full
    computation over random pairs and pin the rendered fields it knows."""
    so, sn = old.status, new.status
    ho, hn = so.host_ip, sn.host_ip
    # hostIP, hostIPs, podIP, podIPs (no pod network: the pod's address is its host's).
    host_same = ho == hn
    po, pn = so.port_map, sn.port_map
    ports: tuple[tuple[str, bool, bool], ...] = ()
    if po != pn:
        if not po:  # (a pod's first report: every port came)
            ports = tuple(sorted((k, False, True) for k in pn))
        else:
            ports = tuple(
                sorted(
                    (k, k in po, k in pn)
                    for k in po.keys() | pn.keys()
                    if po.get(k, _MISSING) != pn.get(k, _MISSING)
                )
            )
    # (A list in the ports' order: equal maps in another order are other endpoints; lists
    # of other lengths are never equal and are not made.)
    endpoints_same = (po is pn and host_same) or (
        (len(po) if ho else 0) == (len(pn) if hn else 0)
        and ([f"{ho}:{hp}" for hp in po.values()] if ho else [])
        == ([f"{hn}:{hp}" for hp in pn.values()] if hn else [])
    )
    co, cn = so.container_statuses, sn.container_statuses
    # (One rendered entry a container: lists of other lengths are not rendered.)
    containers_same = co == cn or (
        len(co) == len(cn) and render_container_statuses(co) == render_container_statuses(cn)
    )
    # The conditions: each True or False (with a reason when False), all at one time.
    # (Equal times print alike: not printed.)
    to, tn = so.started_at or old.meta.created_at, sn.started_at or new.meta.created_at
    sched_same = to == tn or rfc3339(to) == rfc3339(tn)
    so_t, sn_t = so.started_at, sn.started_at
    started_same = so_t == sn_t or rfc3339(so_t) == rfc3339(sn_t)
    return (
        so.phase == sn.phase,
        so.reason == sn.reason,
        so.message == sn.message,
        host_same,
        started_same,
        containers_same,
        endpoints_same,
        ports,
        sched_same,
        bool(old.node_name),
        bool(new.node_name),
        bool(co) and all(c.ready for c in co),
        bool(cn) and all(c.ready for c in cn),
        so.ready,
        sn.ready,
    )


# Ledgers of creations by (writer, second, creation_form), each beside the object it was
# computed for (which keeps the objects the form names by identity alive: no other can
# take their ids while the entry stands).
_CREATED_LEDGERS: dict[
    tuple[str, int, tuple[object, ...]], tuple[StoredObject, tuple[ManagedFieldsEntry, ...]]
] = {}


def creation_form(obj: StoredObject) -> tuple[object, ...] | None:
    """What the ledger of `obj`'s creation depends on, for the kinds the master creates
    thousands of (pods, events; None for the others): everything its rendering's tracked
    fields are made from, less its identity (name, uid, version, times), which the ledger
    leaves out. Pods of one deployment pass hold one spec and one labels mapping, and an
    event's texts are plain values in fixed places, so their forms repeat and the render,
    walk and field-set look-ups of a creation's bookkeeping are done once per form and
    second instead of once per pod and event (the tests hold this to the full computation,
    field by field)."""
    meta = obj.meta
    if isinstance(obj, Pod):
        return (
            "Pod",
            id(obj.spec),  # (by identity: one object for a template's pods)
            tuple(meta.labels.items()),
            tuple(meta.annotations.items()),
            meta.namespace,
            obj.owner,
            obj.template_hash,
            obj.node_name,
            obj.epoch,
            obj.deletion_requested_at,
            obj.deletion_grace_seconds,
        )
    if isinstance(obj, Event):
        return (
            "Event",
            tuple(meta.labels.items()),
            tuple(meta.annotations.items()),
            obj.first_seen > 0,  # (rendered null when not)
            obj.last_seen > 0,
        )
    return None


def _recorded(
    existing: StoredObject | None,
    planned: StoredObject,
    writer: str,
    subresource: str,
    now: float,
) -> tuple[ManagedFieldsEntry, ...]:
    """writer_fields, computed."""
    old: dict[str, Any] | None
    if subresource == "status" and isinstance(planned, Pod) and isinstance(existing, Pod):
        # A pod's status write (the kubelet's report, every pod at least once) owns status
        # fields only (managedfields.tracked_status): the status alone is rendered.
        old, new = {"status": render_pod_status(existing)}, {"status": render_pod_status(planned)}
        api_version = "v1"
    else:
        # Rendered without their ledgers, which no manager owns (managedfields.tracked
        # drops them): parsing every entry's FieldsV1 twice per write was a share of each.
        old = render_object(_unledgered(existing), now) if existing is not None else None
        new = render_object(_unledgered(planned), now)
        api_version = str(new["apiVersion"])
    who = Manager(writer, "Update", api_version, subresource)
    try:
        ledger = record(planned.meta.managed_fields, old, new, planned.kind, who, now)
    except FieldSetError as e:
        # The master's own objects always fit; should one not, the write matters more
        # than its bookkeeping.
        log.warning("managedFields of %s %s not updated: %s", planned.kind, planned.meta.name, e)
        return planned.meta.managed_fields
    return ledger


def _unledgered(obj: StoredObject) -> StoredObject:
    """`obj` without its managedFields (itself when it has none)."""
    if not obj.meta.managed_fields:
        return obj
    return evolve(obj, meta=evolve(obj.meta, managed_fields=()))
