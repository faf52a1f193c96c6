"""A patient's Stanley-Brown safety plan (a QuestionnaireResponse to the published Questionnaire,
one per patient, every version kept) and its review after a crisis: a crisis makes the review
due (`mark_review_due`, in the crisis's own unit of work), recording a new version clears it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import iopcare.careplan.contract as careplan_contract
from iopcare.kit import audit, fhir, labels, paging, privacy, teams
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    must_exist,
)
from iopcare.kit.events import ReceivedEvent
from iopcare.kit.versioned import Stored, Version, revise
from iopcare.notes import fhir_map, once, store
from iopcare.notes.cursor import page, position_after
from iopcare.notes.domain import safety_plan as rules
from iopcare.notes.store import safety_plans as plan_store
from iopcare.notes.store.safety_plans import Review
from iopcare.notes.usecase import UseCase, audited

RESOURCE = "QuestionnaireResponse"


@dataclass(frozen=True)
class PlanView:
    """A patient's safety plan (None: none recorded yet) and its open review, if a crisis made
    one due."""

    plan: Stored | None
    review: Review | None


def mark_review_due(
    uow: UnitOfWork, patient_id: str, reason: str, flag_id: str | None, at: datetime
) -> bool:
    """In a crisis's unit of work: the patient's safety plan is due for review (True), or was
    already (False: one more crisis is counted on the open review)."""
    return plan_store.mark_due(uow.conn, str(uuid.uuid4()), patient_id, reason[:2000], flag_id, at)


def on_care_plan_event(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """Remembers a care plan's 42 CFR Part 2 labels (none once entered in error): the patient's
    safety plan carries them. Labels only go up in careplan, so a replayed older version never
    removes one (the union is kept)."""
    plan = received.resource
    subject = getattr(plan, "subject", None)
    patient_id = fhir.reference_id(getattr(subject, "reference", None), "Patient")
    if not patient_id or not plan.id:
        return
    found = {
        str(label["code"])
        for label in labels.security_of(plan)
        if label.get("system") == privacy.ACT_CODE_SYSTEM
        and privacy.is_part2([str(label.get("code"))])
    }
    if plan.status != "entered-in-error":
        for known in plan_store.part2_labels_of(uow.conn, patient_id, plan.id):
            found |= set(json.loads(known))
    else:
        found = set()
    plan_store.remember_plan_labels(uow.conn, plan.id, patient_id, json.dumps(sorted(found)))


Handler = Callable[[UnitOfWork, ReceivedEvent], None]


def with_plan_labels(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """`handlers` with careplan's plan events also remembering each plan's Part 2 labels."""

    def both(inner: Handler | None) -> Handler:
        def handle(uow: UnitOfWork, received: ReceivedEvent) -> None:
            if inner is not None:
                inner(uow, received)
            on_care_plan_event(uow, received)

        return handle

    return {
        **handlers,
        **{event: both(handlers.get(event)) for event in careplan_contract.PLAN_EVENTS},
    }


def _with_part2(uow: UnitOfWork, plan: rules.SafetyPlan) -> rules.SafetyPlan:
    """The plan with the Part 2 labels of the patient's care plans (an SUD program's record)."""
    part2 = {
        code
        for known in plan_store.part2_labels_of(uow.conn, plan.patient_id)
        for code in json.loads(known)
    }
    if part2 <= plan.sensitivity:
        return plan
    sensitivity = plan.sensitivity | part2
    return replace(
        plan,
        sensitivity=frozenset(sensitivity),
        confidentiality=privacy.effective_confidentiality(plan.confidentiality, sensitivity),
    )


def plan_resource(
    plan_id: str, version: int, plan: rules.SafetyPlan, author: str, at: datetime
) -> str:
    """The stored QuestionnaireResponse: built from the plan's content (answers in the
    Questionnaire's order, each section with its text), the author the caller and authored now."""
    data: dict[str, Any] = {
        "resourceType": RESOURCE,
        "meta": {"security": fhir_map.security_labels(plan.confidentiality, plan.sensitivity)},
        "questionnaire": f"{rules.QUESTIONNAIRE_URL}|{rules.QUESTIONNAIRE_VERSION}",
        "status": plan.status,
        "subject": {"reference": f"Patient/{plan.patient_id}"},
        "authored": fhir.instant(at),
        "author": {"reference": author},
        "item": [
            {
                "linkId": link,
                "text": rules.BY_LINK[link].text,
                "answer": [{"valueString": text} for text in answers],
            }
            for link, answers in plan.sections.items()
        ],
    }
    return fhir.with_identity(fhir.parse_resource(data, RESOURCE), plan_id, version, at)


