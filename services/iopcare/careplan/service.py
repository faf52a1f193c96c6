"""The care plan's own use cases: create (or draft from a template), revise under optimistic
concurrency, read. Reviews are in `reviews`, past versions in `versions`, lists in `listing`; what
the use cases share (the write path, access, auditing) is in `base`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Connection

from iopcare.careplan import codes, fhir_map, medications, store
from iopcare.careplan.base import Asked, Change, ServiceBase, revise_by
from iopcare.careplan.domain.family import age_on
from iopcare.careplan.domain.model import (
    apply_mask,
    check_activity_changes,
    check_new_plan,
    check_revision,
    check_update_request,
)
from iopcare.careplan.domain.templates import (
    Template,
    diagnoses_in,
    draft_plan,
    template_for,
    with_additions,
)
from iopcare.careplan.family import registered_birth_date
from iopcare.careplan.plan_goals import activate_goals, store_contained_goals
from iopcare.careplan.reviews import PlanReviews
from iopcare.careplan.versions import VersionReads
from iopcare.kit import audit, fhir, labels
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.versioned import Stored


def check_plan_references(conn: Connection, plan: fhir.Resource, patient_id: str) -> None:
    """A plan's careTeam and goal references must name this service's teams and goals of the same
    patient (contained ones excepted): a plan never points into another patient's record."""
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


def _update_document(fhir_json: str, max_bytes: int) -> dict[str, object]:
    """An update's CarePlan JSON. With a mask it may carry only the masked elements, so it is
    validated as a whole only after merging; its JSON and its type are checked at once."""
    document = fhir.load_json(fhir_json, max_bytes=max_bytes, field="fhir_json")
    if not isinstance(document, dict) or document.get("resourceType") != "CarePlan":
        raise InvalidArgument(
            "fhir_json must be a CarePlan",
            [FieldViolation("fhir_json.resourceType", "must be CarePlan")],
        )
    return document


class CarePlans(PlanReviews, VersionReads, ServiceBase):
    """The treatment plan: create, revise under optimistic concurrency, review, read its
    history."""

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
            resource = self._parsed(fhir_json, "CarePlan")
            draft = fhir_map.draft_from_fhir(resource)
            check_new_plan(draft, field_prefix="fhir_json.")
        patient_id = str(draft.patient_id)
        # Serialised before the transaction (which holds SQLite's one writer): inside it only the
        # id and meta are set (ADR 0025).
        today = datetime.now(UTC).date()
        prepared = fhir.canonical(self._first_review(resource, today))

        def build(uow: UnitOfWork, plan_id: str, now: datetime) -> str:
            check_plan_references(uow.conn, resource, patient_id)
            basis = self.access.basis(uow.conn, principal, patient_id)
            plan = store_contained_goals(uow, principal, basis, resource, patient_id, now)
            if plan is resource and now.date() == today:
                stamped = fhir.stamp(prepared, plan_id, 1, now)
            else:  # its goals were taken out of it, or midnight passed: serialised again
                stamped = fhir_map.stamp(self._first_review(plan, now.date()), plan_id, 1, now)
            # Inbound medications become reconciliation items (issue 12, part 1).
            medications.take_in(uow, plan_id, patient_id, stamped, now)
            return stamped

        asked = Asked(
            principal, request_id, request if request is not None else {"fhir_json": fhir_json}
        )
        return self._create_versioned(
            asked, "CarePlan", patient_id, str(draft.status), codes.EVENT_CREATED, build
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
        the caller's additions (contained resources, addresses, supporting information, labels).
        The diagnosis asked for selects first, then the additions' contained Conditions (a
        handoff's inbound diagnoses); none matching, the general IOP plan, with a note saying so.
        An empty diagnosis names none: the additions' Conditions select, else the general plan
        (a handoff whose diagnoses carry no ICD-10-CM code)."""
        with self._audit_refusals(principal, audit.CREATE, "CarePlan"):
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
            # The registered birth date, when there is one, picks the program for the age.
            with self.db.read() as conn:
                birth = registered_birth_date(conn, patient_id)
            age = age_on(birth, datetime.now(UTC).date()) if birth is not None else None
            template = template_for(templates, diagnosis, diagnoses_in(additions), age=age)
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

    def update(self, change: Change, fhir_json: str, mask: list[str]) -> Stored:
        """Stores a new version if `change.expected_version` is still current; never a lost
        update. With a request id, once: a retry gets the plan, not STALE_VERSION."""
        with self._audit_refusals(change.principal, audit.UPDATE, f"CarePlan/{change.item_id}"):
            document = _update_document(fhir_json, self.max_resource_bytes)
            check_update_request(
                change.item_id, document.get("id"), change.expected_version, change.reason
            )

            def _change(uow: UnitOfWork) -> None:
                granted: list[str] = []
                revised, kind = self._revise_plan(uow, change, document, mask, granted)
                store.JOURNAL.record_version(
                    uow,
                    change.principal,
                    audit.UPDATE,
                    "CarePlan",
                    revised,
                    codes.EVENT_FOR_CHANGE[kind],
                    detail=f"{kind}; {granted[0]}",
                )

            asked = change.asked_or({"fhir_json": fhir_json, "mask": mask})
            self._change_once(change, "UpdateCarePlan", _change, asked)
        return self._changed("CarePlan", change.item_id)

    def _revise_plan(
        self,
        uow: UnitOfWork,
        change: Change,
        document: dict[str, object],
        mask: list[str],
        granted: list[str],
    ) -> tuple[Stored, str]:
        """The plan's next version: `document` merged under `mask`, checked against the lifecycle
        and the activity rules; the caller's access basis is appended to `granted`."""
        principal = change.principal

        def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
            granted.append(self.access.basis(uow.conn, principal, current.patient_id))
            current_document = json.loads(current.resource)
            merged = apply_mask(current_document, document, mask)
            merged_resource = fhir.parse_resource(merged, "CarePlan", field="fhir_json")
            check_plan_references(uow.conn, merged_resource, current.patient_id)
            before = fhir_map.draft_from_fhir(
                fhir.parse_resource(current_document), fingerprints=True
            )
            after = fhir_map.draft_from_fhir(merged_resource, fingerprints=True)
            check_activity_changes(before, after, principal.role)
            kind = check_revision(before, after)
            merged_resource = store_contained_goals(
                uow, principal, granted[-1], merged_resource, current.patient_id, now
            )
            if kind == "activate":
                activate_goals(uow, principal, merged_resource)
            if kind in {"activate", "resume"}:
                merged_resource = self._first_review(merged_resource, now.date())
            resource = fhir_map.stamp(merged_resource, change.item_id, version, now)
            return resource, str(merged_resource.status), kind

        return revise_by(
            uow,
            principal,
            "CarePlan",
            change.item_id,
            change.expected_version,
            reviser,
            change.reason,
            # Only a privacy officer takes a label off (kit/labels.py).
            may_lower_labels=labels.may_lower_labels(principal.role),
        )

    def get(self, principal: Principal, plan_id: str) -> Stored:
        with self.db.read() as conn:
            plan = store.plans.load(conn, plan_id) if plan_id else None
        return self._audited_read(principal, f"CarePlan/{plan_id}", plan)
