"""The care plan service layer: one method per use case, each one unit of work."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime

from sqlalchemy import Connection, select

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.domain.model import (
    MAX_VERSION,
    apply_mask,
    check_activity_changes,
    check_new_plan,
    check_revision,
    check_update_request,
)
from iopcare.careplan.domain.review import Review, check_review, next_review_due
from iopcare.careplan.domain.templates import (
    Template,
    draft_plan,
    template_for,
    with_additions,
)
from iopcare.kit import audit, fhir, labels, paging, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import Database, UnitOfWork
from iopcare.kit.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from iopcare.kit.requests import change_once, create_once
from iopcare.kit.teams import TeamAccess
from iopcare.kit.versioned import Stored, Version, VersionedTables, revise


def new_id() -> str:
    return str(uuid.uuid4())


#: The versioned resources careplan keeps, by FHIR type: what GetResourceVersion and
#: ListResourceVersions (the gateway's vread and _history) read.
VERSIONED_TYPES: dict[str, VersionedTables] = {
    "CarePlan": store.plans,
    "CareTeam": store.teams,
    "Goal": store.goals,
    "EpisodeOfCare": store.episodes,
    "Patient": store.patients,
}


class ServiceBase:
    """What the care plan use cases share: the database, access, auditing and events."""

    def __init__(
        self,
        db: Database,
        *,
        max_resource_bytes: int = fhir.DEFAULT_MAX_BYTES,
        notify_outbox: Callable[[], None] = lambda: None,
        access: TeamAccess | None = None,
        review_interval_days: int = 30,
    ) -> None:
        self.db = db
        self.max_resource_bytes = max_resource_bytes
        self.notify_outbox = notify_outbox
        self.access = access or TeamAccess(store.care_team_member)
        self.review_interval_days = review_interval_days

    def _first_review(self, plan: fhir.Resource, on: date) -> fhir.Resource:
        """An active plan always has a next review date: set one on activation if none is given."""
        if plan.status != "active" or fhir_map.review_due(plan) is not None:
            return plan
        return fhir_map.with_review_due(plan, next_review_due(on, self.review_interval_days))

    def _create_versioned(
        self,
        principal: Principal,
        request_id: str,
        tables: VersionedTables,
        resource_type: str,
        patient_id: str,
        status: str,
        event_type: str,
        build: Callable[[UnitOfWork, str, datetime], str],
        authorize: Callable[[UnitOfWork], str] | None = None,
        *,
        request: object,
    ) -> Stored:
        """Creates version 1 of a resource once per request id, with its history row, its event
        and its audit row in one transaction; refusals are audited too.

        `authorize(uow)` returns the basis of the caller's access (default: care team access to
        the patient) or raises; `build(uow, id, now)` returns the stored JSON (and may refuse).
        `request` is what the caller asked for: a repeat of the request id must ask the same.
        """
        authorize = authorize or (lambda uow: self.access.basis(uow.conn, principal, patient_id))
        # The refusal row names the patient: a refused enrolment or write is reviewed per patient.
        with self._audit_refusals(principal, audit.CREATE, resource_type, patient_id):

            def _create(uow: UnitOfWork, item_id: str) -> None:
                basis = authorize(uow)
                now = datetime.now(UTC)
                stored = Stored(item_id, 1, patient_id, status, now, build(uow, item_id, now))
                tables.insert(uow.conn, stored, principal.reference)
                store.JOURNAL.publish_version(uow, resource_type, stored, event_type)
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.CREATE,
                    resource=f"{resource_type}/{item_id}",
                    patient_id=patient_id,
                    detail=basis,
                )

            item_id, created = create_once(
                self.db,
                store.request_log,
                principal,
                f"Create{resource_type}",
                request_id,
                _create,
                new_id,
                request=request,  # a reuse is audited by the _audit_refusals around this
            )
        if created:
            self.notify_outbox()
        with self.db.read() as conn:
            item = tables.load(conn, item_id)
        if item is None:  # committed above; nothing is ever deleted
            raise FailedPrecondition(f"{resource_type}/{item_id} vanished after it was created")
        return item

    def _reload(self, tables: VersionedTables, item_id: str) -> Stored:
        """A resource just written (or found written by the first attempt of a request)."""
        with self.db.read() as conn:
            item = tables.load(conn, item_id)
        if item is None:  # written above; nothing is ever deleted
            raise FailedPrecondition(f"{item_id} vanished after it was written")
        return item

    def _audit_refusals(
        self, principal: Principal, action: str, resource: str, patient_id: str | None = None
    ) -> AbstractContextManager[None]:
        """Audits a refused request (its own transaction), then lets the refusal through."""
        return store.JOURNAL.refusals(self.db, principal, action, resource, patient_id)

    def _audited_read(self, principal: Principal, resource: str, item: Stored | None) -> Stored:
        """Checks access to a read item and audits the read, its refusal or its absence."""
        if item is None:
            store.JOURNAL.audit_separately(
                self.db,
                principal,
                audit.READ,
                resource=resource,
                patient_id=None,
                outcome=audit.NOT_FOUND,
            )
            raise NotFound(f"{resource} not found", resource=resource)
        basis = teams.require_access(
            self.db, store.audit_log, self.access, principal, audit.READ, resource, item.patient_id
        )
        store.JOURNAL.audit_separately(
            self.db,
            principal,
            audit.READ,
            resource=resource,
            patient_id=item.patient_id,
            detail=basis,
        )
        return item


class CarePlans(ServiceBase):
    """The treatment plan: create, revise under optimistic concurrency, read its history."""

    def _check_teams(self, conn: Connection, plan: fhir.Resource, patient_id: str) -> None:
        """A plan's careTeam and goal references must name this service's teams and goals of the
        same patient (contained ones excepted): a plan never points into another patient's
        record."""
        problems = []
        for index, team_id in fhir_map.plan_team_ids(plan):
            team = store.teams.load(conn, team_id) if team_id else None
            if team is None or team.patient_id != patient_id:
                problems.append(
                    FieldViolation(
                        f"fhir_json.CarePlan.careTeam[{index}]",
                        "must reference a CareTeam of the plan's patient (CareTeam/{id})",
                    )
                )
        for index, goal_id in fhir_map.plan_goal_ids(plan):
            goal = store.goals.load(conn, goal_id) if goal_id else None
            if goal is not None and goal.patient_id != patient_id:
                problems.append(
                    FieldViolation(f"fhir_json.CarePlan.goal[{index}]", "a Goal of another patient")
                )
        if problems:
            raise InvalidArgument("the plan refers to another patient's records", problems)

    def create(
        self,
        principal: Principal,
        request_id: str,
        fhir_json: str,
        *,
        request: object | None = None,
    ) -> Stored:
        """Validates and stores a new plan (version 1) with its history, event and audit rows.
        `request` is what the caller asked for, when not just this plan (a draft from a
        template, whose plan depends on the day it is made)."""
        with self._audit_refusals(principal, audit.CREATE, "CarePlan"):
            resource = fhir.parse_resource(
                fhir_json, "CarePlan", max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            draft = fhir_map.draft_from_fhir(resource)
            check_new_plan(draft, field_prefix="fhir_json.")
        patient_id = str(draft.patient_id)

        def build(uow: UnitOfWork, plan_id: str, now: datetime) -> str:
            self._check_teams(uow.conn, resource, patient_id)
            return fhir_map.stamp(self._first_review(resource, now.date()), plan_id, 1, now)

        return self._create_versioned(
            principal,
            request_id,
            store.plans,
            "CarePlan",
            patient_id,
            str(draft.status),
            codes.EVENT_CREATED,
            build,
            request=request if request is not None else {"fhir_json": fhir_json},
        )

    def draft_from_template(
        self,
        principal: Principal,
        request_id: str,
        patient_id: str,
        diagnosis: str,
        team_id: str,
        templates: list[Template],
        additions_json: str = "",
    ) -> Stored:
        """A draft plan from the program template for the patient's diagnosis (ICD-10-CM), with
        the caller's additions (contained resources, addresses, supporting information, labels)."""
        with self._audit_refusals(principal, audit.CREATE, "CarePlan"):
            template = template_for(templates, diagnosis)
            additions = (
                fhir.load_json(
                    additions_json, max_bytes=self.max_resource_bytes, field="additions_fhir_json"
                )
                if additions_json
                else {}
            )
            if not isinstance(additions, dict):
                raise InvalidArgument(
                    "additions_fhir_json must be a JSON object",
                    [FieldViolation("additions_fhir_json", "a partial CarePlan")],
                )
        plan = draft_plan(
            template,
            patient_id,
            diagnosis.strip().upper(),
            team_id or None,
            datetime.now(UTC).date(),
        )
        if additions:
            with self._audit_refusals(principal, audit.CREATE, "CarePlan"):
                plan = with_additions(plan, additions)
        # The fingerprint is of what was asked, not of the plan made from it: the template's
        # dates follow the day, and a retry tomorrow is still the same request.
        asked = {
            "patient_id": patient_id,
            "diagnosis_code": diagnosis,
            "team_id": team_id,
            "additions_fhir_json": additions_json,
        }
        return self.create(principal, request_id, json.dumps(plan), request=asked)

    def update(
        self,
        principal: Principal,
        plan_id: str,
        expected_version: int,
        fhir_json: str,
        mask: list[str],
        reason: str = "",
        request_id: str = "",
        asked: object = None,
    ) -> Stored:
        """Stores a new version if `expected_version` is still current; never a lost update.
        With a `request_id`, once (kit.requests: `asked` is the RPC's request, fingerprinted
        without its request_id): a retry gets the plan, not STALE_VERSION."""
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
            granted: list[str] = []

            def _change(uow: UnitOfWork) -> None:

                def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                    granted.append(self.access.basis(uow.conn, principal, current.patient_id))
                    current_document = json.loads(current.resource)
                    merged = apply_mask(current_document, document, mask)
                    merged_resource = fhir.parse_resource(merged, "CarePlan", field="fhir_json")
                    self._check_teams(uow.conn, merged_resource, current.patient_id)
                    before = fhir_map.draft_from_fhir(
                        fhir.parse_resource(current_document), fingerprints=True
                    )
                    after = fhir_map.draft_from_fhir(merged_resource, fingerprints=True)
                    check_activity_changes(before, after, principal.role)
                    change = check_revision(before, after)
                    if change in {"activate", "resume"}:
                        merged_resource = self._first_review(merged_resource, now.date())
                    resource = fhir_map.stamp(merged_resource, plan_id, version, now)
                    return resource, str(merged_resource.status), change

                _, revised, change = revise(
                    uow.conn,
                    store.plans,
                    "CarePlan",
                    plan_id,
                    expected_version,
                    reviser,
                    principal.reference,
                    reason,
                    # Only a privacy officer takes a label off (kit/labels.py).
                    may_lower_labels=labels.may_lower_labels(principal.role),
                )
                store.JOURNAL.publish_version(
                    uow, "CarePlan", revised, codes.EVENT_FOR_CHANGE[change]
                )
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource=resource_name,
                    patient_id=revised.patient_id,
                    detail=f"{change}; {granted[0]}",
                )

            change_once(
                self.db,
                store.request_log,
                principal,
                "UpdateCarePlan",
                request_id,
                plan_id,
                _change,
                request=asked if asked is not None else {"fhir_json": fhir_json, "mask": mask},
            )  # a reuse is audited by the _audit_refusals around this
        self.notify_outbox()
        return self._reload(store.plans, plan_id)

    def get(self, principal: Principal, plan_id: str) -> Stored:
        with self.db.read() as conn:
            plan = store.plans.load(conn, plan_id) if plan_id else None
        return self._audited_read(principal, f"CarePlan/{plan_id}", plan)

    def get_version(self, principal: Principal, plan_id: str, version: int) -> Stored:
        if not 1 <= version <= MAX_VERSION:
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
        position = paging.decode(page_token, {"before": int})
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

    def for_patient(self, principal: Principal, patient_id: str) -> list[Stored]:
        """A patient's plans, oldest first (the gateway's `CarePlan?patient=` search)."""
        return teams.audited_search(
            self.db,
            store.audit_log,
            self.access,
            principal,
            "CarePlan",
            patient_id,
            lambda conn: store.plans.for_patient(conn, patient_id),
        )

    def _versioned_tables(self, resource_type: str) -> VersionedTables:
        tables = VERSIONED_TYPES.get(resource_type)
        if tables is None:
            raise InvalidArgument(
                f"{resource_type!r} has no versions here",
                [FieldViolation("resource_type", f"one of {', '.join(VERSIONED_TYPES)}")],
            )
        return tables

    def resource_version(
        self, principal: Principal, resource_type: str, item_id: str, version: int
    ) -> Stored:
        """One version of any versioned resource (the FHIR vread), access as for reading it."""
        tables = self._versioned_tables(resource_type)
        if not 1 <= version <= MAX_VERSION:
            raise InvalidArgument(
                "version must be >= 1", [FieldViolation("version", "a version number >= 1")]
            )
        with self.db.read() as conn:
            item = tables.load_version(conn, item_id, version)
        return self._audited_read(principal, f"{resource_type}/{item_id}/_history/{version}", item)

    def resource_versions(
        self, principal: Principal, resource_type: str, item_id: str, page_size: int
    ) -> list[Stored]:
        """The versions of one resource, newest first, each as stored (the FHIR `_history`)."""
        tables = self._versioned_tables(resource_type)
        size = paging.page_size(page_size)
        with self.db.read() as conn:
            current = tables.load(conn, item_id)
            found = [
                tables.load_version(conn, item_id, v.version)
                for v in (tables.versions(conn, item_id, size, None) if current else [])
            ]
        self._audited_read(principal, f"{resource_type}/{item_id}/_history", current)
        return [item for item in found if item is not None]

    def record_review(
        self,
        principal: Principal,
        plan_id: str,
        expected_version: int,
        review: Review,
        request_id: str = "",
        asked: object = None,
    ) -> Stored:
        """A plan review is a revision of the plan: a note of the decision and the attestations,
        and the next review date (the program's interval from this review).

        With a `request_id` it is recorded once (kit.requests): a retry after a lost answer
        returns the plan instead of STALE_VERSION, and the id reused for another review is
        refused. `asked` is what was asked (the RPC's request): a review of "today" retried
        tomorrow is still the same request. Without one, `expected_version` alone keeps a
        repeat from being applied twice."""
        name = f"CarePlan/{plan_id}"
        with self._audit_refusals(principal, audit.UPDATE, name):
            check_review(review)
            check_update_request(plan_id, None, expected_version, "")

            def _apply(uow: UnitOfWork) -> None:
                def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                    self.access.basis(uow.conn, principal, current.patient_id)
                    # An attestation is a clinician's signature: it must be a current member of
                    # the patient's team, in the role they attest for.
                    strangers = [
                        FieldViolation(
                            f"attestations[{i}]", "not on the patient's team in that role"
                        )
                        for i, a in enumerate(review.attestations)
                        if a.role
                        not in teams.roles_of_member(
                            uow.conn,
                            store.care_team_member,
                            f"Practitioner/{a.practitioner}",
                            current.patient_id,
                            now.date(),
                        )
                    ]
                    if strangers:
                        raise InvalidArgument(
                            "the review names attestations of non-members", strangers
                        )
                    before = fhir.parse_resource(current.resource)
                    if before.status not in {"active", "on-hold"}:
                        raise FailedPrecondition(
                            f"a {before.status} plan is not under review", reason="PLAN_NOT_ACTIVE"
                        )
                    due = next_review_due(review.reviewed_on, self.review_interval_days)
                    after = fhir_map.with_review(before, review, principal.reference, due, now)
                    return fhir_map.stamp(after, plan_id, version, now), current.status, "review"

                _, revised, _ = revise(
                    uow.conn,
                    store.plans,
                    "CarePlan",
                    plan_id,
                    expected_version,
                    reviser,
                    principal.reference,
                    f"review: {review.outcome}",
                )
                uow.conn.execute(
                    store.plan_review.insert().values(
                        plan_id=plan_id,
                        version=revised.version,
                        reviewed_on=review.reviewed_on,
                        outcome=review.outcome,
                        summary=review.summary,
                        attestations=json.dumps([a.__dict__ for a in review.attestations]),
                        recorded_by=principal.reference,
                        recorded_at=revised.updated_at,
                    )
                )
                store.JOURNAL.publish_version(uow, "CarePlan", revised, codes.EVENT_REVIEWED)
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource=name,
                    patient_id=revised.patient_id,
                    detail="review",
                )

            change_once(
                self.db,
                store.request_log,
                principal,
                "RecordPlanReview",
                request_id,
                plan_id,
                _apply,
                request=asked
                if asked is not None
                else {"id": plan_id, "expected_version": expected_version, "review": review},
            )  # a reuse is audited by the _audit_refusals around this
        self.notify_outbox()
        return self._reload(store.plans, plan_id)

    def announce_due_reviews(self, today: date) -> int:
        """Emits `review-due` for every active plan whose next review date has come, once per
        plan and date (a periodic task calls this; the team sees it in the thread)."""
        announced = 0
        with self.db.read() as conn:
            c = store.plans.current.c
            active = (
                conn.execute(select(c.id).where(c.status == "active").order_by(c.id))
                .scalars()
                .all()
            )
        for plan_id in active:
            with UnitOfWork(self.db) as uow:
                plan = store.plans.load(uow.conn, plan_id)
                if plan is None or plan.status != "active":
                    continue
                due = fhir_map.review_due(fhir.parse_resource(plan.resource))
                n = store.review_notice.c
                if (
                    due is None
                    or due > today
                    or uow.conn.execute(
                        select(n.plan_id).where((n.plan_id == plan_id) & (n.due == due))
                    ).first()
                ):
                    continue
                uow.conn.execute(
                    store.review_notice.insert().values(
                        plan_id=plan_id, due=due, noticed_at=datetime.now(UTC)
                    )
                )
                store.JOURNAL.publish_version(uow, "CarePlan", plan, codes.EVENT_REVIEW_DUE_NOW)
                uow.commit()
                announced += 1
        if announced:
            self.notify_outbox()
        return announced


def make_reviews_due(
    uow: UnitOfWork,
    principal: Principal,
    patient_id: str,
    on: date,
    why: str,
) -> list[Stored]:
    """After a crisis the team reviews the patient's active plans at once (docs/events.md, the
    crisis.raised row): each gets `on` as its next review date and a review-due event."""
    changed = []
    for plan in store.plans.for_patient(uow.conn, patient_id, lock=True):
        if plan.status != "active":
            continue
        current_due = fhir_map.review_due(fhir.parse_resource(plan.resource))
        if current_due is not None and current_due <= on:
            continue

        def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
            after = fhir_map.with_review_due(fhir.parse_resource(current.resource), on)
            return fhir_map.stamp(after, current.id, version, now), current.status, "review-due"

        _, revised, _ = revise(
            uow.conn,
            store.plans,
            "CarePlan",
            plan.id,
            plan.version,
            reviser,
            principal.reference,
            why,
        )
        store.JOURNAL.publish_version(uow, "CarePlan", revised, codes.EVENT_REVIEW_DUE_NOW)
        changed.append(revised)
    return changed
