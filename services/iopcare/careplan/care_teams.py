"""Care team use cases: enrol and revise a patient's team (who may see the patient)."""

from __future__ import annotations

import json
from datetime import datetime

from iopcare.careplan import codes, fhir_map, store
from iopcare.careplan.base import Asked, Change, ServiceBase, revise_by
from iopcare.careplan.domain.model import MAX_VERSION, apply_mask
from iopcare.careplan.domain.team import (
    check_new_team,
    check_team_revision,
    enrolment_basis,
    may_manage_team,
)
from iopcare.kit import audit, fhir, labels, teams
from iopcare.kit.access import within_launch_context
from iopcare.kit.auth import Principal
from iopcare.kit.db import UnitOfWork
from iopcare.kit.errors import (
    FieldViolation,
    InvalidArgument,
)
from iopcare.kit.versioned import Stored


def check_team_update_request(team_id: str, document_id: object, expected_version: int) -> None:
    if not 1 <= expected_version <= MAX_VERSION:
        raise InvalidArgument(
            "expected_version is required",
            [FieldViolation("expected_version", "the version the change is based on")],
        )
    if document_id not in (None, team_id):
        raise InvalidArgument(
            "the document's id differs from the request's",
            [FieldViolation("fhir_json.CareTeam.id", "must be absent or equal to id")],
        )


class CareTeams(ServiceBase):
    """The care team of a patient: who works on the plan, and so who may see the patient."""

    def create(self, principal: Principal, request_id: str, fhir_json: str) -> Stored:
        with self._audit_refusals(principal, audit.CREATE, "CareTeam"):
            resource = self._parsed(fhir_json, "CareTeam")
            draft = fhir_map.team_from_fhir(resource)
            check_new_team(draft, field_prefix="fhir_json.")
        patient_id, status = str(draft.patient_id), str(draft.status)

        def authorize(uow: UnitOfWork) -> str:
            # Read in the creating transaction, so the decision and the new team commit together.
            within_launch_context(principal.patient_limit, patient_id)
            return enrolment_basis(
                principal.role,
                has_active_team=any(
                    t.status == "active" for t in store.teams.for_patient(uow.conn, patient_id)
                ),
                on_active_team=self.access.on_team(uow.conn, principal, patient_id),
                assigned=self._assigned(uow, principal, patient_id),
            )

        def build(uow: UnitOfWork, team_id: str, now: datetime) -> str:
            # The memberships are written with the team: access follows it from this commit.
            teams.replace_members(
                uow.conn,
                store.care_team_member,
                team_id,
                patient_id,
                teams.memberships(resource),
                status == "active",
            )
            return fhir.with_identity(resource, team_id, 1, now)

        asked = Asked(principal, request_id, {"fhir_json": fhir_json})
        return self._create_versioned(
            asked, "CareTeam", patient_id, status, codes.EVENT_TEAM_CREATED, build, authorize
        )

    @staticmethod
    def _assigned(uow: UnitOfWork, principal: Principal, patient_id: str) -> bool:
        """Whether the program assigned the caller to the patient: an open episode of care
        naming them as its careManager."""
        if not principal.practitioner_id:
            return False
        for episode in store.episodes.for_patient(uow.conn, patient_id):
            if episode.status not in codes.EPISODE_OPEN_STATUSES:
                continue
            manager = (json.loads(episode.resource).get("careManager") or {}).get("reference")
            if manager == principal.reference:
                return True
        return False

    def update(self, change: Change, fhir_json: str, *, mask: list[str] | None = None) -> Stored:
        """Revises the team under `change.expected_version`; with a request id, once. With a
        `mask`, only the named top-level elements are taken from `fhir_json` (which may carry
        only those)."""
        principal, team_id = change.principal, change.item_id
        with self._audit_refusals(principal, audit.UPDATE, f"CareTeam/{team_id}"):
            document, whole = self._update_document(fhir_json, mask or [])
            check_team_update_request(team_id, document.get("id"), change.expected_version)

            def _change(uow: UnitOfWork) -> None:
                team, resource, kind = self._revise_team(uow, change, document, whole, mask or [])
                teams.replace_members(
                    uow.conn,
                    store.care_team_member,
                    team.id,
                    team.patient_id,
                    teams.memberships(resource),
                    team.status == "active",
                )
                store.JOURNAL.record_version(
                    uow,
                    principal,
                    audit.UPDATE,
                    "CareTeam",
                    team,
                    codes.EVENT_TEAM_UPDATED,
                    detail=kind,
                )

            asked = change.asked_or({"fhir_json": fhir_json, "mask": mask})
            self._change_once(change, "UpdateCareTeam", _change, asked)
        return self._changed("CareTeam", team_id)

    def _update_document(
        self, fhir_json: str, mask: list[str]
    ) -> tuple[dict[str, object], fhir.Resource | None]:
        """The update's JSON, and without a mask the whole CareTeam validated at once (with a
        mask the document may be partial: it is validated once merged)."""
        if not mask:
            document, resource = fhir.parse_document(
                fhir_json, "CareTeam", max_bytes=self.max_resource_bytes, field="fhir_json"
            )
            fhir_map.team_from_fhir(resource)
            return document, resource
        document = fhir.load_json(fhir_json, max_bytes=self.max_resource_bytes, field="fhir_json")
        if not isinstance(document, dict) or document.get("resourceType") != "CareTeam":
            raise InvalidArgument(
                "fhir_json must be a CareTeam",
                [FieldViolation("fhir_json.resourceType", "must be CareTeam")],
            )
        return document, None

    def _revise_team(
        self,
        uow: UnitOfWork,
        change: Change,
        document: dict[str, object],
        whole: fhir.Resource | None,
        mask: list[str],
    ) -> tuple[Stored, fhir.Resource, str]:
        """The team's next version (the whole document, or the current team with the masked
        elements replaced), checked against who may manage it and the team lifecycle."""
        principal = change.principal
        merged: list[fhir.Resource] = []

        def reviser(current: Stored, version: int, now: datetime) -> tuple[str, str, str]:
            within_launch_context(principal.patient_limit, current.patient_id)
            may_manage_team(
                principal.role, self.access.on_team(uow.conn, principal, current.patient_id)
            )
            resource = whole
            if resource is None:
                combined = apply_mask(
                    json.loads(current.resource), document, mask, codes.TEAM_MASKABLE_ELEMENTS
                )
                resource = fhir.parse_resource(combined, "CareTeam", field="fhir_json")
            revised_draft = fhir_map.team_from_fhir(resource)
            kind = check_team_revision(
                fhir_map.team_from_fhir(fhir.parse_resource(current.resource)), revised_draft
            )
            merged.append(resource)
            return (
                fhir.with_identity(resource, change.item_id, version, now),
                str(revised_draft.status),
                kind,
            )

        team, kind = revise_by(
            uow,
            principal,
            "CareTeam",
            change.item_id,
            change.expected_version,
            reviser,
            change.reason,
            # Only a privacy officer takes a label off (kit/labels.py).
            may_lower_labels=labels.may_lower_labels(principal.role),
        )
        return team, merged[-1], kind

    def get(self, principal: Principal, team_id: str) -> Stored:
        with self.db.read() as conn:
            team = store.teams.load(conn, team_id)
        return self._audited_read(principal, f"CareTeam/{team_id}", team)
