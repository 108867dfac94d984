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
from master.api.managedfields import Manager, entries_from_request, record, with_entries
from master.api.render import render_object
from master.app.apply import FieldTracker
from master.app.errors import AppError
from master.model import StoredObject

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
