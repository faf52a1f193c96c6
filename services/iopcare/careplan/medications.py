"""The medication list and the reconciliation of inbound medications (issue 12, part 1).

The prescribers' (psychiatrist's and physician's) use cases on the rules of
`domain.medications`: MedicationStatements and MedicationRequests versioned like every careplan
resource (history with who, what and why), each write audited, evented and made once per request
id; reconciliation items made from the medications a plan brings in at intake (`$handoff`, or a
plan drafted or created with contained MedicationStatements or MedicationRequests), resolved by a
prescriber, and a team Task raised for items left unresolved past the program's deadline. See
docs/medications.md and ADR 0019.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, select

from iopcare.careplan import codes, store
from iopcare.careplan import medication_fhir as mf
from iopcare.careplan.base import Asked, Change, new_id, revise_by
from iopcare.careplan.domain import medications as rules
from iopcare.careplan.domain.model import apply_mask
from iopcare.careplan.listing import Listings, Page
from iopcare.kit import audit, fhir, labels, privacy, scopes, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork, as_utc
from iopcare.kit.errors import (
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from iopcare.kit.requests import change_once
from iopcare.kit.versioned import Stored

#: Top-level elements an update mask may name.
MASKABLE = frozenset(
    {
        "status",
        "statusReason",
        "medicationCodeableConcept",
        "effectivePeriod",
        "effectiveDateTime",
        "dosage",
        "dosageInstruction",
        "reasonCode",
        "note",
        "intent",
        "authoredOn",
        "dispenseRequest",
    }
)
RECONCILIATION = "MedicationReconciliation"


#: Bases that never see a Part 2 medication's content over gRPC: the program's administrative
#: and service identities (42 CFR 2.12(c)(3): Part 2 records go to those treating the patient).
#: An outside EHR (`role:system`) is not among them: every answer it gets passes the gateway's
#: release rule, which lets a Part 2 record out only under the patient's consent.
PART2_HIDDEN_FROM = frozenset({"role:admin", "role:service"})


def hidden(basis: str, resource_json: str) -> bool:
    """Whether a medication stays out of what this caller sees: a 42 CFR Part 2 record (an SUD
    label) to an administrative or service identity."""
    codes_ = [str(label.get("code")) for label in labels.security_of(json.loads(resource_json))]
    return basis in PART2_HIDDEN_FROM and privacy.is_part2(codes_)


@dataclass(frozen=True)
class ItemRow:
    """One reconciliation item as stored."""

    id: str
    patient_id: str
    care_plan_id: str
    resource: str
    received_at: datetime
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    medication_id: str | None

    @staticmethod
    def of(row: Row[Any]) -> ItemRow:
        return ItemRow(
            row.id,
            row.patient_id,
            row.care_plan_id,
            row.resource,
            as_utc(row.received_at),
            row.decision,
            row.decided_by,
            as_utc(row.decided_at) if row.decided_at is not None else None,
            row.reason,
            row.medication_id,
        )

    def rule_item(self) -> rules.Item:
        return rules.Item(
            self.id,
            mf.medication_of(json.loads(self.resource)),
            self.received_at,
            self.decision,
            self.decided_by,
            self.decided_at,
            self.reason,
        )


@dataclass
class Reconciliation:
    """Where a patient's reconciliation stands, and the items the caller may see."""

    status: str
    unresolved: int
    deadline: datetime | None
    items: list[ItemRow] = field(default_factory=list)

    @property
    def plan_ready(self) -> bool:
        return self.status != "overdue"


@dataclass(frozen=True)
class MedicationSummary:
    """The medication part of the holistic view."""

    active: list[Stored]
    reconciliation: Reconciliation | None


@dataclass(frozen=True)
class Decision:
    """A reconciliation decision asked for."""

    patient_id: str
    item_id: str
    decision: str
    reason: str = ""
    changed_to_json: str = ""


def _items(conn: Connection, patient_id: str) -> list[ItemRow]:
    r = store.medication_reconciliation.c
    rows = conn.execute(
        select(store.medication_reconciliation)
        .where(r.patient_id == patient_id)
        .order_by(r.received_at, r.id)
    ).all()
    return [ItemRow.of(row) for row in rows]


