"""Enrolment use cases: the IOP stay, its level of care and its transitions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.base import Asked, Change, ServiceBase, revise_by
from iopcare.careplan.domain.episode import (
    EpisodeState,
    Transition,
    admit,
    change_level,
    discharge,
)
from iopcare.careplan.domain.model import (
    MAX_VERSION,
    check_revision,
)
from iopcare.careplan.domain.utilization import AsamRating, check_asam_ratings
from iopcare.careplan.fhir_map import with_transition
from iopcare.kit import audit, fhir
from iopcare.kit.access import EHR_ROLE
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import (
    FieldViolation,
    FieldViolations,
    InvalidArgument,
    PermissionDenied,
)
from iopcare.kit.versioned import Stored

#: The episode steps that take nothing but a reason, by the RPC that asks for each.
STEPS: dict[str, Callable[[EpisodeState], Transition]] = {
    "AdmitPatient": admit,
    "DischargePatient": discharge,
}


class Episodes(ServiceBase):
    """The IOP stay: enrolment, admission, level of care, step up or down, discharge."""

    def create(self, principal: Principal, request_id: str, fhir_json: str) -> Stored:
        """Opens a planned episode (a referral accepted, intake pending)."""
        with self._audit_refusals(principal, audit.CREATE, "EpisodeOfCare"):
            episode = self._parsed(fhir_json, "EpisodeOfCare")
            patient_id = fhir.reference_id(
                episode.patient.reference if episode.patient else None, "Patient"
            )
            problems = FieldViolations()
            if not patient_id:
                problems.add("fhir_json.EpisodeOfCare.patient", "must reference a Patient")
            if episode.status not in {"planned", "waitlist"}:
                problems.add(
                    "fhir_json.EpisodeOfCare.status", "a new episode is planned or waitlist"
                )
            problems.raise_if_any("the EpisodeOfCare cannot be created")
            if episode.careManager is not None and principal.role == EHR_ROLE:
                # Naming the careManager is the program's assignment that lets a case manager
                # enrol the patient's first team (care_teams.enrolment_basis): an outside EHR
                # refers a patient, it does not assign program staff.
                raise PermissionDenied(
                    "an outside system cannot assign the episode's care manager",
                    reason="ASSIGNMENT_DENIED",
                )
            assert patient_id is not None
            episode = fhir_map.without_server_elements(episode)
        assert patient_id is not None

        def build(uow: UnitOfWork, episode_id: str, now: datetime) -> str:
            # The server keeps statusHistory from the first version on.
            opened = with_transition(episode, fhir_map.episode_state(episode), now)
            return fhir.with_identity(opened, episode_id, 1, now)

        asked = Asked(principal, request_id, {"fhir_json": fhir_json})
        return self._create_versioned(
            asked,
            "EpisodeOfCare",
            patient_id,
            str(episode.status),
            codes.EVENT_EPISODE["create"],
            build,
        )

    def get(self, principal: Principal, episode_id: str) -> Stored:
        with self.db.read() as conn:
            episode = store.episodes.load(conn, episode_id)
        return self._audited_read(principal, f"EpisodeOfCare/{episode_id}", episode)

    def step(self, change: Change, rpc: str, asam: Sequence[AsamRating] = ()) -> Stored:
        """Admit or discharge: the step of `STEPS` that `rpc` names; an admission is a
        level-of-care decision and may record its ASAM assessment."""
        return self._transition(change, STEPS[rpc], rpc, asam=asam)

    def change_level(
        self, change: Change, clinical: str, authorized: str, asam: Sequence[AsamRating] = ()
    ) -> Stored:
        return self._transition(
            change,
            lambda state: change_level(state, clinical, authorized or None),
            "ChangeLevelOfCare",
            {"clinical": clinical, "authorized": authorized},
            asam,
        )

    def _transition(
        self,
        change: Change,
        decide: Callable[[EpisodeState], Transition],
        operation: str,
        arguments: dict[str, str] | None = None,
        asam: Sequence[AsamRating] = (),
    ) -> Stored:
        """A transition under `change.expected_version`; with a request id, once (kit.requests).
        `operation` names the RPC; `arguments`, the step's own beside the change's."""
        principal, episode_id, reason = change.principal, change.item_id, change.reason
        asked = change.asked_or(
            {"id": episode_id, "expected_version": change.expected_version}
            | (arguments or {})
            | {"reason": reason}
        )
        name = f"EpisodeOfCare/{episode_id}"
        with self._audit_refusals(principal, audit.UPDATE, name):
            check_asam_ratings(asam)
            if not 1 <= change.expected_version <= MAX_VERSION:
                raise InvalidArgument(
                    "expected_version is required",
                    [FieldViolation("expected_version", "the version the change is based on")],
                )

            def _change(uow: UnitOfWork) -> None:
                effects: list[Transition] = []

                def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
                    self.access.basis(uow.conn, principal, current.patient_id)
                    episode = fhir.parse_resource(current.resource)
                    transition = decide(fhir_map.episode_state(episode))
                    effects.append(transition)
                    revised = with_transition(episode, transition.state, now, asam)
                    return (
                        fhir.with_identity(revised, episode_id, version, now),
                        transition.state.status,
                        transition.kind,
                    )

                revised, kind = revise_by(
                    uow,
                    principal,
                    "EpisodeOfCare",
                    episode_id,
                    change.expected_version,
                    reviser,
                    reason,
                )
                store.JOURNAL.publish_version(
                    uow, "EpisodeOfCare", revised, codes.EVENT_EPISODE[kind]
                )
                if effects[0].plan_effect:
                    self._apply_to_plans(
                        uow, principal, revised.patient_id, episode_id, effects[0], reason
                    )
                store.JOURNAL.audit(
                    uow,
                    principal,
                    audit.UPDATE,
                    resource=name,
                    patient_id=revised.patient_id,
                    detail=kind,
                )

            self._change_once(change, operation, _change, asked)
        return self._changed("EpisodeOfCare", episode_id)

    def _apply_to_plans(
        self,
        uow: UnitOfWork,
        principal: Principal,
        patient_id: str,
        episode_id: str,
        transition: Transition,
        reason: str,
    ) -> None:
        """Each transition closes or revises the plans of this stay, in the same transaction."""
        target = {"complete": "completed", "suspend": "on-hold", "resume": "active"}[
            str(transition.plan_effect)
        ]
        applies_to = {
            "complete": {"active", "on-hold", "draft"},
            "suspend": {"active"},
            "resume": {"on-hold"},
        }[str(transition.plan_effect)]
        episode_ref = f"EpisodeOfCare/{episode_id}"
        for plan in store.plans.for_patient(uow.conn, patient_id, lock=True):
            if plan.status not in applies_to:
                continue
            # Only the plans of this stay (CarePlan.supportingInfo names the episode): another
            # episode's transition, or a duplicate referral cancelled, leaves them alone.
            if episode_ref not in fhir_map.plan_episode_refs(fhir.parse_resource(plan.resource)):
                continue
            if transition.plan_effect == "resume":
                last = store.plans.versions(uow.conn, plan.id, 1, None)
                # A hold a clinician chose (a vacation) is theirs to lift, not the episode's.
                if (
                    not last
                    or last[0].change != "suspend"
                    or not (last[0].reason or "").startswith("episode step-up")
                ):
                    continue
            # A draft that never started is revoked, not completed.
            status = "revoked" if plan.status == "draft" and target == "completed" else target

            def reviser(
                current: Stored, version: int, now: datetime, status: str = status
            ) -> tuple[str, str, str]:
                before = fhir.parse_resource(current.resource)
                after = fhir_map.with_plan_status(before, status)
                change = check_revision(
                    fhir_map.draft_from_fhir(before), fhir_map.draft_from_fhir(after)
                )
                return fhir.with_identity(after, current.id, version, now), status, change

            why = f"episode {transition.kind}: {reason}".strip(": ")
            revised, change = revise_by(
                uow, principal, "CarePlan", plan.id, plan.version, reviser, why
            )
            store.JOURNAL.publish_version(uow, "CarePlan", revised, codes.EVENT_FOR_CHANGE[change])
