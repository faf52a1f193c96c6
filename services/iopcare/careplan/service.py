"""The care plan service layer: one method per use case, each one unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.domain.model import check_new_plan
from iopcare.kit import audit, fhir, topics
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import NotFound
from iopcare.kit.events import Event, append_to_outbox
from iopcare.kit.requests import create_once


def _new_id() -> str:
    return str(uuid.uuid4())


class CarePlans:
    def __init__(
        self,
        db: Database,
        *,
        max_resource_bytes: int = fhir.DEFAULT_MAX_BYTES,
        notify_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.max_resource_bytes = max_resource_bytes
        self.notify_outbox = notify_outbox

    def create(self, principal: Principal, request_id: str, fhir_json: str) -> store.StoredPlan:
        """Validates and stores a new plan (version 1) with its history, event and audit rows."""
        document, resource = fhir.parse_document(
            fhir_json, "CarePlan", max_bytes=self.max_resource_bytes, field="fhir_json"
        )
        draft = fhir_map.draft_from_fhir(resource)
        check_new_plan(draft, field_prefix="fhir_json.")
        assert draft.patient_id is not None and draft.status is not None  # checked above

        def _create(uow: UnitOfWork, plan_id: str) -> None:
            now = datetime.now(UTC)
            stored = store.StoredPlan(
                id=plan_id,
                version=1,
                patient_id=draft.patient_id or "",
                status=draft.status or "",
                updated_at=now,
                resource=fhir_map.stamp(document, plan_id, 1, now),
            )
            store.insert_plan(uow.conn, stored, principal.reference)
            append_to_outbox(
                uow.conn,
                store.outbox,
                topics.CAREPLAN,
                Event(
                    type=codes.EVENT_CREATED,
                    source=codes.SOURCE,
                    subject=f"CarePlan/{plan_id}/_history/1",
                    key=stored.patient_id,
                    data=stored.resource,
                    time=now,
                ),
            )
            audit.record(
                uow.conn,
                store.audit_log,
                principal,
                audit.CREATE,
                resource=f"CarePlan/{plan_id}",
                patient_id=stored.patient_id,
            )

        plan_id, created = create_once(
            self.db, store.request_log, principal, "CreateCarePlan", request_id, _create, _new_id
        )
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            plan = store.load_plan(conn, plan_id)
        if plan is None:  # pragma: no cover - committed above, and plans are never deleted
            raise NotFound(f"CarePlan/{plan_id} not found")
        return plan

    def get(self, principal: Principal, plan_id: str) -> store.StoredPlan:
        with self.db.read() as conn:
            plan = store.load_plan(conn, plan_id) if plan_id else None
        if plan is None:
            audit.record_separately(
                self.db,
                store.audit_log,
                principal,
                audit.READ,
                resource=f"CarePlan/{plan_id}",
                patient_id=None,
                outcome=audit.NOT_FOUND,
            )
            raise NotFound(f"CarePlan/{plan_id} not found", resource=f"CarePlan/{plan_id}")
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            audit.READ,
            resource=f"CarePlan/{plan.id}",
            patient_id=plan.patient_id,
        )
        return plan
