"""Plan review use cases: record a review, announce reviews that have come due, and bring a
review forward after a crisis (domain.md: plan review every N days and "sooner on change")."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.base import Change, ServiceBase, revise_by
from iopcare.careplan.domain.model import check_update_request
from iopcare.careplan.domain.review import Review, check_review, next_review_due
from iopcare.kit import audit, fhir, teams
from iopcare.kit.auth import Principal
from iopcare.kit.copying import by_name
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from iopcare.kit.versioned import Stored


def check_attesters(conn: Connection, review: Review, patient_id: str, on: date) -> None:
    """An attestation is a clinician's signature: it must be a current member of the patient's
    team, in the role they attest for."""
    strangers = [
        FieldViolation(f"attestations[{i}]", "not on the patient's team in that role")
        for i, a in enumerate(review.attestations)
        if a.role
        not in teams.roles_of_member(
            conn, store.care_team_member, f"Practitioner/{a.practitioner}", patient_id, on
        )
    ]
    if strangers:
        raise InvalidArgument("the review names attestations of non-members", strangers)


class PlanReviews(ServiceBase):
    """A plan review is a revision of the plan: a note of the decision and the attestations, and
    the next review date (the program's interval from this review)."""

    def record_review(self, change: Change, review: Review) -> Stored:
        """Records `review` as the plan's next version.

        With a request id it is recorded once (kit.requests): a retry after a lost answer
        returns the plan instead of STALE_VERSION, and the id reused for another review is
        refused. `change.asked` is what was asked (the RPC's request): a review of "today"
        retried tomorrow is still the same request. Without one, the expected version alone
        keeps a repeat from being applied twice."""
        principal, plan_id = change.principal, change.item_id
        with self._audit_refusals(principal, audit.UPDATE, f"CarePlan/{plan_id}"):
            check_review(review)
            check_update_request(plan_id, None, change.expected_version, "")

            def _apply(uow: UnitOfWork) -> None:
                revised = self._revise_for_review(uow, change, review)
                uow.conn.execute(
                    store.plan_review.insert().values(
                        plan_id=plan_id,
                        version=revised.version,
                        **by_name(review, "reviewed_on outcome summary"),
                        attestations=json.dumps([a.__dict__ for a in review.attestations]),
                        recorded_by=principal.reference,
                        recorded_at=revised.updated_at,
                    )
                )
                store.JOURNAL.record_version(
                    uow,
                    principal,
                    audit.UPDATE,
                    "CarePlan",
                    revised,
                    codes.EVENT_REVIEWED,
                    detail="review",
                )

            asked = {"id": plan_id, "expected_version": change.expected_version, "review": review}
            self._change_once(change, "RecordPlanReview", _apply, change.asked_or(asked))
        return self._changed("CarePlan", plan_id)

    def _revise_for_review(self, uow: UnitOfWork, change: Change, review: Review) -> Stored:
        """The plan's next version carrying the review note and the next review date."""
        principal, plan_id = change.principal, change.item_id

        def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
            self.access.basis(uow.conn, principal, current.patient_id)
            check_attesters(uow.conn, review, current.patient_id, now.date())
            before = fhir.parse_resource(current.resource)
            if before.status not in {"active", "on-hold"}:
                raise FailedPrecondition(
                    f"a {before.status} plan is not under review", reason="PLAN_NOT_ACTIVE"
                )
            due = next_review_due(review.reviewed_on, self.review_interval_days)
            after = fhir_map.with_review(before, review, principal.reference, due, now)
            return fhir_map.stamp(after, plan_id, version, now), current.status, "review"

        revised, _ = revise_by(
            uow,
            principal,
            "CarePlan",
            plan_id,
            change.expected_version,
            reviser,
            f"review: {review.outcome}",
        )
        return revised

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
                if due is None or due > today or not _claim_notice(uow.conn, plan_id, due):
                    continue
                store.JOURNAL.publish_version(uow, "CarePlan", plan, codes.EVENT_REVIEW_DUE_NOW)
                uow.commit()
                announced += 1
        if announced:
            self.notify_outbox()
        return announced


def _claim_notice(conn: Connection, plan_id: str, due: date) -> bool:
    """Records the plan's notice for `due`; False if it was recorded before. Every replica runs
    the periodic task: the notice's key (plan, due) lets one of them announce it. ON CONFLICT DO
    NOTHING: a replica whose insert waited for another's commit finds the row and emits nothing,
    instead of failing on the key and dropping the rest of its run."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    claimed = conn.execute(
        insert(store.review_notice)
        .values(plan_id=plan_id, due=due, noticed_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["plan_id", "due"])
        .returning(store.review_notice.c.plan_id)
    ).first()
    return claimed is not None


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

        revised, _ = revise_by(uow, principal, "CarePlan", plan.id, plan.version, reviser, why)
        store.JOURNAL.publish_version(uow, "CarePlan", revised, codes.EVENT_REVIEW_DUE_NOW)
        changed.append(revised)
    return changed