def reconciliation_of(
    items: list[ItemRow], now: datetime, deadline: timedelta
) -> Reconciliation | None:
    if not items:
        return None
    rule_items = [i.rule_item() for i in items]
    open_items = [i for i in rule_items if not i.resolved]
    return Reconciliation(
        rules.reconciliation_status(rule_items, now, deadline),
        len(open_items),
        min(i.received_at for i in open_items) + deadline if open_items else None,
        items,
    )


def take_in(uow: UnitOfWork, plan_id: str, patient_id: str, plan_json: str, now: datetime) -> int:
    """Every medication a new plan brings in (contained MedicationStatements and
    MedicationRequests: a `$handoff`'s inbound ones) becomes a reconciliation item, in the plan's
    transaction; returns how many."""
    plan = json.loads(plan_json)
    count = 0
    for contained in plan.get("contained", []):
        if contained.get("resourceType") not in mf.TYPES:
            continue
        inbound = mf.with_part2_label(contained, mf.medication_of(contained))
        # The plan's labels (a `$handoff` puts the Bundle's there) follow each medication it
        # brings, as they follow its goals: a Part 2 discharge's sertraline is Part 2 too.
        plan_labels = labels.security_of(plan)
        if plan_labels:
            meta = inbound.setdefault("meta", {})
            meta["security"] = labels.union(meta.get("security") or [], plan_labels)
        uow.conn.execute(
            store.medication_reconciliation.insert().values(
                id=new_id(),
                patient_id=patient_id,
                care_plan_id=plan_id,
                source=str(contained.get("id", ""))[:64],
                resource=json.dumps(inbound),
                received_at=now,
            )
        )
        count += 1
    return count


