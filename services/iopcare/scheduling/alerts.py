"""Alerts about a patient (dropout risk, missed check-in, a week below the minimum): each
raised once, as a Flag event."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from iopcare.kit.db import Database, UnitOfWork
from iopcare.scheduling import codes, fhir_map, store


class Alerts:
    def __init__(self, db: Database, notify_outbox: Callable[[], None]) -> None:
        self.db = db
        self.notify_outbox = notify_outbox

    def once(
        self, uow: UnitOfWork, patient_id: str, kind: str, about: str, text: str, at: datetime
    ) -> bool:
        """Raises the patient's alert of `kind` about `about` (an ISO week, a day, a streak)
        unless it was raised before; returns whether it was raised now."""
        if not store.raise_alert_once(uow.conn, patient_id, kind, about):
            return False
        self._publish(uow, patient_id, codes.EVENT_FOR_ALERT[kind], text, at)
        return True

    def for_patients(
        self,
        patients: list[str],
        kind: str,
        due: Callable[[UnitOfWork, str], tuple[str, str] | None],
        at: datetime,
    ) -> int:
        """The periodic checks: for each patient, in its own unit of work, the alert `due` finds
        ((about, text), or None), raised once; returns how many were raised."""
        raised = 0
        for patient_id in patients:
            with UnitOfWork(self.db) as uow:
                found = due(uow, patient_id)
                if found is not None and self.once(uow, patient_id, kind, *found, at):
                    raised += 1
                uow.commit()
        if raised:
            self.notify_outbox()
        return raised

    def _publish(
        self, uow: UnitOfWork, patient_id: str, event_type: str, text: str, at: datetime
    ) -> None:
        flag_id = str(uuid.uuid4())
        data = fhir_map.alert_flag(flag_id, patient_id, text, at)
        store.JOURNAL.publish(
            uow, event_type, f"Flag/{flag_id}/_history/1", key=patient_id, data=data, at=at
        )
