"""Storing a message in a patient's thread with its event: the one write every message takes,
whether a clinician posts it (`thread`), a crisis raises it (`crisis`) or a consumed event writes
it (`handlers`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from iopcare.kit import labels, teams
from iopcare.kit.db import UnitOfWork
from iopcare.kit.versioned import Stored
from iopcare.notes import codes, fhir_map, store, watch
from iopcare.notes.domain.messages import NewMessage


def append_message(
    uow: UnitOfWork,
    message: NewMessage,
    *,
    message_id: str | None = None,
    source_event_id: str | None = None,
    traceparent: str | None = None,
) -> str:
    """Stores a message with its `message.posted` event in the caller's unit of work (and marks
    the thread for its watchers); returns its id."""
    message_id = message_id or str(uuid.uuid4())
    sent_at = datetime.now(UTC)
    resource = fhir_map.communication(message_id, message, sent_at)
    store.insert_message(uow.conn, message_id, message, resource, sent_at, source_event_id)
    watch.posted(uow.conn, message.patient_id)
    for recipient in message.recipients:
        # Wakes the recipient's own stream (WatchThread addressed_to_me): `watch.inbox_key`.
        watch.posted(uow.conn, watch.inbox_key(recipient))
    posted = Stored(message_id, 1, message.patient_id, "completed", sent_at, resource)
    store.JOURNAL.publish_version(
        uow, "Communication", posted, codes.EVENT_MESSAGE_POSTED, parent_trace=traceparent
    )
    return message_id


def members(uow: UnitOfWork, patient_id: str, roles: tuple[str, ...], on: Any = None) -> list[str]:
    """The current members of the patient's team in these roles (role order, no repeats)."""
    day = on or teams.today()
    found = (
        member
        for role in roles
        for member in teams.members_with_role(
            uow.conn, store.care_team_member, patient_id, role, day
        )
    )
    return list(dict.fromkeys(found))


def expand_recipients(
    uow: UnitOfWork, patient_id: str, recipients: tuple[str, ...]
) -> tuple[str, ...]:
    """Recipients as references: a team role (`role:dietitian`) becomes its current members."""
    expanded: list[str] = []
    for ref in recipients:
        if ref.startswith("role:"):
            expanded += members(uow, patient_id, (ref[5:],))
        else:
            expanded.append(ref)
    return tuple(dict.fromkeys(expanded))


def derived_labels(source: Any) -> tuple[tuple[str, str], ...]:
    """The security labels (system, code) of an event's resource, and of the entries of a
    Bundle of them (scheduling's proposed sessions): what a message derived from it inherits."""
    found = labels.security_of(source)
    for entry in getattr(source, "entry", None) or []:
        resource = getattr(entry, "resource", None)
        if resource is not None:
            found = labels.union(found, labels.security_of(resource))
    return tuple((str(s.get("system") or ""), str(s["code"])) for s in found if s.get("code"))