class Medications(Listings):
    """The medication list (MedicationStatement, MedicationRequest) and its reconciliation."""

    def __init__(
        self,
        db: Database,
        *,
        deadline: timedelta = rules.DEFAULT_DEADLINE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        **options: Any,
    ) -> None:
        super().__init__(db, **options)
        #: How long inbound medications may stay unreconciled (program setting).
        self.deadline = deadline
        #: The time the deadline is measured against (injected by tests).
        self.clock = clock

    # The list ----------------------------------------------------------------------------------

    def _checked(self, resource_type: str, document: dict[str, Any]) -> tuple[str, Any]:
        """The patient and the labelled, validated resource of a medication to store, or
        INVALID_ARGUMENT naming every problem."""
        prefix = f"fhir_json.{resource_type}."
        medication = mf.medication_of(document)
        patient_id = mf.patient_of(document)
        problems = FieldViolations()
        if not patient_id:
            problems.add(f"{prefix}subject", "must reference a Patient (Patient/{id})")
        try:
            rules.check_medication(medication, prefix)
        except InvalidArgument as exc:
            for violation in exc.violations:
                problems.add(violation.field, violation.description)
        problems.raise_if_any(f"the {resource_type} cannot be recorded")
        labelled = mf.with_part2_label(document, medication)
        return str(patient_id), fhir.parse_resource(labelled, resource_type, field="fhir_json")

    def create(
        self, principal: Principal, request_id: str, fhir_json: str, resource_type: str
    ) -> Stored:
        """Records a medication (version 1) on the patient's list: prescribers only."""
        with self._audit_refusals(principal, audit.CREATE, resource_type):
            rules.require_prescriber(principal.role)
            parsed = self._parsed(fhir_json, resource_type)
            patient_id, resource = self._checked(resource_type, fhir.to_dict(parsed))
        return self._create_versioned(
            Asked(principal, request_id, {"fhir_json": fhir_json}),
            resource_type,
            patient_id,
            str(resource.status),
            codes.EVENT_MEDICATION_CREATED,
            lambda uow, item_id, now: fhir.with_identity(resource, item_id, 1, now),
        )

    def update(self, change: Change, fhir_json: str, mask: list[str], resource_type: str) -> Stored:
        """The medication's next version (a new dose, a stop, ...) with its reason: prescribers
        only, under optimistic concurrency, once per request id."""
        principal, item_id = change.principal, change.item_id
        with self._audit_refusals(principal, audit.UPDATE, f"{resource_type}/{item_id}"):
            rules.require_prescriber(principal.role)
            document = fhir.load_json(
                fhir_json, max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            problems = FieldViolations()
            if not isinstance(document, dict) or document.get("resourceType") != resource_type:
                raise InvalidArgument(
                    f"fhir_json must be a {resource_type}",
                    [FieldViolation("fhir_json.resourceType", f"must be {resource_type}")],
                )
            if document.get("id") not in (None, item_id):
                problems.add(f"fhir_json.{resource_type}.id", "absent or the id in the request")
            if change.expected_version < 1:
                problems.add("expected_version", "the version the change is based on (>= 1)")
            if not change.reason.strip():
                problems.add("reason", "every change of the list says why")
            if len(change.reason) > 1000:
                problems.add("reason", "at most 1,000 characters")
            problems.raise_if_any("the medication change is invalid")

            def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                merged = apply_mask(json.loads(current.resource), document, mask, MASKABLE)
                merged.pop("meta", None)
                merged["id"] = item_id
                patient_id, resource = self._checked(resource_type, merged)
                if patient_id != current.patient_id:
                    raise InvalidArgument(
                        "a medication stays on its patient's list",
                        [FieldViolation(f"fhir_json.{resource_type}.subject", "cannot change")],
                    )
                stored = fhir.with_identity(resource, item_id, version, now)
                return stored, str(resource.status), "update"

            def _apply(uow: UnitOfWork) -> None:
                current = store.VERSIONED[resource_type].load(uow.conn, item_id)
                if current is None:
                    raise NotFound(f"{resource_type}/{item_id} not found")
                basis = self.access.basis(uow.conn, principal, current.patient_id)
                revised, _ = revise_by(
                    uow,
                    principal,
                    resource_type,
                    item_id,
                    change.expected_version,
                    reviser,
                    change.reason.strip(),
                )
                store.JOURNAL.record_version(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource_type,
                    revised,
                    codes.EVENT_MEDICATION_UPDATED,
                    detail=basis,
                )

            asked = change.asked_or({"fhir_json": fhir_json, "mask": mask})
            self._change_once(change, f"Update{resource_type}", _apply, asked)
        return self._changed(resource_type, item_id)

    def get(self, principal: Principal, resource_type: str, item_id: str) -> Stored:
        """One medication, to the patient's team (a Part 2 one to those treating the patient)."""
        name = f"{resource_type}/{item_id}"
        with self.db.read() as conn:
            item = store.VERSIONED[resource_type].load(conn, item_id) if item_id else None
        if item is None:
            self._audit_alone(principal, audit.READ, name, None, outcome=audit.NOT_FOUND)
            raise NotFound(f"{name} not found", resource=name)
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, audit.READ, name, item.patient_id
        )
        if hidden(basis, item.resource):
            self._audit_alone(
                principal, audit.READ, name, item.patient_id, outcome=audit.DENIED, detail=basis
            )
            raise PermissionDenied(
                "a 42 CFR Part 2 record goes only to those treating the patient",
                reason="LABELLED_CONTENT",
            )
        self._audit_alone(principal, audit.READ, name, item.patient_id, detail=basis)
        return item

    def listed(
        self,
        principal: Principal,
        resource_type: str,
        patient_id: str,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Stored]:
        tables = store.VERSIONED[resource_type]
        page = self._page(
            principal,
            resource_type,
            patient_id,
            page_size,
            page_token,
            lambda conn, limit, after: store.patient_page(conn, tables, patient_id, limit, after),
            lambda item: item.id,
        )
        with self.db.read() as conn:
            basis = self.access.basis(conn, principal, patient_id)
        return Page([i for i in page.items if not hidden(basis, i.resource)], page.next_page_token)

    def summary(self, principal: Principal, patient_id: str) -> MedicationSummary:
        """The active list and the reconciliation for the holistic view, whose caller's access
        the view has checked and audited."""
        if (principal.role == "system" or principal.parsed_scopes) and scopes.patients_allowed(
            principal.parsed_scopes, "MedicationStatement", scopes.READ, principal.patient_context
        ) is None:
            # A token limited by scopes sees the list only with MedicationStatement read.
            return MedicationSummary([], None)
        with self.db.read() as conn:
            basis = self.access.basis(conn, principal, patient_id)
            active = [
                item
                for tables in (store.medication_statements, store.medication_requests)
                for item in tables.for_patient(conn, patient_id)
                if item.status == "active" and not hidden(basis, item.resource)
            ]
            items = _items(conn, patient_id)
        active.sort(key=lambda item: item.updated_at)
        found = reconciliation_of(items, self.clock(), self.deadline)
        if found is not None:
            found.items = [i for i in found.items if not hidden(basis, i.resource)]
        return MedicationSummary(active, found)

    # Reconciliation ----------------------------------------------------------------------------

    def reconciliation(self, principal: Principal, patient_id: str) -> Reconciliation:
        """The patient's items and where they stand (access checked and audited)."""
        resource = f"Patient/{patient_id}/{RECONCILIATION}"
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, audit.READ, resource, patient_id
        )
        with self.db.read() as conn:
            items = _items(conn, patient_id)
        self._audit_alone(principal, audit.READ, resource, patient_id, detail=basis)
        found = reconciliation_of(items, self.clock(), self.deadline) or Reconciliation(
            "reconciled", 0, None
        )
        found.items = [i for i in found.items if not hidden(basis, i.resource)]
        return found

    def resolve(
        self, principal: Principal, request_id: str, asked: Decision
    ) -> tuple[ItemRow, Stored | None]:
        """Resolves one item (continue, change or stop) and writes the MedicationStatement it
        decides, in one transaction, once per request id."""
        name = f"{RECONCILIATION}/{asked.item_id}"
        with self._audit_refusals(principal, audit.UPDATE, name, asked.patient_id):
            rules.require_prescriber(principal.role)
            changed = self._changed_to(asked)
            change_once(
                self.db,
                store.request_log,
                principal,
                "ResolveReconciliationItem",
                request_id,
                asked.item_id,
                lambda uow: self._decide(uow, principal, asked, changed),
                request=asked,
            )
        self.notify_outbox()
        with self.db.read() as conn:
            r = store.medication_reconciliation.c
            row = conn.execute(
                select(store.medication_reconciliation).where(r.id == asked.item_id)
            ).first()
            assert row is not None  # resolved above
            item = ItemRow.of(row)
            statement = (
                store.medication_statements.load(conn, item.medication_id)
                if item.medication_id
                else None
            )
        return item, statement

    def _changed_to(self, asked: Decision) -> dict[str, Any] | None:
        """A change's MedicationStatement (valid R4, of the item's patient), or None."""
        if not asked.changed_to_json:
            return None
        parsed = fhir.parse_resource(
            asked.changed_to_json,
            "MedicationStatement",
            max_bytes=self.max_resource_bytes,
            field="changed_to_fhir_json",
        )
        document = fhir.to_dict(parsed)
        if mf.patient_of(document) != asked.patient_id:
            raise InvalidArgument(
                "the changed medication is the item's patient's",
                [
                    FieldViolation(
                        "changed_to_fhir_json.MedicationStatement.subject",
                        "must reference the patient of the item",
                    )
                ],
            )
        return document

    def _decide(
        self,
        uow: UnitOfWork,
        principal: Principal,
        asked: Decision,
        changed: dict[str, Any] | None,
    ) -> None:
        """The decision on the (locked) item and the statement it writes, or a refusal."""
        r = store.medication_reconciliation.c
        row = uow.conn.execute(
            select(store.medication_reconciliation).where(r.id == asked.item_id).with_for_update()
        ).first()
        if row is None or row.patient_id != asked.patient_id:
            # Another patient's item is, for this patient, not there.
            raise NotFound(
                f"{RECONCILIATION}/{asked.item_id} is not a reconciliation item of "
                f"Patient/{asked.patient_id}",
                resource=f"{RECONCILIATION}/{asked.item_id}",
            )
        item = ItemRow.of(row)
        basis = self.access.basis(uow.conn, principal, item.patient_id)
        now = self.clock()
        rule_item = item.rule_item()
        resolved = rules.resolve(
            rule_item,
            asked.decision,
            role=principal.role,
            by=principal.reference,
            at=now,
            reason=asked.reason,
            changed_to=mf.medication_of(changed) if changed is not None else None,
        )
        if rule_item.resolved:
            return  # the same decision again: already done
        statement = self._statement(item, resolved, changed, now)
        uow.conn.execute(
            store.medication_reconciliation.update()
            .where(r.id == item.id)
            .values(
                decision=resolved.decision,
                decided_by=resolved.decided_by,
                decided_at=resolved.decided_at,
                reason=resolved.reason,
                medication_id=statement.id,
            )
        )
        store.medication_statements.insert(
            uow.conn, statement, principal.reference, reason=f"reconciled: {asked.decision}"
        )
        store.JOURNAL.record_version(
            uow,
            principal,
            audit.CREATE,
            "MedicationStatement",
            statement,
            codes.EVENT_MEDICATION_CREATED,
            detail=f"reconciliation {asked.decision}; {basis}",
        )

    def _statement(
        self,
        item: ItemRow,
        resolved: rules.Item,
        changed_document: dict[str, Any] | None,
        now: datetime,
    ) -> Stored:
        """The MedicationStatement a decision puts on the list (version 1)."""
        inbound = json.loads(item.resource)
        by = str(resolved.decided_by)
        if resolved.decision == rules.CHANGE and changed_document is not None:
            document = dict(changed_document)
            document.pop("id", None)
            kept = labels.union(labels.security_of(inbound), labels.security_of(changed_document))
            if kept:
                document["meta"] = {"security": kept}
            document.setdefault("statusReason", [{"text": resolved.reason}])
            if by.startswith("Practitioner/"):
                document.setdefault("informationSource", {"reference": by})
            status = "active" if document.get("status") in (None, "active") else document["status"]
            document["status"] = status
        else:
            status = "active" if resolved.decision == rules.CONTINUE else "stopped"
            document = mf.statement_from(
                inbound,
                item.patient_id,
                status=status,
                on=now.date(),
                reason=resolved.reason,
                by=by,
                plan_id=item.care_plan_id,
            )
        labelled = mf.with_part2_label(document, mf.medication_of(document))
        resource = fhir.parse_resource(
            labelled, "MedicationStatement", field="changed_to_fhir_json"
        )
        statement_id = new_id()
        return Stored(
            statement_id,
            1,
            item.patient_id,
            str(resource.status),
            now,
            fhir.with_identity(resource, statement_id, 1, now),
        )

    def raise_overdue_tasks(self) -> int:
        """A team Task (event `medication-reconciliation.overdue`) for each plan whose inbound
        medications are unresolved past the deadline, once per item: every replica runs this
        periodic task, and an item's `task_raised_at` is claimed by one of them. Returns how many
        tasks were raised."""
        now = self.clock()
        cutoff = now - self.deadline
        r = store.medication_reconciliation.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(r.patient_id, r.care_plan_id, r.id)
                .where(r.decision.is_(None) & r.task_raised_at.is_(None))
                .where(r.received_at < cutoff)
                .order_by(r.patient_id, r.care_plan_id, r.id)
            ).all()
        due: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            due.setdefault((row.patient_id, row.care_plan_id), []).append(row.id)
        raised = 0
        for (patient_id, plan_id), ids in due.items():
            with UnitOfWork(self.db) as uow:
                claimed = uow.conn.execute(
                    store.medication_reconciliation.update()
                    .where(r.id.in_(ids) & r.task_raised_at.is_(None) & r.decision.is_(None))
                    .values(task_raised_at=now)
                    .returning(r.resource)
                ).all()
                if not claimed:
                    continue  # another replica raised it, or a prescriber resolved them
                security = labels.union(
                    *(labels.security_of(json.loads(c.resource)) for c in claimed)
                )
                task = self._task(patient_id, plan_id, len(claimed), security, now)
                store.JOURNAL.publish_version(uow, "Task", task, codes.EVENT_RECONCILIATION_OVERDUE)
                uow.commit()
                raised += 1
        if raised:
            self.notify_outbox()
        return raised

    def _task(
        self,
        patient_id: str,
        plan_id: str,
        count: int,
        security: list[dict[str, Any]],
        now: datetime,
    ) -> Stored:
        """The team's task: counts and references only (no drug names: the thread shows it)."""
        hours = int(self.deadline.total_seconds() // 3600)
        task: dict[str, Any] = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "priority": "urgent",
            "code": {"text": "Reconcile inbound medications"},
            "description": (
                f"{count} inbound medication{'s' if count != 1 else ''} of the intake "
                f"{'are' if count != 1 else 'is'} not reconciled {hours} h after intake: a "
                "prescriber (psychiatrist or physician) resolves each as continue, change or stop."
            ),
            "focus": {"reference": f"CarePlan/{plan_id}"},
            "for": {"reference": f"Patient/{patient_id}"},
            "authoredOn": fhir.instant(now),
        }
        if security:
            task["meta"] = {"security": security}
        task_id = new_id()
        resource = fhir.parse_resource(task, "Task")
        return Stored(
            task_id, 1, patient_id, "requested", now, fhir.with_identity(resource, task_id, 1, now)
        )