class SafetyPlans(UseCase):
    """Recording, reading and reviewing safety plans."""

    def _writer(self, principal: Principal, action: str, name: str, patient_id: str) -> str:
        """The basis on which the caller writes the patient's plan (a therapist, psychiatrist or
        psychologist on the patient's active care team), or the refusal, audited."""
        basis = self.basis(principal, action, name, patient_id)
        with self.refusals(principal, action, name, patient_id), self.db.read() as conn:
            roles = teams.roles_of_member(
                conn, store.care_team_member, principal.reference, patient_id, teams.today()
            )
            if not (principal.practitioner_id and rules.may_write(roles)):
                raise PermissionDenied(
                    "a safety plan is written by the patient's therapist, psychiatrist or "
                    "psychologist on the patient's care team",
                    reason="NOT_A_SAFETY_PLAN_WRITER",
                )
        return basis

    def save(
        self,
        principal: Principal,
        request_id: str,
        patient_id: str,
        fhir_json: str,
        expected_version: int,
    ) -> Stored:
        """Records the patient's safety plan: version 1 (`expected_version` 0, no plan yet) or the
        next version of the current one (`expected_version` its version). Clears a review a crisis
        made due. Once per `request_id`: a retry returns the version the first call recorded."""
        action = audit.UPDATE if expected_version else audit.CREATE
        asked = once.Asked(
            principal,
            "SaveSafetyPlan",
            request_id,
            {"patient_id": patient_id, "fhir_json": fhir_json, "version": expected_version},
        )
        with self.refusals(principal, action, RESOURCE, patient_id):
            resource = fhir.parse_resource(fhir_json, RESOURCE, field="fhir_json")
            plan = rules.read_plan(fhir.to_dict(resource), patient_id)
        basis = self._writer(principal, action, RESOURCE, patient_id)

        def _save(uow: UnitOfWork, new_id: str) -> str:
            # The patient's thread lock (PostgreSQL; SQLite has one writer): a crisis takes it
            # before it makes the review due, so a save and a crisis never interleave (a crisis
            # committing after the save is due again), and two first versions of one patient's
            # plan are serialized (the second is told SAFETY_PLAN_EXISTS).
            store.lock_thread(uow.conn, patient_id)
            now = datetime.now(UTC)
            current = plan_store.plan_of(uow.conn, patient_id)
            labelled = _with_part2(uow, plan)
            if current is None:
                stored = self._first(uow, principal, new_id, labelled, expected_version, now)
            else:
                stored = self._next(uow, principal, current, labelled, expected_version, now)
            review = plan_store.clear(
                uow.conn, patient_id, principal.reference, stored.version, now
            )
            cleared = f"; review due since {review.due_since.isoformat()} cleared" if review else ""
            audited(
                uow,
                principal,
                action,
                f"{RESOURCE}/{stored.id}/_history/{stored.version}",
                patient_id,
                f"safety plan version {stored.version}; {basis}{cleared}",
            )
            return f"{stored.id}/_history/{stored.version}"

        with self.refusals(principal, action, RESOURCE, patient_id):
            result, created = once.create(self.db, asked, _save)
        if created:
            self.notify_outbox()
        plan_id, _, version = result.partition("/_history/")
        with self.db.read() as conn:
            found = plan_store.safety_plans.load_version(conn, plan_id, int(version or 1))
        return must_exist(found, f"{RESOURCE}/{plan_id}")

    def _first(
        self,
        uow: UnitOfWork,
        principal: Principal,
        plan_id: str,
        plan: rules.SafetyPlan,
        expected_version: int,
        now: datetime,
    ) -> Stored:
        if expected_version:
            raise NotFound(
                f"the patient has no safety plan at version {expected_version} (none yet: "
                "expected_version 0 records the first)",
                resource=RESOURCE,
            )
        resource = plan_resource(plan_id, 1, plan, principal.reference, now)
        stored = Stored(plan_id, 1, plan.patient_id, plan.status, now, resource)
        plan_store.safety_plans.insert(uow.conn, stored, principal.reference)
        return stored

    def _next(
        self,
        uow: UnitOfWork,
        principal: Principal,
        current: Stored,
        plan: rules.SafetyPlan,
        expected_version: int,
        now: datetime,
    ) -> Stored:
        if not expected_version:
            raise FailedPrecondition(
                f"the patient has a safety plan ({RESOURCE}/{current.id}, version "
                f"{current.version}): record a new version of it with expected_version",
                reason="SAFETY_PLAN_EXISTS",
            )

        def reviser(item: Stored, version: int, at: datetime) -> tuple[str, str, str]:
            # Labels only go up: every earlier sensitivity label stays and the stricter
            # confidentiality wins (merged here, so the plan keeps one confidentiality code).
            kept = rules.kept_labels(plan, labels.security_of(item.resource))
            return (
                plan_resource(item.id, version, kept, principal.reference, at),
                plan.status,
                "revise",
            )

        _, stored, _ = revise(
            uow.conn,
            plan_store.safety_plans,
            RESOURCE,
            current.id,
            expected_version,
            reviser,
            principal.reference,
            "safety plan revised",
            may_lower_labels=True,  # never lowered: `kept_labels` keeps them
        )
        return stored

    def get(self, principal: Principal, plan_id: str, version: int = 0) -> Stored:
        """One safety plan by id (its current version, or `version`), audited."""
        name = f"{RESOURCE}/{plan_id}"
        with self.refusals(principal, audit.READ, name), self.db.read() as conn:
            current = must_exist(plan_store.safety_plans.load(conn, plan_id), name)
            found = current
            if version and version != current.version:
                found = must_exist(
                    plan_store.safety_plans.load_version(conn, plan_id, version),
                    f"{name}/_history/{version}",
                )
        basis = self._reader(principal, audit.READ, name, current.patient_id)
        self.audit_access(principal, audit.READ, name, current.patient_id, basis)
        return found

    def _reader(self, principal: Principal, action: str, name: str, patient_id: str) -> str:
        """The patient (a token of role `patient` in that patient's launch context) reads their
        own plan; everyone else by the care-team rule."""
        if principal.role != "patient":
            return self.basis(principal, action, name, patient_id)
        with self.refusals(principal, action, name, patient_id):
            if principal.patient_context != patient_id:
                raise PermissionDenied(
                    "a patient's token reads that patient's own record only",
                    reason="NOT_THIS_PATIENT",
                )
        return "patient"

    def for_patient(self, principal: Principal, patient_id: str) -> PlanView:
        """The patient's safety plan and its open review, audited."""
        basis = self._reader(principal, audit.SEARCH, RESOURCE, patient_id)
        with self.db.read() as conn:
            plan = plan_store.plan_of(conn, patient_id)
            review = plan_store.open_review(conn, patient_id)
        self.audit_access(
            principal, audit.SEARCH, RESOURCE, patient_id, f"{int(plan is not None)} hits; {basis}"
        )
        return PlanView(plan, review)

    def versions(self, principal: Principal, plan_id: str) -> list[Stored]:
        """Every version of a safety plan, newest first (its history), audited."""
        name = f"{RESOURCE}/{plan_id}"
        with self.refusals(principal, audit.READ, name), self.db.read() as conn:
            current = must_exist(plan_store.safety_plans.load(conn, plan_id), name)
        basis = self._reader(principal, audit.READ, name, current.patient_id)
        with self.db.read() as conn:
            history: list[Version] = plan_store.safety_plans.versions(conn, plan_id, 1000, None)
            found = [
                plan_store.safety_plans.load_version(conn, plan_id, v.version) for v in history
            ]
        self.audit_access(
            principal, audit.READ, f"{name}/_history", current.patient_id, f"history; {basis}"
        )
        return [f for f in found if f is not None]

    def reviews_due(
        self, principal: Principal, patient_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Review], str]:
        """Open safety plan reviews: the patient's (`patient_id`, care-team rule), or, without
        one, those of every patient the caller writes plans for (their worklist), oldest first."""
        size = paging.page_size(page_size)
        position = position_after(page_token)
        if patient_id:
            basis = self.basis(principal, audit.SEARCH, "SafetyPlanReview", patient_id)
            patients = [patient_id]
        else:
            basis = "own worklist"
            with self.db.read() as conn:
                patients = plan_store.patients_of(
                    conn,
                    store.care_team_member,
                    principal.reference,
                    rules.WRITER_ROLES,
                    teams.today(),
                )
        with self.db.read() as conn:
            rows = plan_store.reviews_page(conn, patients, size + 1, position)
        found, token = page(rows, size, lambda r: (r.due_since, r.id))
        for patient in dict.fromkeys(r.patient_id for r in found):
            self.audit_access(
                principal, audit.SEARCH, "SafetyPlanReview", patient, f"reviews due; {basis}"
            )
        return found, token


def questionnaire_json() -> str:
    """The published Questionnaire as canonical JSON."""
    return fhir.to_json(fhir.parse_resource(rules.questionnaire(), "Questionnaire"))
