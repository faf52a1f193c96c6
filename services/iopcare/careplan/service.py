"""The care plan service layer: one method per use case, each one unit of work."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.domain.model import (
    apply_mask,
    check_new_plan,
    check_revision,
    check_update_request,
)
from iopcare.kit import audit, fhir, paging, topics
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    IopcareError,
    NotFound,
    StaleVersion,
)
from iopcare.kit.events import Event, append_to_outbox
from iopcare.kit.requests import create_once
from iopcare.kit.versioned import Version


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

    @contextmanager
    def _audit_refusals(
        self, principal: Principal, action: str, resource: str, patient_id: str | None = None
    ) -> Iterator[None]:
        """Every refused write is audited too (reliability C11), in a transaction of its own."""
        try:
            yield
        except IopcareError as exc:
            outcome = audit.NOT_FOUND if isinstance(exc, NotFound) else audit.DENIED
            audit.record_separately(
                self.db,
                store.audit_log,
                principal,
                action,
                resource=resource,
                patient_id=patient_id,
                outcome=outcome,
                detail=exc.reason,
            )
            raise

    def _publish(self, uow: UnitOfWork, plan: store.StoredPlan, event_type: str) -> None:
        append_to_outbox(
            uow.conn,
            store.outbox,
            topics.CAREPLAN,
            Event(
                type=event_type,
                source=codes.SOURCE,
                subject=f"CarePlan/{plan.id}/_history/{plan.version}",
                key=plan.patient_id,
                data=plan.resource,
                time=plan.updated_at,
            ),
        )

    def create(self, principal: Principal, request_id: str, fhir_json: str) -> store.StoredPlan:
        """Validates and stores a new plan (version 1) with its history, event and audit rows."""
        with self._audit_refusals(principal, audit.CREATE, "CarePlan"):
            document, resource = fhir.parse_document(
                fhir_json, "CarePlan", max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            draft = fhir_map.draft_from_fhir(resource)
            check_new_plan(draft, field_prefix="fhir_json.")
            patient_id, status = str(draft.patient_id), str(draft.status)

            def _create(uow: UnitOfWork, plan_id: str) -> None:
                now = datetime.now(UTC)
                stored = store.StoredPlan(
                    id=plan_id,
                    version=1,
                    patient_id=patient_id,
                    status=status,
                    updated_at=now,
                    resource=fhir_map.stamp(document, plan_id, 1, now),
                )
                store.plans.insert(uow.conn, stored, principal.reference)
                self._publish(uow, stored, codes.EVENT_CREATED)
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.CREATE,
                    resource=f"CarePlan/{plan_id}",
                    patient_id=patient_id,
                )

            plan_id, created = create_once(
                self.db,
                store.request_log,
                principal,
                "CreateCarePlan",
                request_id,
                _create,
                _new_id,
            )
        if created:
            self.notify_outbox()
        return self._load(plan_id)

    def update(
        self,
        principal: Principal,
        plan_id: str,
        expected_version: int,
        fhir_json: str,
        mask: list[str],
        reason: str = "",
    ) -> store.StoredPlan:
        """Stores a new version if `expected_version` is still current; never a lost update."""
        resource_name = f"CarePlan/{plan_id}"
        with self._audit_refusals(principal, audit.UPDATE, resource_name):
            # With a mask the document may carry only the masked elements, so it is validated
            # as a whole only after merging; its JSON and its type are checked at once.
            document = fhir.load_json(
                fhir_json, max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            if not isinstance(document, dict) or document.get("resourceType") != "CarePlan":
                raise InvalidArgument(
                    "fhir_json must be a CarePlan",
                    [FieldViolation("fhir_json.resourceType", "must be CarePlan")],
                )
            check_update_request(plan_id, document.get("id"), expected_version, reason)
            with UnitOfWork(self.db) as uow:
                current = store.plans.load(uow.conn, plan_id)
                if current is None:
                    raise NotFound(f"{resource_name} not found", resource=resource_name)
                if current.version != expected_version:
                    raise StaleVersion(resource_name, expected_version, current.version)
                current_document = json.loads(current.resource)
                merged = apply_mask(current_document, document, mask)
                merged_document, merged_resource = fhir.parse_document(
                    merged, "CarePlan", field="fhir_json"
                )
                change = check_revision(
                    fhir_map.draft_from_fhir(fhir.parse_resource(current_document)),
                    fhir_map.draft_from_fhir(merged_resource),
                )
                now = datetime.now(UTC)
                revised = store.StoredPlan(
                    id=plan_id,
                    version=current.version + 1,
                    patient_id=current.patient_id,
                    status=str(merged_resource.status),
                    updated_at=now,
                    resource=fhir_map.stamp(merged_document, plan_id, current.version + 1, now),
                )
                if not store.plans.update(
                    uow.conn, revised, expected_version, principal.reference, change, reason
                ):
                    # A concurrent update committed between our read and our write.
                    latest = store.plans.load(uow.conn, plan_id)
                    raise StaleVersion(
                        resource_name, expected_version, latest.version if latest else 0
                    )
                self._publish(uow, revised, codes.EVENT_FOR_CHANGE[change])
                audit.record(
                    uow.conn,
                    store.audit_log,
                    principal,
                    audit.UPDATE,
                    resource=resource_name,
                    patient_id=current.patient_id,
                    detail=change,
                )
                uow.commit()
        self.notify_outbox()
        return revised

    def get(self, principal: Principal, plan_id: str) -> store.StoredPlan:
        with self.db.read() as conn:
            plan = store.plans.load(conn, plan_id) if plan_id else None
        return self._audited_read(principal, f"CarePlan/{plan_id}", plan)

    def get_version(self, principal: Principal, plan_id: str, version: int) -> store.StoredPlan:
        if version < 1:
            raise InvalidArgument(
                "version must be >= 1", [FieldViolation("version", "a version number >= 1")]
            )
        with self.db.read() as conn:
            plan = store.plans.load_version(conn, plan_id, version)
        return self._audited_read(principal, f"CarePlan/{plan_id}/_history/{version}", plan)

    def list_versions(
        self, principal: Principal, plan_id: str, page_size: int, page_token: str
    ) -> tuple[list[Version], str]:
        size = paging.page_size(page_size)
        position = paging.decode(page_token)
        before = int(position["before"]) if position is not None else None
        with self.db.read() as conn:
            plan = store.plans.load(conn, plan_id)
            versions = store.plans.versions(conn, plan_id, size + 1, before) if plan else []
        self._audited_read(principal, f"CarePlan/{plan_id}/_history", plan)
        token = ""
        if len(versions) > size:
            versions = versions[:size]
            token = paging.encode({"before": versions[-1].version})
        return versions, token

    def _audited_read(
        self, principal: Principal, resource: str, plan: store.StoredPlan | None
    ) -> store.StoredPlan:
        if plan is None:
            audit.record_separately(
                self.db,
                store.audit_log,
                principal,
                audit.READ,
                resource=resource,
                patient_id=None,
                outcome=audit.NOT_FOUND,
            )
            raise NotFound(f"{resource} not found", resource=resource)
        audit.record_separately(
            self.db,
            store.audit_log,
            principal,
            audit.READ,
            resource=resource,
            patient_id=plan.patient_id,
        )
        return plan

    def _load(self, plan_id: str) -> store.StoredPlan:
        with self.db.read() as conn:
            plan = store.plans.load(conn, plan_id)
        if plan is None:  # committed above, and plans are never deleted
            raise FailedPrecondition(f"CarePlan/{plan_id} vanished after it was created")
        return plan
